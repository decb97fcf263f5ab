"""Figures: matplotlib for print. Every function returns the Figure and, given `path`, saves it (PNG, atomically)."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg by itself
import numpy as np
from matplotlib.colors import BoundaryNorm, Colormap, ListedColormap, Normalize
from matplotlib.ticker import MaxNLocator

from vadlab.io import atomic_path


def save(fig, path: str | os.PathLike | None, dpi: int = 150):
    """Save `fig` to `path` (temp file, then os.replace); returns the figure."""
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return fig


def _shade(ax, labels: np.ndarray, color: str = "tab:red", alpha: float = 0.15, label: str = "ground truth anomaly"):
    """Shade the frame ranges where labels == 1."""
    labels = np.asarray(labels).astype(bool)
    edges = np.diff(np.concatenate([[0], labels.astype(int), [0]]))
    starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    for i, (a, b) in enumerate(zip(starts, stops)):
        ax.axvspan(a - 0.5, b - 0.5, color=color, alpha=alpha, lw=0, label=label if i == 0 else None)


def item_colours(n_items: int) -> tuple[Colormap, Normalize, object]:
    """(colour map, norm, colourbar ticks) that colour memory item indices 0..n_items-1 for any memory size.

    Up to 10 items: tab10, item i in tab10's colour i; up to 20: tab20; both discrete, one tick per item (every
    other item beyond 10). Beyond 20 (MAAM-Net's hundreds of items, STD's clusters): a continuous map (turbo) over
    the index range with a few integer ticks, since no eye tells 500 colours apart or reads a 500-entry legend."""
    n = max(int(n_items), 1)
    if n <= 20:
        base = plt.get_cmap("tab10" if n <= 10 else "tab20")
        cmap = ListedColormap(base.colors[:n], name=f"items_{n}")
        return cmap, BoundaryNorm(np.arange(n + 1) - 0.5, n), np.arange(0, n, 1 if n <= 10 else 2)
    return plt.get_cmap("turbo"), Normalize(-0.5, n - 0.5), MaxNLocator(nbins=6, integer=True)


def _item_colourbar(fig, mappable, ax, ticks, label: str = "memory item"):
    cbar = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03, ticks=ticks)
    cbar.set_label(label, fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    return cbar


def plot_history(history: list[dict], keys: tuple[str, ...] | None = None, path=None, ax=None):
    """Training losses per epoch (one line per loss term, log scale when they span decades)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3.2))
    if keys is None:  # every loss term in order of appearance (a staged method adds terms in later epochs)
        keys = tuple(dict.fromkeys(k for h in history for k, v in h.items()
                                   if k not in ("epoch", "lr", "seconds") and isinstance(v, (int, float))))
    epochs = [h["epoch"] for h in history]
    for key in keys:
        ax.plot(epochs, [h.get(key, np.nan) for h in history], marker="o", ms=3, label=key)
    values = np.array([[h.get(k, np.nan) for k in keys] for h in history], dtype=float)
    if values.size and np.nanmin(values) > 0 and np.nanmax(values) / np.nanmin(values) > 50:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)


