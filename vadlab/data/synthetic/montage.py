"""A PNG grid of frames of every anomaly type of a synthetic dataset, the anomaly mask outlined."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vadlab.data.layout import Layout
from vadlab.data.synthetic.events import ANOMALY_TYPES


def montage(layout: Layout, path: str | os.PathLike, *, per_type: int = 4) -> Path:
    """Save a PNG grid: `per_type` frames of each anomaly type (rows), the anomaly mask outlined in red."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from vadlab.data.layout import read_image

    rows = []
    for kind in ANOMALY_TYPES:
        picks = []
        for video in layout.testing + layout.abnormal:
            if video.types is None or video.masks is None:
                continue
            idx = np.flatnonzero(video.types == kind)
            if len(idx):
                chosen = idx[np.linspace(0, len(idx) - 1, min(per_type, len(idx))).round().astype(int)]
                picks += [(video, int(i)) for i in chosen]
            if len(picks) >= per_type:
                break
        rows.append((kind, picks[:per_type]))
    fig, axes = plt.subplots(len(rows), per_type, figsize=(2.6 * per_type, 2.1 * len(rows)), squeeze=False)
    for r, (kind, picks) in enumerate(rows):
        for c in range(per_type):
            ax = axes[r, c]
            ax.set_axis_off()
            if c >= len(picks):
                continue
            video, i = picks[c]
            ax.imshow(read_image(video.frames[i], channels=3), interpolation="nearest")
            mask = read_image(video.masks[i], channels=1)
            if mask.any():
                ax.contour(mask > 0, levels=[0.5], colors="red", linewidths=0.8)
            ax.set_title(f"{kind}\n{video.name} #{i}", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


