"""Figures: matplotlib for print. Every function returns the Figure and, given `path`, saves it (PNG, atomically).

Figure-ready for papers: labelled axes with units, fonts readable at column width (`STYLE`), one colour per method in
every figure (`method_colour`: a registered method keeps its colour across figures, the frame-difference baseline is
grey), and one colour-blind-safe palette (`palette`) that works for 10 items (ten distinct colours) and for 2000
(a perceptually uniform colour map with a colour bar). Under `vadlab report` (`$VADLAB_FIGURE_EXPORT` set), every
figure saved here is also written as a 300 dpi PNG and a PDF into that folder."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg by itself
import numpy as np
from cycler import cycler
from matplotlib.colors import BoundaryNorm, Colormap, ListedColormap, Normalize
from matplotlib.ticker import MaxNLocator

from vadlab.io import atomic_path

# Ten colours that stay distinct under the common colour-vision deficiencies (the "colorblind" palette of seaborn,
# after Okabe and Ito); the grey (index 7) is kept for the frame-difference baseline.
COLOURBLIND10 = ("#0173B2", "#DE8F05", "#029E73", "#D55E00", "#CC78BC", "#CA9161", "#FBAFE4", "#949494",
                 "#ECE133", "#56B4E9")
BASELINE_COLOUR = COLOURBLIND10[7]
METHOD_COLOURS = tuple(c for c in COLOURBLIND10 if c != BASELINE_COLOUR)  # 9 colours for methods
MANY_CMAP = "viridis"  # beyond 10 items: perceptually uniform, readable in grey and with colour-vision deficiencies
BASELINE_NAMES = ("frame_difference", "frame difference", "frame_diff")
EXPORT_ENV = "VADLAB_FIGURE_EXPORT"
EXPORT_DPI = 300
# `$VADLAB_FIGURE_DRAFT=1` (the demo's smoke preset sets it): export a 100 dpi PNG and no PDF, since a smoke report
# only checks the path and 300 dpi PNG plus PDF of every figure is a good part of its time; other presets unchanged
DRAFT_ENV = "VADLAB_FIGURE_DRAFT"
DRAFT_DPI = 100

STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
         "legend.fontsize": 8, "figure.titlesize": 10, "axes.prop_cycle": cycler(color=list(METHOD_COLOURS)),
         "pdf.fonttype": 42}  # 42: TrueType in PDFs, editable text for journals
plt.rcParams.update(STYLE)


def palette(n: int) -> list[str]:
    """`n` colour-blind-safe colours (hex): up to 10 distinct ones (`COLOURBLIND10`), beyond that `n` samples of a
    perceptually uniform map (`MANY_CMAP`), where neighbours are alike and a colour bar, not a legend, reads them."""
    n = max(int(n), 0)
    if n <= len(COLOURBLIND10):
        return list(COLOURBLIND10[:n])
    from matplotlib.colors import to_hex

    cmap = plt.get_cmap(MANY_CMAP)
    return [to_hex(c) for c in cmap(np.linspace(0.0, 1.0, n))]


def method_colours() -> dict[str, str]:
    """{method: colour} of every registered method: the colour it registered (`register_method(colour=...)`, so a
    method keeps its colour whichever others are installed), the others the colours no method registered, in
    registry order."""
    from vadlab import registration

    try:
        from vadlab.registry import list_methods

        list_methods()  # loads the built-in methods and the plugins
    except Exception:  # a broken plugin must not stop a figure: the methods registered so far
        pass
    specs = [registration._REGISTRY[m] for m in sorted(registration._REGISTRY)]
    taken = {s.colour.upper() for s in specs if s.colour}
    free = [c for c in METHOD_COLOURS if c.upper() not in taken] or list(METHOD_COLOURS)
    out, k = {}, 0
    for spec in specs:
        if spec.colour:
            out[spec.name] = spec.colour
        else:
            out[spec.name], k = free[k % len(free)], k + 1
    return out


def method_colour(name: str) -> str:
    """The one colour of a method (or a run label starting with a method's name, e.g. "mnad_pred seed 1") in every
    figure: the frame-difference baseline grey, a registered method its colour (`method_colours`), other labels by
    a stable hash of the name."""
    import zlib

    key = str(name).strip()
    if key.lower() in BASELINE_NAMES or key.lower().startswith("frame diff"):
        return BASELINE_COLOUR
    colours = method_colours()
    for m in sorted(colours, key=len, reverse=True):  # the longest name that starts the label
        if key == m or key.startswith(m + " ") or key.startswith(m + "(") or key.startswith(m + "="):
            return colours[m]
    return METHOD_COLOURS[zlib.crc32(key.encode()) % len(METHOD_COLOURS)]


def _rgb_distance(a: str, b: str) -> float:
    from matplotlib.colors import to_rgb

    return float(np.linalg.norm(np.subtract(to_rgb(a), to_rgb(b))))


def label_colours(labels) -> dict[str, str]:
    """Distinct colours for any set of labels in one figure. A registered method's name and the baseline keep their
    one colour (`method_colour`); any other label (a run label, a user's) takes its `method_colour` unless a label
    of the figure already has a colour alike (within `_ALIKE` in RGB: two runs of one method, or two user labels
    that hash to neighbouring oranges), and then the free colour farthest from every colour in use (greedy; past
    the palette, samples of a colour map)."""
    labels = list(dict.fromkeys(str(x) for x in labels))
    own = set(method_colours()) | set(BASELINE_NAMES)
    out = {label: method_colour(label) for label in labels if label in own or label.lower() in BASELINE_NAMES}
    for label in labels:
        if label in out:
            continue
        wanted = method_colour(label)
        if wanted == BASELINE_COLOUR or all(_rgb_distance(wanted, c) > _ALIKE for c in out.values()):
            out[label] = wanted
            continue
        free = [c for c in METHOD_COLOURS if c not in out.values()]
        if not free:
            free = [c for c in palette(len(labels) + len(COLOURBLIND10)) if c not in out.values()]
        used = list(out.values()) + [BASELINE_COLOUR]
        out[label] = max(free, key=lambda c: min(_rgb_distance(c, u) for u in used))
    return {label: out[label] for label in labels}


_ALIKE = 0.25  # RGB distance under which two line colours read as one (#DE8F05 and #D55E00: 0.20; green #029E73
# and blue #0173B2, 0.30, read apart); our choice


def _export_name(fig, path) -> str:
    stem = Path(path).stem if path is not None else ""
    if not stem:
        title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
        title = title or next((ax.get_title() for ax in fig.axes if ax.get_title()), "figure")
        stem = title
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:60].strip("_") or "figure"


def metric_label(key: str) -> str:
    """The axis label of a metrics key: "micro_auc" -> "Micro AUC", "eer" -> "EER" (acronyms in capitals)."""
    words = [w.upper() if w.lower() in ("auc", "eer", "fps", "psnr", "roc") else w for w in str(key).split("_")]
    return _sentence_case(" ".join(words))


def _sentence_case(text: str) -> str:
    """An axis label with a capital first letter ("epoch" -> "Epoch"); a label whose first word is a name or holds a
    capital already ("t-SNE 1", "mnad_pred", "AUC") is left as it is."""
    first = text.split(" ", 1)[0] if text else ""
    if not first or not first[0].isalpha() or any(c.isupper() or c in "_-" for c in first):
        return text
    return text[0].upper() + text[1:]


def _capitalise_labels(fig) -> None:
    """One rule for every axis and colour-bar label of a figure: sentence case (`_sentence_case`)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            label = axis.get_label()
            label.set_text(_sentence_case(label.get_text()))
    for label in (getattr(fig, "_supxlabel", None), getattr(fig, "_supylabel", None)):
        if label is not None:
            label.set_text(_sentence_case(label.get_text()))


def save(fig, path: str | os.PathLike | None, dpi: int = 150):
    """Save `fig` to `path` (temp file, then os.replace); returns the figure. With `$VADLAB_FIGURE_EXPORT` set (as
    `vadlab report` does), also write it there as `NN_name.png` (300 dpi) and `NN_name.pdf`. Every axis label is
    put in sentence case first (`_capitalise_labels`)."""
    _capitalise_labels(fig)
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    export = os.environ.get(EXPORT_ENV)
    if export:
        folder = Path(export)
        folder.mkdir(parents=True, exist_ok=True)
        n = len(list(folder.glob("*.png")))
        name = f"{n:02d}_{_export_name(fig, path)}"
        draft = os.environ.get(DRAFT_ENV) == "1"
        for suffix, kw in ((".png", {"dpi": DRAFT_DPI if draft else EXPORT_DPI}),) + (() if draft else
                                                                                    ((".pdf", {}),)):
            with atomic_path(folder / f"{name}{suffix}") as tmp:
                fig.savefig(tmp, bbox_inches="tight", **kw)
    return fig


GT_COLOUR = "#D9D9D9"  # ground-truth anomalous frames: a light grey shade under every method's line (no hue of a
# method's line: a salmon shade hid the orange lines)


def _shade(ax, labels: np.ndarray, color: str = GT_COLOUR, alpha: float = 0.45, label: str = "ground truth anomaly"):
    """Shade the frame ranges where labels == 1."""
    labels = np.asarray(labels).astype(bool)
    edges = np.diff(np.concatenate([[0], labels.astype(int), [0]]))
    starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    for i, (a, b) in enumerate(zip(starts, stops)):
        ax.axvspan(a - 0.5, b - 0.5, color=color, alpha=alpha, lw=0, label=label if i == 0 else None)


def item_colours(n_items: int) -> tuple[Colormap, Normalize, object]:
    """(colour map, norm, colourbar ticks) that colour memory item indices 0..n_items-1 for any memory size.

    Up to 10 items: the ten colour-blind-safe colours of `palette`, item i in colour i, discrete, one tick per item.
    Beyond 10 (MAAM-Net's hundreds of items, STD's clusters, 2000 items): a continuous perceptually uniform map
    (`MANY_CMAP`) over the index range with a few integer ticks, since no eye tells 500 colours apart or reads a
    500-entry legend."""
    n = max(int(n_items), 1)
    if n <= len(COLOURBLIND10):
        cmap = ListedColormap(palette(n), name=f"items_{n}")
        return cmap, BoundaryNorm(np.arange(n + 1) - 0.5, n), np.arange(0, n, 1)
    return plt.get_cmap(MANY_CMAP), Normalize(-0.5, n - 0.5), MaxNLocator(nbins=6, integer=True)


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
    if len(history) == 1:  # one epoch has no curve: its loss terms as bars, labelled
        values = [history[0].get(k, np.nan) for k in keys]
        bars = ax.barh(list(keys)[::-1], values[::-1], color=METHOD_COLOURS[0])
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values[::-1]], fontsize=7, padding=2)
        ax.set_xlabel(f"loss after the only epoch (epoch {epochs[0]})")
        if values and np.nanmin(values) > 0 and np.nanmax(values) / np.nanmin(values) > 50:
            ax.set_xscale("log")
        ax.set_title("1 epoch: no curve yet, the loss terms it ended with", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        return save(fig, path)
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
                     method: str = "", path=None, ax=None):
    """Per-frame anomaly score of one video (NaN = unscored, shown as a gap) with its ground truth shaded; the line in
    `method`'s colour (`method_colour`)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 2.8))
    _shade(ax, labels)
    _shade(ax, np.isnan(scores), color="0.5", alpha=0.12, label="not scorable (left out)")
    frames = np.arange(len(scores))
    ax.plot(frames, scores, color=method_colour(method or title.split(" ")[0]), lw=1.4,
            label=f"{method} anomaly score" if method else "anomaly score")
    if baseline is not None:
        ax.plot(frames, baseline, color=BASELINE_COLOUR, lw=1, ls="--", label="frame difference")
    return _finish_score_axes(fig, ax, len(scores), "frame (index in the video)",
                              "anomaly score\n(per-video min-max, 0-1)", title, path)


def _finish_score_axes(fig, ax, n_frames: int, xlabel: str, ylabel: str, title: str, path):
    """Limits, labels, title and legend of a 0-1 score curve over `n_frames` frames; saves and returns `fig`."""
    ax.set_xlim(-0.5, n_frames - 0.5)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best", framealpha=0.8)
    return save(fig, path)


def plot_calibrated_curve(calibrated: np.ndarray, level: float, *, threshold: float = 0.99, method: str = "",
                          title: str = "", path=None, ax=None):
    """Calibrated score of one video without labels (`vadlab score`: each signal's quantile among the run's normal
    training frames, fused), the flag level dashed, flagged frames and unscorable frames shaded."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 2.8))
    calibrated = np.asarray(calibrated, np.float64)
    _shade(ax, np.nan_to_num(calibrated, nan=-1.0) > level, color="#D55E00", alpha=0.25,
           label=f"flagged (above the {threshold:g} quantile)")
    _shade(ax, np.isnan(calibrated), color="0.5", alpha=0.12, label="not scorable (left out)")
    ax.plot(np.arange(len(calibrated)), calibrated, color=method_colour(method or title.split(" ")[0]), lw=1.4,
            label=f"{method} calibrated score" if method else "calibrated score")
    ax.axhline(level, color="0.3", lw=1, ls="--", label=f"flag level {level:.3f}")
    return _finish_score_axes(fig, ax, len(calibrated), "frame (index in the video)",
                              "calibrated score\n(training quantiles, 0-1)", title, path)


