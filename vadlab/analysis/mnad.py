"""MNAD studies: how a trained MNAD uses its memory (item usage, position locking, how much the decoder relies on
the read). The method itself is `vadlab.models.mnad`."""

from __future__ import annotations

import numpy as np
import torch

from vadlab import memory
from vadlab.data.clips import ClipDataset
from vadlab.models.mnad import MNAD, _unit
from vadlab.models.ops import psnr


@torch.no_grad()
def memory_diagnostics(method: MNAD, videos, batch_size: int = 64) -> dict:
    """How a trained MNAD uses its memory, over the clips of `videos` (e.g. `layout.training`):

    - `item_usage`: share of queries whose nearest item (Eq. 11) is each item;
    - `position_locked`: share of (frame, query position) pairs assigned to that position's most common item:
      near 1 means addressing follows the location in the frame (the static background), not the content;
    - `psnr_read`, `psnr_mean_item`, `psnr_zero_read`: mean PSNR of the output with the memory read of Eq. 2,
      with every read replaced by the mean item, and by zeros: how much the decoder relies on the memory;
    - `item_cosine_mean_offdiag`: mean cosine similarity between distinct items (separateness).
    """
    net, cfg = method.model.eval(), method.config
    if not cfg.use_memory:
        raise ValueError("memory_diagnostics needs a model with a memory (use_memory=True)")
    items = net.memory  # (M, C)
    data = ClipDataset(videos, method.clip_spec(), cfg.image_size, cfg.channels)
    assignments, psnrs = [], {"read": [], "mean_item": [], "zero_read": []}
    device = items.device
    for batch in torch.utils.data.DataLoader(data, batch_size=batch_size):
        clip, target = batch["input"].to(device), _unit(batch["target"].to(device))
        qmap, skips = net.encode(clip)  # (B, C, h, w)
        queries = qmap.flatten(2).transpose(1, 2)  # (B, K, C)
        read, weights = memory.read(queries, items)  # (B, K, C), (B, K, M)
        assignments.append(weights.argmax(-1))  # (B, K)
        reads = (("read", read), ("mean_item", items.mean(0).expand_as(read)), ("zero_read", torch.zeros_like(read)))
        for name, r in reads:
            psnrs[name].append(psnr(_unit(net.decode(qmap, r, skips)), target))
    assign = torch.cat(assignments)  # (N, K)
    usage = torch.bincount(assign.flatten(), minlength=len(items)).double()
    sim = items @ items.T  # (M, M)
    m = len(items)
    return {
        "item_usage": (usage / usage.sum()).tolist(),
        "position_locked": float((assign == assign.mode(0).values).double().mean()),
        **{f"psnr_{k}": float(torch.cat(v).mean()) for k, v in psnrs.items()},
        "item_cosine_mean_offdiag": float((sim.sum() - sim.trace()) / max(m * m - m, 1)),
    }


def memory_comparison(with_memory: dict, without_memory: dict) -> list[tuple[str, float | None, float | None]]:
    """Rows (metric, with memory, without memory) of two MNAD evaluation reports (`engine.evaluate_run`) on the same
    data: the fused micro AUC, each signal alone (`per_signal_auc`: neg_psnr is the prediction or reconstruction
    error, distance Eq. 14's feature distance, present with a memory only), the frame-difference baseline on the same
    frames, and the share of test frames that updated the memory. What `10_train_mnad` shows for
    `compare_no_memory` (issue 28): whether the memory earns its keep on this data."""
    def signal(report, name):
        return report.get("per_signal_auc", {}).get(name)

    base = with_memory.get("baseline_frame_difference", {}).get("micro_auc")
    return [
        ("micro AUC (fused score)", with_memory.get("micro_auc"), without_memory.get("micro_auc")),
        ("prediction/reconstruction error alone (PSNR)", signal(with_memory, "neg_psnr"),
         signal(without_memory, "neg_psnr")),
        ("memory distance alone (Eq. 14)", signal(with_memory, "distance"), None),
        ("frame difference, same frames", base, without_memory.get("baseline_frame_difference", {}).get("micro_auc")),
        ("test frames that updated the memory", with_memory.get("test_time_updates", {}).get("updated_share"), None),
    ]


def plot_memory_comparison(rows, *, title: str = "", path=None):
    """The AUC rows of `memory_comparison` as paired bars (with / without the memory), the frame-difference
    baseline as a dashed line."""
    import matplotlib.pyplot as plt

    from vadlab import viz

    auc_rows = [r for r in rows[:3] if r[1] is not None or r[2] is not None]
    base = rows[3][1]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    x = np.arange(len(auc_rows))
    colours = viz.palette(2)
    for offset, column, label, colour in ((-0.2, 1, "with memory", colours[0]), (0.2, 2, "without memory",
                                                                                 colours[1])):
        values = [np.nan if r[column] is None else r[column] for r in auc_rows]
        bars = ax.bar(x + offset, values, width=0.38, color=colour, label=label)
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.3f}" for v in values], fontsize=8)
    if base is not None:
        ax.axhline(base, color="0.3", linestyle="--", linewidth=1, label=f"frame difference {base:.3f}")
    ax.set_xticks(x, [r[0].replace(" alone", "\nalone") for r in auc_rows], fontsize=8)
    ax.set_ylabel("Micro AUC")
    low = np.nanmin([v for r in auc_rows for v in r[1:] if v is not None] + ([base] if base is not None else []))
    ax.set_ylim(max(0.0, low - 0.1), 1.0)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return viz.save(fig, path)
