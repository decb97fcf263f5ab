"""Methods. Importing this package registers every built-in method with `vadlab.registry`."""

from vadlab.models import maam, mnad  # noqa: F401
from vadlab.models.base import Method

__all__ = ["Method"]
