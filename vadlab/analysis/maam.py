"""MAAM-Net study helpers (vadlab.models.maam holds the method): Fig. 5's items selected per query (issue 22)."""

from __future__ import annotations

import numpy as np
import torch


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
    training variant (e.g. with and without L_lat), its mean in the legend, x from 0 to N."""
    import matplotlib.pyplot as plt

    from vadlab import viz

    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 3.6), squeeze=False)
    bins = np.linspace(0, memory_items, 51)
    for ax, (panel, variants) in zip(axes[0], groups.items()):
        for colour, (name, counts) in zip(viz.palette(len(variants)), variants.items()):
            ax.hist(counts, bins=bins, histtype="step", linewidth=1.8, color=colour, density=True,
                    label=f"{name}: mean {np.mean(counts):.0f}")
        ax.set_title(panel)
        ax.set_xlabel(f"items selected per query (of N = {memory_items})")
        ax.set_ylabel("share of queries (density)")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return viz.save(fig, path)
