"""Per-video min-max normalisation and fusion of per-frame signals (MNAD Eq. 16-17), NaN-aware.

A signal is ``{video: np.ndarray (N_frames,)}`` of raw per-frame values oriented "higher = more anomalous"
(pass ``-PSNR``, not PSNR); NaN marks a frame the method could not score and stays NaN.

A method whose score fuses *before* normalising (MAAM-Net's PSCD, `vadlab.models.maam.pscd_scores`) passes its raw
fused per-frame signal as one signal and lets :func:`normalise` do the min-max, per video ("video", vadlab's
headline) or over the whole test set ("global").
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from vadlab.eval._validate import MetricsError, _as_scores

__all__ = ["NORMALISE_MODES", "minmax", "normalise", "fuse"]

#: Normalisation modes: per-video min-max (the papers' protocol), min-max over all videos pooled, raw.
NORMALISE_MODES = ("video", "global", "none")


def minmax(x: Any) -> np.ndarray:
    """Min-max normalise one video's signal to [0, 1] (MNAD Eq. 17), ignoring NaN frames.

    NaN frames stay NaN. A constant video (max == min over its scored frames) maps to zeros: it carries no
    ranking information inside the video. An all-NaN video stays all NaN.
    """
    a = np.array(x, dtype=np.float64)  # a copy
    finite = ~np.isnan(a)
    if not finite.any():
        return a
    lo = a[finite].min()
    hi = a[finite].max()
    out = np.full_like(a, np.nan)
    # Eq. 17: g(x) = (x - min_t x) / (max_t x - min_t x); constant video -> 0
    out[finite] = (a[finite] - lo) / (hi - lo) if hi > lo else 0.0
    return out


def normalise(signals: Mapping[str, Any], mode: str) -> dict[str, np.ndarray]:
    """Normalise one signal ``{video: raw per-frame}`` by ``mode``.

    ``"video"``: per-video min-max (the papers' protocol, uses the whole test video);
    ``"global"``: one min-max over the scored frames of all videos pooled (a constant pool maps to zeros);
    ``"none"``: the raw values as float64. NaN frames stay NaN in every mode.
    """
    return _normalise(signals, mode, what="scores")


def _normalise(signals: Mapping[str, Any], mode: str, what: str) -> dict[str, np.ndarray]:
    if mode not in NORMALISE_MODES:
        raise MetricsError(f"unknown normalisation mode {mode!r}; choose one of {', '.join(NORMALISE_MODES)}")
    arrays = {video: _as_scores(values, video, what) for video, values in signals.items()}
    if mode == "video":
        return {video: minmax(a) for video, a in arrays.items()}
    if mode == "none":
        return arrays
    # "global": one min and one max over all videos' scored frames
    scored = [a[~np.isnan(a)] for a in arrays.values()]
    pool = np.concatenate(scored) if scored else np.empty(0)
    if pool.size == 0:
        return arrays
    lo, hi = pool.min(), pool.max()
    if hi > lo:
        return {video: (a - lo) / (hi - lo) for video, a in arrays.items()}
    return {video: np.where(np.isnan(a), np.nan, 0.0) for video, a in arrays.items()}  # constant pool -> zeros


def fuse(
    signals: Mapping[str, Mapping[str, Any]],
    weights: Mapping[str, float],
    mode: str = "video",
) -> dict[str, np.ndarray]:
    """Fuse several per-frame signals into one anomaly score per frame (MNAD Eq. 16, generalised).

    ``signals`` is ``{signal_name: {video: raw per-frame}}``, each raw signal already oriented "higher = more
    anomalous" (e.g. ``-PSNR``, a feature distance). Each signal is normalised by ``mode`` (see
    :func:`normalise`), then ``score = sum_k weights[k] * norm_k``. MNAD's Eq. 16 is
    ``weights={"neg_psnr": lam, "distance": 1 - lam}``, since ``1 - g(P) = g(-P)`` under min-max.

    Every signal needs a weight (give 0 to carry a signal only for its own AUC) and every weight a signal;
    weights must be finite, non-negative (orient the signal instead of using a negative weight) and not all 0.
    They need not sum to 1 (a common scale does not change any AUC). A frame is NaN in the fused score when
    any signal with a non-zero weight is NaN there; zero-weight signals are skipped entirely.
    """
    if not signals:
        raise MetricsError("fuse: no signals given")
    missing = sorted(set(signals) - set(weights))
    if missing:
        raise MetricsError(f"fuse: no weight for signal(s) {missing}; give weight 0 to keep a signal out of the fusion")
    extra = sorted(set(weights) - set(signals))
    if extra:
        raise MetricsError(f"fuse: weight(s) given for unknown signal(s) {extra}; signals are {sorted(signals)}")
    for name, w in weights.items():
        if not (isinstance(w, (int, float, np.floating, np.integer)) and math.isfinite(float(w)) and w >= 0):
            raise MetricsError(f"fuse: weight for signal {name!r} must be a finite number >= 0, got {w!r}")
    if not any(float(w) > 0 for w in weights.values()):
        raise MetricsError(f"fuse: all weights are 0: {dict(weights)}")

    names = list(signals)
    ref_name = names[0]
    ref_videos = list(signals[ref_name])
    normed = {}
    for name in names:
        videos = signals[name]
        if set(videos) != set(ref_videos):
            only_here = sorted(set(videos) - set(ref_videos))
            only_there = sorted(set(ref_videos) - set(videos))
            raise MetricsError(
                f"fuse: signal {name!r} and signal {ref_name!r} cover different videos "
                f"(only in {name!r}: {only_here}; only in {ref_name!r}: {only_there})"
            )
        normed[name] = _normalise(videos, mode, what=f"signal {name!r}")

    fused = {}
    for video in ref_videos:
        n = normed[ref_name][video].shape[0]
        total = np.zeros(n, dtype=np.float64)
        for name in names:
            a = normed[name][video]
            if a.shape[0] != n:
                raise MetricsError(
                    f"fuse: video {video!r} has {a.shape[0]} frames in signal {name!r} "
                    f"but {n} in signal {ref_name!r}"
                )
            w = float(weights[name])
            if w > 0:  # Eq. 16: weighted sum of normalised signals
                total = total + w * a
        fused[video] = total
    return fused
