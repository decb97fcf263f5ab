"""Evaluation metrics shared by every method: PSNR, min-max normalisation, score fusion, AUC, EER, pixel AUC.

Conventions (DESIGN.md, "Evaluation protocol"):

* Scores are keyed by video name: ``{video: np.ndarray (N_frames,)}``, float64, oriented "higher = more
  anomalous" once fused (pass ``-PSNR``, not PSNR).
* A frame the method could not score (e.g. the first T frames of a predictor with T input frames) is NaN.
  NaN frames are left out of every AUC and counted in the report; they are never filled in, and labels are
  never shifted to fit the scores.
* Labels are per-frame 0/1, one entry per frame, keyed by the same video names.
* The headline number is the papers' protocol: each raw signal min-max normalised per video (MNAD Eq. 17),
  fused by the method's weights (MNAD Eq. 16), pooled over all videos, ``sklearn.metrics.roc_auc_score``.

Bad input raises :class:`MetricsError` (a ``ValueError``) whose message names the video.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Mapping

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from vadlab.errors import VadlabError

__all__ = [
    "MetricsError",
    "PSNR_CAP_DB",
    "NORMALISE_MODES",
    "psnr",
    "minmax",
    "normalise",
    "fuse",
    "eer",
    "frame_auc",
    "macro_auc",
    "per_type_auc",
    "pixel_auc",
    "evaluate",
]

#: PSNR reported for a perfect reconstruction (mse == 0): finite, so -PSNR can be min-max normalised.
#: Any mse below ``peak**2 * 10**(-PSNR_CAP_DB / 10)`` is clamped to it, so PSNR never exceeds the cap.
PSNR_CAP_DB = 100.0

#: Normalisation modes: per-video min-max (the papers' protocol), min-max over all videos pooled, raw.
NORMALISE_MODES = ("video", "global", "none")

#: The type name a normal frame carries in ``types`` arrays (see vadlab.data.layout).
NORMAL_TYPE = "normal"


class MetricsError(VadlabError, ValueError):
    """Scores, labels, types or masks that cannot be evaluated; the message names the video."""


# ----------------------------------------------------------------------------------------------- PSNR


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")  # if torch was never imported, x cannot be a tensor
    return torch is not None and isinstance(x, torch.Tensor)


def psnr(pred: Any, target: Any, peak: float = 1.0) -> Any:
    """Per-frame PSNR in dB, ``10 * log10(peak**2 / mse)`` (MNAD Eq. 15 as implemented in practice).

    Images are expected in ``[0, peak]`` (``peak=1.0`` for [0, 1] images). Shapes: ``(B, C, H, W)`` gives
    ``(B,)``; a single image ``(C, H, W)`` or ``(H, W)`` gives a 0-d result. Torch tensors return a tensor on
    the same device (computed in at least float32, no host sync, differentiable); numpy inputs return float64
    numpy. An mse of 0 (or below ``peak**2 * 10**(-PSNR_CAP_DB/10)``) gives the finite cap ``PSNR_CAP_DB``.
    """
    if peak <= 0 or not math.isfinite(peak):
        raise MetricsError(f"psnr: peak must be a positive finite number, got {peak!r}")
    if _is_tensor(pred) or _is_tensor(target):
        import torch

        pred_t = torch.as_tensor(pred)
        target_t = torch.as_tensor(target, device=pred_t.device)
        if pred_t.shape != target_t.shape:
            raise MetricsError(f"psnr: pred shape {tuple(pred_t.shape)} != target shape {tuple(target_t.shape)}")
        dtype = torch.float64 if torch.float64 in (pred_t.dtype, target_t.dtype) else torch.float32
        diff = pred_t.to(dtype) - target_t.to(dtype)
        dims = _psnr_dims(diff.ndim)
        mse = diff.pow(2).mean(dim=dims)  # (B,) or ()
        floor = peak**2 * 10.0 ** (-PSNR_CAP_DB / 10.0)
        return 10.0 * torch.log10(peak**2 / mse.clamp_min(floor))
    pred_a = np.asarray(pred, dtype=np.float64)
    target_a = np.asarray(target, dtype=np.float64)
    if pred_a.shape != target_a.shape:
        raise MetricsError(f"psnr: pred shape {pred_a.shape} != target shape {target_a.shape}")
    dims = _psnr_dims(pred_a.ndim)
    mse = np.mean((pred_a - target_a) ** 2, axis=dims)  # (B,) or ()
    floor = peak**2 * 10.0 ** (-PSNR_CAP_DB / 10.0)
    return 10.0 * np.log10(peak**2 / np.maximum(mse, floor))


def _psnr_dims(ndim: int) -> tuple[int, ...]:
    if ndim == 4:  # (B, C, H, W): one value per frame
        return (1, 2, 3)
    if ndim in (2, 3):  # one image (H, W) or (C, H, W)
        return tuple(range(ndim))
    raise MetricsError(f"psnr: expected (B, C, H, W), (C, H, W) or (H, W), got {ndim} dimensions")


# ------------------------------------------------------------------------------------ normalisation


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


# ------------------------------------------------------------------------------------ validation


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


def _check(scores: Mapping[str, Any], labels: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Validate scores against labels: {video: (scores float64 with NaN, labels int8)}, full length."""
    if not scores:
        raise MetricsError("no videos in scores")
    unlabelled = [v for v in scores if v not in labels]
    if unlabelled:
        raise MetricsError(f"video {unlabelled[0]!r} is in scores but not in labels (unlabelled: {unlabelled})")
    unscored = [v for v in labels if v not in scores]
    if unscored:
        raise MetricsError(
            f"video {unscored[0]!r} is in labels but not in scores (unscored: {unscored}); "
            "a skipped video changes the AUC, so pass only the labels of the videos you mean to evaluate"
        )
    out = {}
    for video in scores:
        s = _as_scores(scores[video], video)
        y = _as_labels(labels[video], video)
        if s.shape[0] != y.shape[0]:
            raise MetricsError(
                f"video {video!r}: {s.shape[0]} scores but {y.shape[0]} labels; "
                "a video's scores need one entry per frame (NaN for unscored frames)"
            )
        if not (~np.isnan(s)).any():
            raise MetricsError(
                f"video {video!r}: no scored frame (all {s.shape[0]} scores are NaN); "
                "is the video shorter than the method's input window?"
            )
        out[video] = (s, y)
    return out


