"""vadlab: a notebook-first research workbench for memory-augmented video anomaly detection."""

from vadlab.threads import set_wait_policy

set_wait_policy()  # before anything imports torch: OpenMP threads spin only briefly (vadlab.threads)

from vadlab.errors import ConfigError, DataError, VadlabError  # noqa: E402

__version__ = "0.1.0"
__all__ = ["DataError", "ConfigError", "VadlabError", "__version__"]
