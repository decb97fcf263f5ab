"""Methods. Importing this package registers every built-in method with `vadlab.registry`."""

from vadlab.models import dream, maam, mnad, std  # noqa: F401
from vadlab.models.base import Method

__all__ = ["Method"]