def _pool(checked: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the scored frames (NaN dropped) of all videos."""
    s = np.concatenate([s[~np.isnan(s)] for s, _ in checked.values()])
    y = np.concatenate([y[~np.isnan(s)] for s, y in checked.values()])
    return s, y


def _require_both_classes(y: np.ndarray, where: str) -> None:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.shape[0]:
        cls = "normal (0)" if n_pos == 0 else "anomalous (1)"
        raise MetricsError(f"{where}: all {y.shape[0]} scored frames are {cls}; AUC is undefined with one class")


def _where(videos: Any) -> str:
    videos = list(videos)
    return f"video {videos[0]!r}" if len(videos) == 1 else f"videos {videos}"


# ------------------------------------------------------------------------------------ frame-level metrics


def eer(labels: Any, scores: Any) -> float:
    """Equal error rate: the point of the ROC where FPR == FNR (= 1 - TPR), linearly interpolated.

    ``labels`` and ``scores`` are flat arrays of one pooled set of frames; NaN scores are dropped.
    Perfect separation gives 0.
    """
    s = _as_scores(scores, "<pooled>")
    y = _as_labels(labels, "<pooled>")
    if s.shape[0] != y.shape[0]:
        raise MetricsError(f"eer: {s.shape[0]} scores but {y.shape[0]} labels")
    keep = ~np.isnan(s)
    s, y = s[keep], y[keep]
    if s.size == 0:
        raise MetricsError("eer: no scored frame (all scores are NaN)")
    _require_both_classes(y, "eer")
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    fnr = 1.0 - tpr
    d = fnr - fpr  # starts at 1 (fpr=0, fnr=1), ends at -1; non-increasing along the curve
    i = int(np.flatnonzero(d <= 0)[0])
    if d[i] == 0:
        return float(fpr[i])
    # interpolate on the segment (i-1, i): FPR and FNR are both linear in t there
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def frame_auc(scores: Mapping[str, Any], labels: Mapping[str, Any]) -> float:
    """Frame-level micro AUC: the scored frames of all videos pooled, ``sklearn.metrics.roc_auc_score``.

    ``scores`` are used as given (normalise/fuse first); NaN frames are dropped.
    """
    checked = _check(scores, labels)
    s, y = _pool(checked)
    _require_both_classes(y, f"frame_auc over {_where(checked)}")
    return float(roc_auc_score(y, s))


def video_aucs(scores: Mapping[str, Any], labels: Mapping[str, Any]) -> dict[str, float]:
    """AUC within each video over its scored frames; NaN for a video whose scored frames hold a single class."""
    out = {}
    for video, (s, y) in _check(scores, labels).items():
        keep = ~np.isnan(s)
        y_k = y[keep]
        out[video] = float(roc_auc_score(y_k, s[keep])) if 0 < y_k.sum() < y_k.shape[0] else float("nan")
    return out


def macro_auc(scores: Mapping[str, Any], labels: Mapping[str, Any]) -> tuple[float, int]:
    """Mean of the per-video AUCs over the videos holding both classes among their scored frames.

    Returns ``(mean AUC, number of videos counted)``; videos with a single class are skipped.
    """
    per_video = video_aucs(scores, labels)
    aucs = [a for a in per_video.values() if not np.isnan(a)]
    if not aucs:
        raise MetricsError(
            f"macro_auc: no video among {list(per_video)} holds both normal and anomalous scored frames; "
            "macro AUC is undefined"
        )
    return float(np.mean(aucs)), len(aucs)


def per_type_auc(
    scores: Mapping[str, Any],
    labels: Mapping[str, Any],
    types: Mapping[str, Any],
) -> dict[str, float]:
    """AUC per anomaly type: positives are the scored frames labelled 1 of that type, negatives all scored
    normal frames (label 0) of all videos, pooled.

    ``types`` is ``{video: array of str (N_frames,)}``; the types of normal frames are ignored, an anomalous
    frame typed ``"normal"`` is an error. A type with no scored frame is left out of the result.
    """
    checked = _check(scores, labels)
    neg, pos = [], {}
    for video, (s, y) in checked.items():
        if video not in types:
            raise MetricsError(f"video {video!r} is in scores but not in types")
        t = np.asarray(types[video]).astype(str)
        if t.ndim != 1 or t.shape[0] != y.shape[0]:
            raise MetricsError(f"video {video!r}: types have shape {t.shape} but there are {y.shape[0]} labels")
        untyped = (y == 1) & (t == NORMAL_TYPE)
        if untyped.any():
            i = int(np.flatnonzero(untyped)[0])
            raise MetricsError(f"video {video!r}: frame {i} is labelled anomalous but typed {NORMAL_TYPE!r}")
        keep = ~np.isnan(s)
        neg.append(s[keep & (y == 0)])
        for name in np.unique(t[keep & (y == 1)]):
            pos.setdefault(str(name), []).append(s[keep & (y == 1) & (t == name)])
    neg_s = np.concatenate(neg)
    if neg_s.size == 0:
        raise MetricsError(f"per_type_auc over {_where(checked)}: no scored normal frame; AUC is undefined")
    out = {}
    for name in sorted(pos):
        pos_s = np.concatenate(pos[name])
        y = np.concatenate([np.zeros(neg_s.size, np.int8), np.ones(pos_s.size, np.int8)])
        out[name] = float(roc_auc_score(y, np.concatenate([neg_s, pos_s])))
    return out


def pixel_auc(maps: Mapping[str, Any], masks: Mapping[str, Any]) -> float:
    """Pixel-level AUC: all pixels of the scored frames of all videos pooled, ``roc_auc_score``.

    ``maps`` are ``{video: (N, H, W) float}`` anomaly maps (higher = more anomalous), ``masks`` are
    ``{video: (N, H, W)}`` bool or 0/1 ground truth. The caller resizes each map to its mask's size first
    (the metric never resamples). NaN pixels (e.g. whole unscored frames) are dropped.
    """
    if not maps:
        raise MetricsError("pixel_auc: no videos in maps")
    unmasked = [v for v in maps if v not in masks]
    if unmasked:
        raise MetricsError(f"video {unmasked[0]!r} is in maps but not in masks (no mask: {unmasked})")
    unscored = [v for v in masks if v not in maps]
    if unscored:
        raise MetricsError(f"video {unscored[0]!r} is in masks but not in maps (no map: {unscored})")
    ss, yy = [], []
    for video in maps:
        m = np.asarray(maps[video], dtype=np.float64)
        g = np.asarray(masks[video])
        if m.ndim != 3 or m.shape != g.shape:
            raise MetricsError(
                f"video {video!r}: map shape {m.shape} != mask shape {g.shape} (both (N, H, W)); "
                "resize the maps to the mask size before pixel_auc"
            )
        if np.isinf(m).any():
            raise MetricsError(f"video {video!r}: map holds an infinite value; use NaN for unscored frames")
        g = _as_labels(g.reshape(-1), video)
        m = m.reshape(-1)
        keep = ~np.isnan(m)
        if not keep.any():
            raise MetricsError(f"video {video!r}: no scored pixel (the whole map is NaN)")
        ss.append(m[keep])
        yy.append(g[keep])
    y = np.concatenate(yy)
    _require_both_classes(y, f"pixel_auc over {_where(maps)}")
    return float(roc_auc_score(y, np.concatenate(ss)))


# ------------------------------------------------------------------------------------ the report


def evaluate(
    signals: Mapping[str, Mapping[str, Any]],
    weights: Mapping[str, float],
    labels: Mapping[str, Any],
    types: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report every method writes (plain Python floats, ints and dicts, JSON-serialisable).

    Keys: ``micro_auc`` (headline: per-video min-max, fused, pooled), ``macro_auc`` and ``macro_videos``,
    ``eer`` (of the headline score), ``auc_global_norm`` (fusion after one min-max over all videos: what a
    live system could do), ``auc_raw`` (fusion without normalisation), ``per_signal_auc`` (each signal alone,
    per-video min-max, its own NaN frames dropped), ``frames_total``, ``frames_scored``, ``frames_left_out``,
    ``left_out_per_video`` (frames whose fused score is NaN, e.g. a predictor's first T frames), ``videos``,
    ``weights``, and ``per_type_auc`` when ``types`` is given.
    """
    fused = fuse(signals, weights, "video")
    checked = _check(fused, labels)
    s, y = _pool(checked)
    _require_both_classes(y, f"evaluate over {_where(checked)}")
    micro = float(roc_auc_score(y, s))
    macro, n_macro = macro_auc(fused, labels)
    left_out = {video: int(np.isnan(sv).sum()) for video, (sv, _) in checked.items()}
    frames_total = int(sum(yv.shape[0] for _, yv in checked.values()))
    frames_left_out = int(sum(left_out.values()))
    report: dict[str, Any] = {
        "micro_auc": micro,
        "macro_auc": macro,
        "macro_videos": int(n_macro),
        "eer": eer(y, s),
        "auc_global_norm": frame_auc(fuse(signals, weights, "global"), labels),
        "auc_raw": frame_auc(fuse(signals, weights, "none"), labels),
        "per_signal_auc": {
            str(name): frame_auc(normalise(per_video, "video"), labels) for name, per_video in signals.items()
        },
        "frames_total": frames_total,
        "frames_scored": frames_total - frames_left_out,
        "frames_left_out": frames_left_out,
        "left_out_per_video": {str(v): n for v, n in left_out.items()},
        "videos": len(checked),
        "weights": {str(k): float(w) for k, w in weights.items()},
    }
    if types is not None:
        report["per_type_auc"] = per_type_auc(fused, labels, types)
    return report
