"""Generic analysis over any method's hooks: memory-space sampling for t-SNE and matching-probability figures."""

from vadlab.analysis.memory import (
    health_table,
    heatmap_rows,
    matching_summary,
    memory_space_names,
    sample_memory_space,
    sample_spaces,
)

__all__ = ["health_table", "memory_space_names", "sample_memory_space", "sample_spaces", "heatmap_rows",
           "matching_summary"]
