"""vadlab: a notebook-first research workbench for memory-augmented video anomaly detection."""

from vadlab.errors import ConfigError, DataError, VadlabError

__version__ = "0.1.0"
__all__ = ["DataError", "ConfigError", "VadlabError", "__version__"]