def plot_score_curve(scores: np.ndarray, labels: np.ndarray, *, title: str = "", baseline: np.ndarray | None = None,
                     path=None, ax=None):
    """Per-frame anomaly score of one video (NaN = unscored, shown as a gap) with its ground truth shaded."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 2.8))
    _shade(ax, labels)
    _shade(ax, np.isnan(scores), color="0.5", alpha=0.12, label="not scorable (left out)")
    frames = np.arange(len(scores))
    ax.plot(frames, scores, color="tab:blue", lw=1.4, label="anomaly score")
    if baseline is not None:
        ax.plot(frames, baseline, color="0.5", lw=1, ls="--", label="frame difference")
    ax.set_xlim(-0.5, len(scores) - 0.5)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("frame")
    ax.set_ylabel("score (per-video min-max)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best", framealpha=0.8)
    return save(fig, path)


def plot_comparison(rows: dict[str, dict[str, float]], *, metric_label: str = "micro AUC", path=None,
                    errors: dict[str, dict[str, float]] | None = None):
    """Grouped bars: rows {group (dataset): {method: value}}, optional error bars {group: {method: spread}}."""
    groups = list(rows)
    methods = list(dict.fromkeys(m for g in groups for m in rows[g]))
    methods = [m for m in methods if m != "frame_difference"] + [m for m in methods if m == "frame_difference"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(groups) * max(len(methods), 1) / 3, 3.4))
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        xs = np.arange(len(groups)) + (j - (len(methods) - 1) / 2) * width
        vals = [rows[g].get(m, np.nan) for g in groups]
        errs = [(errors or {}).get(g, {}).get(m, 0.0) for g in groups]
        style = {"color": "0.65", "hatch": "//"} if m == "frame_difference" else {}  # the baseline, in grey
        ax.bar(xs, vals, width, label=m, yerr=errs if errors else None, capsize=2, **style)
        for x, v in zip(xs, vals):
            if np.isfinite(v):
                ax.text(x, 0.42, f"{v:.3f}", ha="center", va="bottom", fontsize=7, rotation=90, color="white")
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylabel(metric_label)
    ax.set_ylim(0.4, 1.08)
    ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
    ax.legend(fontsize=7, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def plot_error_maps(frames: np.ndarray, predictions: np.ndarray, errors: np.ndarray, masks: np.ndarray | None = None,
                    *, titles: list[str] | None = None, path=None):
    """Rows of (frame, prediction, error map [, mask outline]); arrays (N, H, W) in [0, 1] (errors any scale)."""
    n = len(frames)
    fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.2 * n), squeeze=False)
    for i in range(n):
        for j, (img, name) in enumerate(((frames[i], "frame"), (predictions[i], "prediction"), (errors[i], "error"))):
            ax = axes[i, j]
            ax.imshow(img, cmap="gray" if j < 2 else "inferno", vmin=0 if j < 2 else None, vmax=1 if j < 2 else None)
            if masks is not None and masks[i].any():
                ax.contour(masks[i], levels=[0.5], colors="cyan", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
        if titles:
            axes[i, 0].set_ylabel(titles[i], fontsize=8)
    fig.tight_layout()
    return save(fig, path)


class LiveLoss:
    """`fit(..., on_epoch=LiveLoss())`: redraws the loss curve in place after every epoch (Jupyter), and saves
    it to `path` if given. Outside Jupyter it only saves."""

    def __init__(self, path=None, keys: tuple[str, ...] | None = None):
        self.path, self.keys, self._handle = path, keys, None

    def __call__(self, epoch: int, history: list[dict]) -> None:
        fig = plot_history(history, self.keys, path=self.path)
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                if self._handle is None:
                    self._handle = display(fig, display_id=True)
                else:
                    self._handle.update(fig)
        except ImportError:
            pass
        plt.close(fig)


def metrics_table(report: dict):
    """A small table of the headline metrics of an evaluation report (a pandas DataFrame when pandas is there)."""
    base = report.get("baseline_frame_difference", {})
    rows = [
        ("micro AUC (per-video min-max)", report.get("micro_auc"), base.get("micro_auc")),
        ("macro AUC", report.get("macro_auc"), base.get("macro_auc")),
        ("EER", report.get("eer"), base.get("eer")),
        ("AUC, global min-max", report.get("auc_global_norm"), base.get("auc_global_norm")),
        ("AUC, no normalisation", report.get("auc_raw"), base.get("auc_raw")),
        ("frames left out", report.get("frames_left_out"), base.get("frames_left_out")),
    ]
    for name, value in sorted(report.get("per_type_auc", {}).items()):
        rows.append((f"AUC {name}", value, base.get("per_type_auc", {}).get(name)))
    try:
        import pandas as pd
    except ImportError:
        return rows
    columns = ["metric", report.get("method", "method"), "frame difference"]
    return pd.DataFrame(rows, columns=columns).set_index("metric")


def plot_memory_maps(batch: dict, inspected: dict, *, title: str = "", path=None,
                     grid: tuple[int, int] | None = None):
    """One clip through a memory model: target frame, output, squared error, the nearest memory item of each
    query position (Eq. 11) and its matching probability (Eq. 1). `inspected` is `method.inspect(batch)`; its
    `weights` (B, K, M) may hold any number M of items. `grid` (h, w) of the K queries (default: square)."""
    target = (batch["target"][0].float().mean(0).cpu().numpy() + 1) / 2  # (H, W) in [0, 1]
    output = (inspected["output"][0].float().mean(0).cpu().numpy() + 1) / 2  # (H, W)
    panels = [(target, "frame", "gray", Normalize(0, 1)), (output, "output", "gray", Normalize(0, 1)),
              ((output - target) ** 2, "squared error", "inferno", None)]
    ticks = None
    if "weights" in inspected:  # a model without memory shows the first three panels only
        weights = inspected["weights"][0].float().cpu()  # (K, M)
        side = int(round(weights.shape[0] ** 0.5))
        h, w = grid or (side, side)
        cmap, norm, ticks = item_colours(weights.shape[1])
        panels += [(weights.argmax(-1).reshape(h, w).numpy(), "nearest item (Eq. 11)", cmap, norm),  # (h, w)
                   (weights.max(-1).values.reshape(h, w).numpy(), "its matching prob. (Eq. 1)", "viridis",
                    Normalize(0, 1))]
    return _map_panels(panels, ticks, "item", title=title, path=path, panel_width=2.6)


def _map_panels(panels: list, item_ticks, item_label: str, *, title: str, path, panel_width: float):
    """A row of image panels (image, name, colour map, norm): greyscale frames without a colour bar, the nearest
    item with the item colour bar (`item_colours`), any other map with a plain colour bar."""
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_width * len(panels), 2.9), squeeze=False)
    for ax, (img, name, cmap, norm) in zip(axes[0], panels):
        im = ax.imshow(img, cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if name.startswith("nearest"):
            _item_colourbar(fig, im, ax, item_ticks, item_label)
        elif name not in ("frame", "output"):
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def plot_space_maps(batch: dict, space, *, title: str = "", path=None):
    """One clip in one memory space of any method (`method.memory_spaces(batch)[name]`, a `MemorySpace`): the
    target frame, the nearest item of each query position and, when the space has matching weights, its matching
    probability. Queries without a grid are shown as one row. Any number of items: see `item_colours`."""
    target = (batch["target"][0].detach().float().mean(0).cpu().numpy() + 1) / 2  # (H, W) in [0, 1]
    nearest = space.nearest()[0].detach().cpu().numpy()  # (K,)
    k = nearest.shape[0]
    side = int(round(k ** 0.5))
    h, w = space.grid or ((side, side) if side * side == k else (1, k))
    cmap, norm, ticks = item_colours(space.items.shape[0])
    panels = [(target, "frame", "gray", Normalize(0, 1)), (nearest.reshape(h, w), "nearest item", cmap, norm)]
    if space.weights is not None:
        prob = space.weights[0].detach().float().max(-1).values.cpu().numpy()  # (K,)
        panels.append((prob.reshape(h, w), "its matching prob.", "viridis", Normalize(0, 1)))
    return _map_panels(panels, ticks, f"item (of {space.items.shape[0]})", title=title, path=path, panel_width=2.8)


def plot_video_scores(curves: dict[str, dict[str, np.ndarray]], labels: dict[str, np.ndarray], *,
                      aucs: dict[str, dict[str, float]] | None = None, path=None):
    """One panel per test video: each run's score {run: {video: (N,)}} (normalised per video, NaN = gap) over the
    shaded ground truth; `aucs` {run: {video: AUC}} goes into the legend. A run named "frame difference" is grey."""
    videos = list(labels)
    fig, axes = plt.subplots(len(videos), 1, figsize=(8, 1.9 * len(videos) + 0.4), squeeze=False, sharex=False)
    for ax, video in zip(axes[:, 0], videos):
        _shade(ax, labels[video])
        for run, per_video in curves.items():
            s = np.asarray(per_video[video], dtype=float)
            auc = (aucs or {}).get(run, {}).get(video)
            name = f"{run} ({auc:.3f})" if auc is not None and np.isfinite(auc) else run
            style = {"color": "0.3", "lw": 0.8, "ls": "--"} if run == "frame difference" else {"lw": 1.2}
            ax.plot(np.arange(len(s)), s, label=name, **style)
        ax.set_xlim(-0.5, len(labels[video]) - 0.5)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(video, fontsize=9, loc="left")
        ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    axes[-1, 0].set_xlabel("frame")
    fig.supylabel("score (per-video min-max); legend: AUC in this video", fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def plot_memory_tsne(sample: dict, *, title: str = "", seed: int = 0, path=None):
    """t-SNE of memory queries and items (MNAD Fig. 6), one row of panels per memory space: coloured by nearest
    item (items as stars), by the query's row in the frame (does addressing follow position?) and, when the sample
    holds anomalous frames, by label.

    `sample` is one space's sample (`vadlab.analysis.sample_memory_space`:
    `queries` (N, C), `items` (M, C), `nearest` (N,), optional `row` (N,) (-1: no grid), `anomalous` (N,), `space`,
    `method`) or {space name: sample} for several spaces (DREAM's normality and abnormality memories). Any M works:
    see `item_colours`."""
    from sklearn.manifold import TSNE

    spaces = {sample.get("space", ""): sample} if "queries" in sample else dict(sample)
    rows = []
    for name, s in spaces.items():
        queries, items = s["queries"], s["items"]  # (N, C), (M, C)
        points = np.concatenate([queries, items]).astype(np.float64)  # (N + M, C)
        perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3.0)))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
        cmap, norm, ticks = item_colours(len(items))
        panels = [(f"nearest item ({name})" if name else "nearest item", s["nearest"], cmap, norm)]
        row = np.asarray(s["row"]) if "row" in s else None
        if row is not None and (row >= 0).any():
            panels.append(("row of the query in the frame", row, "viridis", None))
        anomalous = np.asarray(s.get("anomalous", np.zeros(len(queries), bool)))
        if anomalous.any():
            panels.append(("label of the frame (red: anomalous)", anomalous.astype(float), "coolwarm", Normalize(0, 1)))
        rows.append((name, xy[: len(queries)], xy[len(queries):], panels, ticks))
    n_cols = max(len(panels) for *_, panels, _ in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(4.2 * n_cols, 4.0 * len(rows)), squeeze=False)
    for r, (_name, q, it, panels, ticks) in enumerate(rows):
        item_cmap, item_norm = panels[0][2], panels[0][3]
        few = len(it) <= 20
        star = 220.0 if few else max(12.0, 220.0 * 20 / len(it))  # 32 items: 137, 500 items: 12
        for c, (ax, (panel, values, cmap, norm)) in enumerate(zip(axes[r], panels)):
            order = np.random.default_rng(seed).permutation(len(values))  # no class drawn on top of the other
            sc = ax.scatter(q[order, 0], q[order, 1], c=values[order], cmap=cmap, norm=norm, s=4, alpha=0.7,
                            linewidths=0)
            # items in their own colours; with many items only in the nearest-item panel (white elsewhere, so
            # hundreds of coloured stars do not hide the colours of the queries)
            colours = {"c": np.arange(len(it)), "cmap": item_cmap, "norm": item_norm} if few or c == 0 else {"c": "w"}
            stars = ax.scatter(it[:, 0], it[:, 1], marker="*", s=star, edgecolors="k",
                               linewidths=0.8 if few else 0.3, **colours)
            ax.set_title(panel, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if panel.startswith("nearest"):
                _item_colourbar(fig, stars, ax, ticks)
            elif panel.startswith("row"):
                fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.03)
        for ax in axes[r, len(panels):]:
            ax.set_axis_off()
    methods = sorted({str(s["method"]) for s in spaces.values() if "method" in s})
    if title or methods:
        fig.suptitle(title or f"{', '.join(methods)}: memory queries and items (t-SNE)", fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def plot_flow_error_maps(rows: list[dict], *, path=None):
    """MAAM-Net's maps for a few frames, one row each: frame, flow (colour wheel), appearance error, motion error and
    the fused PSCD map, with the ground-truth mask outlined (cyan) where a row has one. A row is a dict with
    "frame" (H, W) in [0, 1], "flow" (2, H, W), "d_app", "d_mot", "pscd" (H, W) (None: branch not trained),
    optional "mask" (H, W) and "title"."""
    from vadlab.data.flow import flow_to_color

    names = (("frame", "frame"), ("flow", "flow t -> t+1"), ("d_app", "appearance error"),
             ("d_mot", "motion error"), ("pscd", "fused PSCD map"))
    fig, axes = plt.subplots(len(rows), len(names), figsize=(2.3 * len(names), 1.9 * len(rows) + 0.3),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j, (key, name) in enumerate(names):
            ax = axes[i, j]
            value = row.get(key)
            if value is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
            elif key == "frame":
                ax.imshow(value, cmap="gray", vmin=0, vmax=1)
            elif key == "flow":
                ax.imshow(flow_to_color(value))
            else:
                ax.imshow(value, cmap="inferno")
            mask = row.get("mask")
            if value is not None and mask is not None and mask.any():
                ax.contour(mask, levels=[0.5], colors="cyan", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
        axes[i, 0].set_ylabel(row.get("title", ""), fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def plot_item_usage(counts: np.ndarray, *, title: str = "", path=None):
    """How often each of a large memory's items is selected (any number of items, e.g. 2000): the share of
    selections by item rank (log scale; items never selected counted in the legend) and the cumulative share."""
    counts = np.asarray(counts, np.float64)
    share = np.sort(counts)[::-1] / max(counts.sum(), 1.0)
    rank = np.arange(1, len(share) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.4, 3.0))
    used = int((counts > 0).sum())
    ax1.semilogy(rank[share > 0], share[share > 0], lw=1.2, label=f"{used} of {len(counts)} items ever selected")
    ax1.set_xlabel("item rank")
    ax1.set_ylabel("share of selections")
    ax1.legend(fontsize=8)
    ax2.plot(rank / len(rank), np.cumsum(share), lw=1.2)
    ax2.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8, label="uniform use")
    ax2.set_xlabel("fraction of items (most used first)")
    ax2.set_ylabel("cumulative share")
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)
