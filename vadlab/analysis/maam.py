"""MAAM-Net studies: the Table 5 branch AUCs at the score level (appearance, motion, fused PSCD) and their rows,
how many queries select each memory item, the frame / flow / error-map rows of the error-map figure, and Fig. 5's
items selected per query (issue 22). The method itself is `vadlab.models.maam`."""

from __future__ import annotations

import numpy as np
import torch

from vadlab.data.clips import load_masks
from vadlab.eval.metrics import frame_auc
from vadlab.eval.scores import normalise
from vadlab.models.maam import MAAM


def branch_aucs(scores: dict, labels: dict) -> dict[str, dict[str, float]]:
    """Micro AUC of each raw PSCD signal of a run's `scores.npz` (`engine.load_scores`), normalised per video and
    over the whole test set: {signal: {"video": auc, "global": auc}} (Table 5's App / Mot / App+Mot)."""
    out = {}
    for name in ("app", "mot", "pscd"):
        if name in scores:
            per_video = {v: np.asarray(s, np.float64) for v, s in scores[name].items()}
            out[name] = {mode: frame_auc(normalise(per_video, mode), labels) for mode in ("video", "global")}
    return out


@torch.no_grad()
def item_usage(method: MAAM, videos, batch_size: int = 32) -> np.ndarray:
    """(N,) how many queries of the scored frames of `videos` select each item (non-zero weight after shrinkage)."""
    net = method.model.eval()
    data = method.test_dataset(videos)
    device = net.memory.device
    counts = torch.zeros(method.config.memory_items, dtype=torch.float64, device=device)
    for batch in torch.utils.data.DataLoader(data, batch_size=batch_size):
        z, _ = net.encode(batch["input"][:, 0].to(device))
        _, _, weights = net.read(z)  # (B, K, N)
        counts += (weights > 0).flatten(0, 1).sum(0).double()
    return counts.cpu().numpy()


@torch.no_grad()
def map_rows(method: MAAM, layout, picks: list[tuple[str, int]]) -> list[dict]:
    """Rows for `viz.plot_flow_error_maps`: frame, flow target, error maps and fused PSCD map of (video, frame)
    pairs of the test split, with the ground-truth mask at the model's size where the video has masks."""
    method.model.eval()
    rows = []
    for name, t in picks:
        video = layout.video(name)
        batch = method.clip(video, t)
        batch = {k: v.to(next(method.model.parameters()).device) if torch.is_tensor(v) else v
                 for k, v in batch.items()}
        out = method.inspect(batch)
        masks = load_masks(video, method.frame_size)
        rows.append({"frame": ((batch["target"][0].mean(0) + 1) / 2).cpu().numpy(),
                     "flow": batch["flow"][0].cpu().numpy() if "flow" in batch else None,
                     "d_app": out["d_app"][0].cpu().numpy() if "d_app" in out else None,
                     "d_mot": out["d_mot"][0].cpu().numpy() if "d_mot" in out else None,
                     "pscd": out["pscd_map"][0].cpu().numpy(),
                     "mask": None if masks is None else masks[t],
                     "title": f"{name} #{t} (label {int(video.labels[t])})"})
    return rows


def branch_rows(aucs: dict[str, dict[str, float]], baseline: float | None = None) -> dict[str, dict[str, float]]:
    """`branch_aucs` as rows for `viz.plot_comparison`: {normalisation: {branch: AUC}}, the frame-difference
    baseline (on the same frames, per-video normalised) beside the per-video group."""
    names = {"app": "appearance", "mot": "motion", "pscd": "fused PSCD"}
    rows = {mode: {names[k]: v[mode] for k, v in aucs.items()} for mode in ("video", "global")}
    if baseline is not None:
        rows["video"]["frame_difference"] = baseline
    return {"per-video min-max": rows["video"], "global min-max": rows["global"]}


def pick_frames(scores: dict, layout, n: int = 4) -> list[tuple[str, int]]:
    """(video, frame) of the `n` - 1 highest fused scores of the test split (per-video normalised) and of the
    lowest: frames worth looking at in the error-map figure."""
    fused = scores["score"]
    ranked = sorted(((float(s), v, t) for v, arr in fused.items() for t, s in enumerate(arr) if np.isfinite(s)),
                    reverse=True)
    picks = [(v, t) for _, v, t in ranked[:max(n - 1, 1)]] + [(ranked[-1][1], ranked[-1][2])]
    return picks[:n] if n > 1 else picks[:1]


# --- issue 22: Fig. 5, items selected per query ---------------------------------------------------------------------
@torch.no_grad()
def items_per_query(method, videos, batch_size: int = 32) -> np.ndarray:
    """(Q,) int: for every query of every scored frame of `videos` (h x w queries a frame), how many memory items
    keep a non-zero weight after Eq. 3's hard shrinkage: the per-query count whose average is Fig. 5's "support items
    selected from memory per sample" (the public code's count, train.py's `np.sum(s > 0) / (B h w)`)."""
    net = method.model.eval()
    device = next(net.parameters()).device
    counts = []
    for batch in torch.utils.data.DataLoader(method.test_dataset(videos), batch_size=batch_size):
        z, _ = net.encode(batch["input"][:, 0].to(device))
        _, _, weights = net.read(z)  # (B, K, N)
        counts.append((weights > 0).sum(-1).flatten().cpu())
    return torch.cat(counts).numpy()


def plot_items_histograms(groups: dict[str, dict[str, np.ndarray]], memory_items: int, *, title: str = "",
                          path=None):
    """Fig. 5 as histograms: one panel per similarity ({panel: {variant: per-query counts}}), one step histogram per
    training variant (e.g. with and without L_lat), its mean in the legend, x from 0 to N (one bin per count where
    every query keeps fewer than 50 items)."""
    import matplotlib.pyplot as plt

    from vadlab import viz

    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 3.6), squeeze=False)
    for ax, (panel, variants) in zip(axes[0], groups.items()):
        top = max(int(np.max(c)) for c in variants.values())
        # a panel whose queries keep a few items gets one bin per count (a 10-item bin would hide them all in one)
        bins = np.arange(0, top + 2) - 0.5 if top < 50 else np.linspace(0, memory_items, 51)
        for colour, (name, counts) in zip(viz.palette(len(variants)), variants.items()):
            ax.hist(counts, bins=bins, histtype="step", linewidth=1.8, color=colour, density=True,
                    label=f"{name}: mean {np.mean(counts):.1f}")
        ax.set_title(panel)
        ax.set_xlabel(f"items selected per query (of N = {memory_items})")
        ax.set_ylabel("share of queries (density)")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return viz.save(fig, path)
