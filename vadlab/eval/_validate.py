"""Input checks shared by `vadlab.eval.scores` and `vadlab.eval.metrics`, and the error they raise."""

from __future__ import annotations

from typing import Any

import numpy as np

from vadlab.errors import VadlabError


class MetricsError(VadlabError, ValueError):
    """Scores, labels, types or masks that cannot be evaluated; the message names the video."""


def _as_scores(values: Any, video: str, what: str = "scores") -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise MetricsError(f"video {video!r}: {what} must be 1-D (one value per frame), got shape {a.shape}")
    if np.isinf(a).any():
        i = int(np.flatnonzero(np.isinf(a))[0])
        raise MetricsError(f"video {video!r}: {what} hold an infinite value at frame {i}; use NaN for unscored frames")
    return a.copy()


def _as_labels(values: Any, video: str) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise MetricsError(f"video {video!r}: labels must be 1-D (one 0/1 per frame), got shape {a.shape}")
    if a.dtype == bool:
        return a.astype(np.int8)
    try:
        num = a.astype(np.float64)
    except (TypeError, ValueError):
        raise MetricsError(f"video {video!r}: labels must be 0/1, got dtype {a.dtype}") from None
    bad = ~np.isin(num, (0.0, 1.0))  # NaN is not 0/1 either
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MetricsError(f"video {video!r}: labels must be 0/1, got {a[i].item()!r} at frame {i}")
    return num.astype(np.int8)
