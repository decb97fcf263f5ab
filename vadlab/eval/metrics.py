"""The evaluation protocol on per-frame scores: frame AUC (micro), per-video and macro AUC, AUC per anomaly
type, EER, pixel AUC, and `evaluate`, the report every method writes.

Conventions (docs/methods/index.md, "The evaluation protocol"):

* Scores are keyed by video name: ``{video: np.ndarray (N_frames,)}``, float64, oriented "higher = more
  anomalous" once fused (pass ``-PSNR``, not PSNR).
* A frame the method could not score (e.g. the first T frames of a predictor with T input frames) is NaN.
  NaN frames are left out of every AUC and counted in the report; they are never filled in, and labels are
  never shifted to fit the scores.
* Labels are per-frame 0/1, one entry per frame, keyed by the same video names.
* The headline number is the papers' protocol: each raw signal min-max normalised per video (MNAD Eq. 17),
  fused by the method's weights (MNAD Eq. 16, `vadlab.eval.scores`), pooled over all videos,
  ``sklearn.metrics.roc_auc_score``.

Bad input raises :class:`MetricsError` (a ``ValueError``) whose message names the video.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from vadlab.eval._validate import MetricsError, _as_labels, _as_scores
from vadlab.eval.scores import fuse, normalise

__all__ = [
    "MetricsError",
    "eer",
    "frame_auc",
    "video_aucs",
    "macro_auc",
    "per_type_auc",
    "pixel_auc",
    "evaluate",
]

#: The type name a normal frame carries in ``types`` arrays (see vadlab.data.layout).
NORMAL_TYPE = "normal"


# ------------------------------------------------------------------------------------ validation


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
