"""Generic analysis over any method's hooks: memory-space sampling for t-SNE and matching-probability figures."""

from vadlab.analysis.memory import memory_space_names, sample_memory_space

__all__ = ["memory_space_names", "sample_memory_space"]
