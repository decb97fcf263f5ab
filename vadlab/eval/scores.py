"""Per-video min-max normalisation and fusion of per-frame signals (MNAD Eq. 16-17), NaN-aware; MAAM-Net's
patch scoring (PSCD, Sec. 3.4, Algorithm 1).

A signal is ``{video: np.ndarray (N_frames,)}`` of raw per-frame values oriented "higher = more anomalous"
(pass ``-PSNR``, not PSNR); NaN marks a frame the method could not score and stays NaN.

PSCD fuses *before* normalising (Algorithm 1: fuse the raw patch sums, take the max over patches, then Eq. 11's
min-max), unlike the generic "normalise each signal, then fuse" of :func:`fuse`. So a method using it passes the
raw per-frame PSCD maximum as one signal (from :func:`pscd_scores`) and lets :func:`normalise` do Eq. 11, per video
("video", vadlab's headline) or over the whole test set ("global", what MAAM-Net's public code does).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from vadlab.eval._validate import MetricsError, _as_scores

__all__ = ["NORMALISE_MODES", "minmax", "normalise", "fuse", "patch_sums", "pscd_scores", "pscd_map"]

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


# ------------------------------------------------------------------------ MAAM-Net: PSCD (Sec. 3.4, Algorithm 1)


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) of one axis: output ceil(size / stride), the extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def patch_sums(error, patch: tuple[int, int], stride: tuple[int, int]):
    """Algorithm 1 lines 8-12: an error map (B, C, H, W) convolved with an all-ones (C, ph, pw) filter at `stride`
    (sh, sw), 'SAME' zero padding (partial windows at the border, as the public code): (B, ceil(H/sh), ceil(W/sw)),
    the sum of the error over each patch and over the channels. A torch tensor in, a torch tensor out."""
    import torch
    import torch.nn.functional as F

    (ph, pw), (sh, sw) = patch, stride
    if min(ph, pw, sh, sw) < 1:
        raise MetricsError(f"patch_sums: patch {patch} and stride {stride} must be positive")
    b, c, h, w = error.shape
    top, bottom = _same_pad(h, ph, sh)
    left, right = _same_pad(w, pw, sw)
    padded = F.pad(error.sum(dim=1, keepdim=True), (left, right, top, bottom))  # (B, 1, H + pad, W + pad)
    ones = torch.ones(1, 1, ph, pw, dtype=error.dtype, device=error.device)  # summing over C first is the same
    return F.conv2d(padded, ones, stride=(sh, sw))[:, 0]  # (B, h', w')


def pscd_scores(d_app, d_mot, patch: tuple[int, int], stride: tuple[int, int], psi: float,
                scale: tuple[float, float] = (1.0, 1.0)) -> dict:
    """Algorithm 1 lines 6-14 on a batch: d_app (B, Ca, H, W) = (I - I_hat)^2 and d_mot (B, Cm, H, W) = |F - F_hat|
    (either may be None for a single-branch model). Returns raw per-frame maxima (B,) over patches of
    e_app ("app"), e_mot ("mot") and e_fuse = psi e_app + (1 - psi) e_mot ("pscd", line 13: the raw patch sums are
    fused, then the max is taken, line 14); Eq. 11 (min-max) is left to :func:`normalise`. `scale` = (s_app, s_mot)
    divides each branch before the fusion, e_fuse = psi e_app / s_app + (1 - psi) e_mot / s_mot (MAAM-Net's
    psi_rule="balanced"; (1, 1) is Algorithm 1); "app" and "mot" stay raw."""
    out = {}
    e_app = patch_sums(d_app, patch, stride) if d_app is not None else None  # (B, h', w')
    e_mot = patch_sums(d_mot, patch, stride) if d_mot is not None else None
    if e_app is not None:
        out["app"] = e_app.flatten(1).amax(1)  # (B,)
    if e_mot is not None:
        out["mot"] = e_mot.flatten(1).amax(1)
    if e_app is not None and e_mot is not None:
        fused = (psi / scale[0]) * e_app + ((1.0 - psi) / scale[1]) * e_mot  # (B, h', w'), line 13
        out["pscd"] = fused.flatten(1).amax(1)  # (B,), line 14
    return out


def pscd_map(d_app, d_mot, patch: tuple[int, int], psi: float, scale: tuple[float, float] = (1.0, 1.0)):
    """The fused PSCD map at stride 1, frame-sized (B, H, W): each pixel scores the patch centred on it (SAME
    padding), with `pscd_scores`'s psi and scale. vadlab's anomaly map for pixel AUC and the error-map figures (the
    paper reports no pixel result)."""
    parts = []
    if d_app is not None:
        parts.append((psi / scale[0] if d_mot is not None else 1.0) * patch_sums(d_app, patch, (1, 1)))
    if d_mot is not None:
        parts.append(((1.0 - psi) / scale[1] if d_app is not None else 1.0) * patch_sums(d_mot, patch, (1, 1)))
    return sum(parts)  # (B, H, W)
