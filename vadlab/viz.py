"""Figures: matplotlib for print. Every function returns the Figure and, given `path`, saves it (PNG, atomically)."""

from __future__ import annotations

import os

from vadlab.io import atomic_path

import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg by itself
import numpy as np


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


def plot_history(history: list[dict], keys: tuple[str, ...] | None = None, path=None, ax=None):
    """Training losses per epoch (one line per loss term, log scale when they span decades)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3.2))
    keys = keys or tuple(k for k in history[0] if k not in ("epoch", "lr", "seconds")) if history else ()
    epochs = [h["epoch"] for h in history]
    for key in keys:
        ax.plot(epochs, [h[key] for h in history], marker="o", ms=3, label=key)
    values = np.array([[h[k] for k in keys] for h in history], dtype=float)
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
    return pd.DataFrame(rows, columns=["metric", report.get("method", "method"), "frame difference"]).set_index("metric")


def plot_memory_maps(batch: dict, inspected: dict, *, title: str = "", path=None):
    """One clip through a memory model: target frame, output, squared error, the nearest memory item of each
    query position (Eq. 11) and its matching probability (Eq. 1). `inspected` is `method.inspect(batch)`."""
    target = (batch["target"][0].float().mean(0).cpu().numpy() + 1) / 2  # (H, W) in [0, 1]
    output = (inspected["output"][0].float().mean(0).cpu().numpy() + 1) / 2
    panels = [(target, "frame", "gray", (0, 1)), (output, "output", "gray", (0, 1)),
              ((output - target) ** 2, "squared error", "inferno", (None, None))]
    if "weights" in inspected:  # a model without memory shows the first three panels only
        weights = inspected["weights"][0].float().cpu()  # (K, M)
        side = int(round(weights.shape[0] ** 0.5))
        panels += [(weights.argmax(-1).reshape(side, side).numpy(), "nearest item (Eq. 11)", "tab10", (-0.5, 9.5)),
                   (weights.max(-1).values.reshape(side, side).numpy(), "its matching prob. (Eq. 1)", "viridis", (0, 1))]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    for ax, (img, name, cmap, (lo, hi)) in zip(axes, panels):
        im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if name != "frame" and name != "output":
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


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
    """t-SNE of memory queries and items (MNAD Fig. 6) from `vadlab.models.mnad.sample_queries`: coloured by nearest
    item (items as stars), by the query's row in the frame (does addressing follow position?) and, when the sample
    holds anomalous frames, by label."""
    from sklearn.manifold import TSNE

    queries, items = sample["queries"], sample["items"]  # (N, C), (M, C)
    points = np.concatenate([queries, items]).astype(np.float64)
    perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3.0)))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
    q, it = xy[: len(queries)], xy[len(queries):]
    item_cmap, item_max = ("tab10", 9.5) if len(items) <= 10 else ("tab20", max(19.5, len(items) - 0.5))
    panels = [("nearest item (Eq. 11)", sample["nearest"], item_cmap, (-0.5, item_max)),
              ("row of the query in the frame", sample["row"], "viridis", (None, None))]
    if sample["anomalous"].any():
        panels.append(("label of the frame (red: anomalous)", sample["anomalous"].astype(float), "coolwarm", (0, 1)))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
    for ax, (name, values, cmap, (lo, hi)) in zip(axes[0], panels):
        order = np.random.default_rng(seed).permutation(len(values))  # no class drawn on top of the other
        sc = ax.scatter(q[order, 0], q[order, 1], c=values[order], cmap=cmap, vmin=lo, vmax=hi, s=4, alpha=0.7,
                        linewidths=0)
        ax.scatter(it[:, 0], it[:, 1], c=np.arange(len(it)), cmap=item_cmap, vmin=-0.5, vmax=item_max, marker="*", s=220,
                   edgecolors="k", linewidths=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if name.startswith("row"):
            fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.03)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)
