"""STD studies: training seconds per stage (pretrain, alternate) and every signal's AUC per anomaly type on a
layout with typed anomalies (synthetic). The method itself is `vadlab.models.std`."""

from __future__ import annotations

import numpy as np

from vadlab.data.layout import as_layout
from vadlab.engine import load_scores
from vadlab.eval.metrics import per_type_auc
from vadlab.eval.scores import normalise
from vadlab.models.std import STAGES


def stage_seconds(history: list[dict], pretrain_epochs: int) -> dict[str, float]:
    """Training seconds per stage from a run's history (the stage follows from the epoch number)."""
    out = {s: 0.0 for s in STAGES}
    for h in history:
        out["pretrain" if h["epoch"] <= pretrain_epochs else "alternate"] += float(h["seconds"])
    return out


def per_type_signal_auc(run, data) -> dict[str, dict[str, float]]:
    """{signal: {anomaly type: AUC}} of every signal of a run's scores.npz alone (per-video min-max), on a layout
    with typed anomalies (synthetic): which types the appearance and motion streams catch."""
    layout = as_layout(data)
    scores = load_scores(run)
    labels, types = layout.labels(), layout.types()
    out = {}
    for name, per_video in scores.items():
        if name in ("label",):
            continue
        normed = normalise({v: np.asarray(s) for v, s in per_video.items()}, "video")
        out[name] = per_type_auc(normed, labels, types)
    return out