def plot_fold_curve(timeline: dict, labels: np.ndarray, *, title: str = "", path=None, ax=None):
    """Score curve of one source test video of a few-anomaly split (`splits.source_timeline`): the test pieces'
    scores, ground truth shaded, the frames moved to training (labelled anomalies) and the margins marked."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 2.8))
    n = len(timeline["values"])
    _shade(ax, np.asarray(labels)[:n])
    _shade(ax, timeline["training"], color="tab:orange", alpha=0.35, label="moved to training (labelled anomaly)")
    _shade(ax, ~timeline["test"] & ~timeline["training"], color="0.5", alpha=0.2, label="margin / left out")
    ax.plot(np.arange(n), timeline["values"], color="tab:blue", lw=1.4, label="anomaly score (per piece min-max)")
    return _finish_score_axes(fig, ax, n, "frame of the source video", "score", title, path)


def plot_comparison(rows: dict[str, dict[str, float]], *, metric_label: str = "Micro AUC", path=None,
                    errors: dict[str, dict[str, float]] | None = None):
    """Grouped bars: rows {group (dataset): {method: value}}, optional error bars {group: {method: spread}}."""
    groups = list(rows)
    methods = list(dict.fromkeys(m for g in groups for m in rows[g]))
    methods = [m for m in methods if m != "frame_difference"] + [m for m in methods if m == "frame_difference"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(groups) * max(len(methods), 1) / 3, 3.4))
    width = 0.8 / max(len(methods), 1)
    colours = label_colours(methods)
    values = [v for g in groups for v in rows[g].values() if np.isfinite(v)]
    bottom = 0.0 if values and min(values) < 0.42 else 0.4  # a value below 0.4 (far worse than chance): from 0
    for j, m in enumerate(methods):
        xs = np.arange(len(groups)) + (j - (len(methods) - 1) / 2) * width
        vals = [rows[g].get(m, np.nan) for g in groups]
        errs = [(errors or {}).get(g, {}).get(m, 0.0) for g in groups]
        style = {"color": colours[m]}  # the baseline in grey, hatched
        if m == "frame_difference":
            style["hatch"] = "//"
        ax.bar(xs, vals, width, label=m, yerr=errs if errors else None, capsize=2, **style)
        for x, v in zip(xs, vals):
            if np.isfinite(v):
                ax.text(x, bottom + 0.02, f"{v:.3f}", ha="center", va="bottom", fontsize=7, rotation=90,
                        color="black")
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylabel(metric_label)
    ax.set_ylim(bottom, 1.08)
    ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
    ax.legend(fontsize=7, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def plot_error_maps(frames: np.ndarray, predictions: np.ndarray, errors: np.ndarray, masks: np.ndarray | None = None,
                    *, anomaly_maps: np.ndarray | None = None, titles: list[str] | None = None,
                    output_name: str = "prediction", path=None):
    """Rows of (frame, prediction or reconstruction, squared-error heat map [, the method's anomaly map]) with the
    ground-truth mask outlined (cyan) where `masks` (N, H, W) hold any pixel (MNAD Fig. 4, MAAM-Net Fig. 8, DREAM
    Fig. 7 style). Frames and predictions (N, H, W) in [0, 1]; errors and maps any scale, one colour scale per
    column shared by all rows (so rows compare), with a colour bar."""
    n = len(frames)
    columns = [("frame", frames, "gray", (0.0, 1.0)), (output_name, predictions, "gray", (0.0, 1.0)),
               ("squared error", errors, "inferno", None)]
    if anomaly_maps is not None:
        columns.append(("anomaly map", anomaly_maps, "inferno", None))
    fig, axes = plt.subplots(n, len(columns), figsize=(2.3 * len(columns) + 0.6, 2.2 * n + 0.3), squeeze=False)
    for j, (name, arrays, cmap, limits) in enumerate(columns):
        if limits is None:  # one scale per column, robust to a few hot pixels
            finite = np.concatenate([np.asarray(a, float)[np.isfinite(a)].ravel() for a in arrays] or [np.zeros(1)])
            limits = (0.0, float(np.percentile(finite, 99.5)) if finite.size else 1.0)
            limits = (limits[0], limits[1] if limits[1] > limits[0] else limits[0] + 1e-6)
        for i in range(n):
            ax = axes[i, j]
            im = ax.imshow(arrays[i], cmap=cmap, vmin=limits[0], vmax=limits[1], interpolation="nearest")
            if masks is not None and masks[i] is not None and np.asarray(masks[i]).any() and j != 1:
                ax.contour(np.asarray(masks[i], float), levels=[0.5], colors="cyan", linewidths=0.9)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j >= 2:
                cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
                cbar.ax.tick_params(labelsize=7)
                if i == n - 1:
                    cbar.set_label("squared error (intensity 0-1)" if j == 2 else "method's map (its units)",
                                   fontsize=7)
        if titles:
            for i in range(n):
                axes[i, 0].set_ylabel(titles[i], fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], *, title: str = "", path=None):
    """ROC curves of several methods on one plot: {name: (false positive rate, true positive rate, AUC)}, one colour
    per method (`method_colour`), the frame-difference baseline grey and dashed, chance as a dotted diagonal."""
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    colours = label_colours(curves)
    for name, (fpr, tpr, auc) in curves.items():
        base = colours[name] == BASELINE_COLOUR
        ax.plot(fpr, tpr, color=colours[name], lw=1.0 if base else 1.6, ls="--" if base else "-",
                label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls=":", label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (share of normal frames)")
    ax.set_ylabel("true positive rate (share of anomalous frames)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def plot_matching_heatmap(weights: np.ndarray, *, anomalous: np.ndarray | None = None, title: str = "",
                          path=None, ax=None):
    """Matching probabilities of sampled queries (rows) over the memory items (columns), (N, M) with rows summing to
    1; rows of queries from anomalous frames are marked on the right. Any M (10 or 2000 items)."""
    weights = np.asarray(weights, float)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(min(2.0 + 0.35 * weights.shape[1], 9.0),
                                                                            1.2 + 0.18 * len(weights)))
    norm, label = probability_scale(weights, weights.shape[1])
    im = ax.imshow(weights, cmap=MANY_CMAP, norm=norm, aspect="auto", interpolation="nearest")
    ax.set_xlabel("memory item (index)")
    ax.set_ylabel("sampled query")
    if weights.shape[1] <= 20:
        ax.set_xticks(np.arange(weights.shape[1]))
    if anomalous is not None and np.asarray(anomalous).any():
        rows = np.flatnonzero(np.asarray(anomalous))
        ax.scatter(np.full(len(rows), weights.shape[1] - 0.5 + 0.4), rows, marker="<", s=18, color="#D55E00",
                   clip_on=False, label="query of an anomalous frame")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label(label, fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
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


def plural(n: int, word: str, many: str | None = None) -> str:
    """"1 epoch", "3 epochs" (`many`: the plural where it is not `word` + "s")."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def frame_size_text(size) -> str:
    """One format for a frame size, given as one side (square) or as (H, W): "32x32", "24x40" (H x W)."""
    if isinstance(size, (int, float)):
        return f"{int(size)}x{int(size)}"
    height, width = size
    return f"{int(height)}x{int(width)}"


def number_text(name: str, value) -> str:
    """A number as what it means: AUCs, EERs and other rates to 3 digits, seconds to 1, frame and parameter counts
    whole (thousands separated), a frame size as HxW; None or NaN as an empty cell."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, str):
        return value
    key = name.lower()
    if "size" in key:
        return frame_size_text(value)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)) or any(w in key for w in ("frames left", "parameters", "epochs")):
        return f"{int(round(float(value))):,}"
    if "(s)" in key or "seconds" in key or "frames/s" in key:
        return f"{float(value):,.1f}"
    return f"{float(value):.3f}"


def text_table(rows: dict, index_name: str | None = None):
    """{row: {column: value}} as a DataFrame of text cells (`number_text`), for reading; the numbers themselves stay
    in metrics.json."""
    import pandas as pd

    frame = pd.DataFrame({r: {c: number_text(c, v) for c, v in cols.items()} for r, cols in rows.items()}).T
    frame = frame.fillna("")
    if index_name:
        frame.index.name = index_name
    return frame


def metrics_table(report: dict):
    """A small table of the headline metrics of an evaluation report (a pandas DataFrame of text cells: AUCs to 3
    digits, frames whole; `number_text`), the method beside the frame-difference baseline."""
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
    rows = [(name, number_text(name, a), number_text(name, b)) for name, a, b in rows]
    return pd.DataFrame(rows, columns=columns).set_index("metric")


def video_auc_table(aucs: dict[str, dict[str, float]]):
    """{run: {video: AUC}} (`reports.score_curves`) as a table, one row per test video, one column per run, AUCs to
    3 digits."""
    videos = list(dict.fromkeys(v for per_video in aucs.values() for v in per_video))
    return text_table({v: {run: per_video.get(v) for run, per_video in aucs.items()} for v in videos},
                      index_name="test video (AUC within it)")


def probability_scale(values, n_items: int) -> tuple[Normalize, str]:
    """The colour scale of a matching-probability map and its colour-bar label: 0 to 1 when the matching is peaked
    enough to read on it; when the largest probability is under twice the uniform 1/M (near uniform, as after a
    short training), the data's own range, with the label saying so, so that a near-uniform map is not one flat
    colour (our choice of threshold)."""
    values = np.asarray(values, float)
    finite = values[np.isfinite(values)]
    uniform = 1.0 / max(int(n_items), 1)
    if not finite.size or finite.max() >= 2 * uniform or n_items <= 1:
        return Normalize(0.0, 1.0), "matching probability"
    lo, hi = float(finite.min()), float(finite.max())
    hi = hi if hi > lo else lo + 1e-6
    return Normalize(lo, hi), f"near uniform (1/M = {uniform:.3g}):\nscale {lo:.3g} to {hi:.3g}"


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
        prob = weights.max(-1).values.reshape(h, w).numpy()
        pnorm, plabel = probability_scale(prob, weights.shape[1])
        panels += [(weights.argmax(-1).reshape(h, w).numpy(), "nearest item (Eq. 11)", cmap, norm),  # (h, w)
                   (prob, "its matching prob. (Eq. 1)", "viridis", pnorm, plabel)]
    return _map_panels(panels, ticks, "item", title=title, path=path, panel_width=2.6)


def _map_panels(panels: list, item_ticks, item_label: str, *, title: str, path, panel_width: float):
    """A row of image panels (image, name, colour map, norm): greyscale frames without a colour bar, the nearest
    item with the item colour bar (`item_colours`), any other map with a plain colour bar."""
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_width * len(panels), 2.9), squeeze=False)
    for ax, (img, name, cmap, norm, *label) in zip(axes[0], panels):
        im = ax.imshow(img, cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if name.startswith("nearest"):
            _item_colourbar(fig, im, ax, item_ticks, item_label)
        elif name not in ("frame", "output"):
            cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            if label:
                cbar.set_label(label[0], fontsize=7)
                cbar.ax.tick_params(labelsize=7)
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
        pnorm, plabel = probability_scale(prob, space.items.shape[0])
        panels.append((prob.reshape(h, w), "its matching prob.", "viridis", pnorm, plabel))
    return _map_panels(panels, ticks, f"item (of {space.items.shape[0]})", title=title, path=path, panel_width=2.8)


def plot_video_scores(curves: dict[str, dict[str, np.ndarray]], labels: dict[str, np.ndarray], *,
                      aucs: dict[str, dict[str, float]] | None = None, path=None):
    """One panel per test video: each run's score {run: {video: (N,)}} (normalised per video, NaN = gap) over the
    shaded ground truth; `aucs` {run: {video: AUC}} goes into the legend. A run named "frame difference" is grey."""
    videos = list(labels)
    colours = label_colours(curves)
    fig, axes = plt.subplots(len(videos), 1, figsize=(8, 1.9 * len(videos) + 0.4), squeeze=False, sharex=False)
    for ax, video in zip(axes[:, 0], videos):
        _shade(ax, labels[video])
        for run, per_video in curves.items():
            s = np.asarray(per_video[video], dtype=float)
            auc = (aucs or {}).get(run, {}).get(video)
            name = f"{run} ({auc:.3f})" if auc is not None and np.isfinite(auc) else run
            style = {"color": colours[run], "lw": 0.8 if run == "frame difference" else 1.2,
                     "ls": "--" if run == "frame difference" else "-"}
            ax.plot(np.arange(len(s)), s, label=name, **style)
        ax.set_xlim(-0.5, len(labels[video]) - 0.5)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(video, fontsize=9, loc="left")
        ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    axes[-1, 0].set_xlabel("frame (index in the video)")
    fig.supylabel("anomaly score (per-video min-max, 0-1); legend: AUC in this video", fontsize=8)
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


def plot_std_clip(batch: dict, inspected: dict, *, title: str = "", path=None):
    """One clip through STD (`method.inspect(batch)`, pixels in [0, 1]): top row the first frame x_fif, the last frame
    x_lif, the reconstruction xbar_fif, the real and the predicted RGB difference x_diff, xbar_diff, the predicted
    last frame xbar_lif; bottom row the three variance-attention maps over x_lif (the paper's Fig. 9), the cluster
    distance map D (Eq. 10) and the pixel error e. Panels a model variant lacks are left out."""
    first = ((batch["input"][0, 0] + 1) / 2).float().mean(0).cpu().numpy()  # (H, W), x_fif
    last = ((batch["target"][0] + 1) / 2).float().mean(0).cpu().numpy()  # (H, W), x_lif
    grey, signed = Normalize(0, 1), Normalize(-1, 1)
    top = [(first, "x_fif (first frame)", "gray", grey), (last, "x_lif (last frame)", "gray", grey)]
    if "recon" in inspected:
        top.append((inspected["recon"][0].float().mean(0).cpu().numpy(), "reconstruction of x_fif", "gray", grey))
    if "diff" in inspected:
        top += [(last - first, "RGB difference x_lif - x_fif", "coolwarm", signed),
                (inspected["diff"][0].float().mean(0).cpu().numpy(), "predicted difference", "coolwarm", signed)]
    top.append((inspected["output"][0].float().mean(0).cpu().numpy(), "predicted x_lif", "gray", grey))
    bottom = [(a[0].float().cpu().numpy(), f"attention, block {i + 1}", "magma", None)
              for i, a in enumerate(inspected.get("attention", []))]
    if inspected.get("distance") is not None:
        bottom.append((inspected["distance"][0].float().cpu().numpy(), "cluster distance D (Eq. 10)", "viridis", None))
    bottom.append((inspected["error"][0].float().cpu().numpy(), "pixel error e", "inferno", None))
    cols = max(len(top), len(bottom))
    fig, axes = plt.subplots(2, cols, figsize=(2.4 * cols, 5.2), squeeze=False)
    for row, panels in enumerate((top, bottom)):
        for ax in axes[row]:
            ax.axis("off")
        for ax, (img, name, cmap, norm) in zip(axes[row], panels):
            if name.startswith("attention"):  # Fig. 9 style: the map upsampled over the last frame
                ax.imshow(last, cmap="gray", norm=grey)
                im = ax.imshow(img, cmap=cmap, alpha=0.6, extent=(-0.5, last.shape[1] - 0.5, last.shape[0] - 0.5, -0.5),
                               interpolation="bilinear")
            else:
                im = ax.imshow(img, cmap=cmap, norm=norm, interpolation="nearest")
            ax.set_title(name, fontsize=8)
            if cmap != "gray":
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def plot_std_loss_terms(history: list[dict], *, pretrain_epochs: int, lambda_r: float | None = None, title: str = "",
                        path=None):
    """STD's weighted loss terms of Eq. 12 per epoch (a run's history): L_a, L_m and lambda_r * L_cluster on a log
    axis, the stage boundary (K-means init) as a dashed line, lambda_r in the legend. A history written before the
    weighted terms were recorded takes them from its raw terms and `lambda_r` (the run's fixed weight)."""
    from vadlab.analysis.std import weighted_terms

    history = weighted_terms(history, lambda_r)
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    names = {"w_app": "L_a (Eq. 3)", "w_mot": "L_m (Eq. 6)", "w_cluster": "lambda_r * L_cluster (Eq. 11)"}
    for key, label in names.items():
        pts = [(h["epoch"], h[key]) for h in history if key in h]
        if pts:
            if key == "w_cluster":
                lam = [h["lambda_r"] for h in history if "lambda_r" in h][-1]  # frozen after its first steps
                label += f", lambda_r = {lam:.3g}"
            ax.plot(*zip(*pts), marker="o", label=label)
    if any("x_diff_sq" in h for h in history):
        ax.plot(epochs, [h.get("x_diff_sq", np.nan) for h in history], ls=":", color="grey",
                label="mean(x_diff^2): the zero answer's L2")
    ax.axvline(pretrain_epochs + 0.5, ls="--", color="black", lw=0.8)
    ax.text(pretrain_epochs + 0.6, 0.98, " K-means init", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("epoch mean of the weighted term")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    ax.set_title(title or "STD: weighted loss terms of Eq. 12", fontsize=9)
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


def plot_reproduction(rows: list[dict], *, ours_label: str = "ours", paper_label: str = "paper", title: str = "",
                      path=None):
    """A paper table re-run (`vadlab.reproduce.summarise` rows): per row, our mean with the seed spread (std error
    bar, each replicate a dot) and the frame-difference baseline on the same frames (grey dashes) beside the paper's
    number (hatched: another dataset and scale), one bar group per row."""
    ids = [r["id"] for r in rows]
    fig, ax = plt.subplots(figsize=(1.6 + 0.75 * len(rows), 3.4))
    width = 0.38
    xs = np.arange(len(rows))
    means = np.array([r["mean"] for r in rows], dtype=float)
    stds = np.nan_to_num(np.array([r["std"] for r in rows], dtype=float))
    papers = np.array([np.nan if r["paper"] is None else r["paper"] for r in rows], dtype=float)
    ours_colour, paper_colour = METHOD_COLOURS[0], METHOD_COLOURS[1]
    ax.bar(xs - width / 2, means, width, yerr=stds, capsize=2, color=ours_colour, label=ours_label)
    for x, r in zip(xs, rows):
        values = list(r["ours"].values())
        ax.scatter(np.full(len(values), x - width / 2), values, s=9, color="black", zorder=3,
                   label="one replicate" if x == 0 and values else None)
    ax.bar(xs + width / 2, papers, width, color="white", edgecolor=paper_colour, hatch="//", label=paper_label)
    baselines = [r.get("baseline", np.nan) for r in rows]
    for x, b in zip(xs, baselines):  # the frame-difference baseline on the frames our runs scored
        if np.isfinite(b):
            ax.hlines(b, x - width, x, color=BASELINE_COLOUR, lw=2, ls="--",
                      label="frame difference (our frames)" if x == xs[np.isfinite(baselines)][0] else None)
    values = [v for v in np.concatenate([means, papers, baselines]) if np.isfinite(v)]
    bottom = 0.0 if values and min(values) < 0.42 else 0.4
    for x, m, p in zip(xs, means, papers):
        for xx, v in ((x - width / 2, m), (x + width / 2, p)):
            if np.isfinite(v):
                ax.text(xx, bottom + 0.02, f"{v:.3f}", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(xs, ids, rotation=30 if len(rows) > 5 else 0)
    ax.set_ylabel("frame AUC")
    ax.set_ylim(bottom, 1.08)
    ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
    ax.legend(fontsize=7, ncol=1, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    if title:
        fig.suptitle(title, y=1.12 if len(title) < 80 else 1.16, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)
