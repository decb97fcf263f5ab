"""STD studies: training seconds per stage (pretrain, alternate), every signal's AUC per anomaly type on a layout
with typed anomalies (synthetic), and (issue 21) the variance attention's spread per block and the weighted loss
terms of Eq. 12 at the start of the alternate stage (plots: `vadlab.viz.plot_std_loss_terms`). The method itself is
`vadlab.models.std`."""

from __future__ import annotations

import numpy as np
import torch

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


# --- issue 21: Eq. 12's balance and the variance attention ------------------------------------------------------------
LOSS_TERMS = ("w_app", "w_mot", "w_cluster")  # the weighted terms of Eq. 12 in a run's history (epoch means)


def weighted_terms(history: list[dict], lambda_r: float | None = None) -> list[dict]:
    """The history with the weighted terms of Eq. 12 (w_app, w_mot, w_cluster, lambda_r) in every record; a record
    written before they were recorded gets them from its raw terms (l_a, l_m_l2 + l_m_grad, lambda_r * cluster)."""
    out = []
    for h in history:
        h = dict(h)
        if "w_app" not in h and "l_a" in h:
            h["w_app"] = h["l_a"]
        if "w_mot" not in h and "l_m_l2" in h:
            h["w_mot"] = h["l_m_l2"] + h["l_m_grad"]
        if "w_cluster" not in h and "cluster" in h and lambda_r is not None:
            h["lambda_r"], h["w_cluster"] = lambda_r, lambda_r * h["cluster"]
        out.append(h)
    return out


def loss_term_balance(history: list[dict], pretrain_epochs: int, lambda_r: float | None = None) -> dict:
    """The weighted terms of Eq. 12 in the first alternate epoch (epoch pretrain_epochs + 1): each term, lambda_r,
    and the cluster term over L_a + L_m (the ratio a `cluster_fraction` rule states). Empty before that epoch."""
    history = weighted_terms(history, lambda_r)
    first = next((h for h in history if h["epoch"] == pretrain_epochs + 1 and "w_cluster" in h), None)
    if first is None:
        return {}
    recon = first.get("w_app", 0.0) + first.get("w_mot", 0.0)
    return {**{k: first[k] for k in LOSS_TERMS if k in first}, "lambda_r": first.get("lambda_r"),
            "cluster_over_recon": first["w_cluster"] / recon if recon else float("nan")}


@torch.no_grad()
def attention_spread(method, videos, *, clips: int = 64, seed: int = 0) -> list[dict]:
    """Per motion-encoder block, over `clips` test clips drawn with `seed`: the map size H x W and the weights
    H*W*att (1 everywhere = uniform att) as min, max and std, and exp(att)'s largest ratio between two positions of
    one map (what z * exp(att) can change: 1.0 = nothing). Empty without attention."""
    if not method.config.attention or method.config.streams == "appearance":
        return []
    dataset = method.test_dataset(list(videos))
    picks = np.random.default_rng(seed).choice(len(dataset), size=min(clips, len(dataset)), replace=False)
    maps: list[list[torch.Tensor]] = []
    for i in range(0, len(picks), 16):
        batch = torch.utils.data.default_collate([dataset[int(j)] for j in picks[i:i + 16]])
        batch = {k: v.to(next(method.model.parameters()).device) for k, v in batch.items()
                 if k in ("input", "target")}
        atts = method.inspect(batch)["attention"]  # list of (b, h_i, w_i)
        for b, att in enumerate(atts):
            if len(maps) <= b:
                maps.append([])
            maps[b].append(att.cpu())
    out = []
    for block, parts in enumerate(maps, 1):
        att = torch.cat(parts)  # (N, h, w)
        hw = att.shape[1] * att.shape[2]
        scaled = att.flatten(1) * hw  # (N, h*w)
        gain = torch.exp(att.flatten(1))
        out.append({"block": block, "size": f"{att.shape[1]}x{att.shape[2]}", "hw_att_min": float(scaled.min()),
                    "hw_att_max": float(scaled.max()), "hw_att_std": float(scaled.std(dim=1).mean()),
                    "max_gain_ratio": float((gain.amax(1) / gain.amin(1)).max())})
    return out
