"""Comparisons: runs side by side (`compare_runs`, `score_curves`), one comparison across methods (`compare_methods` and
its tables), and the papers' own reported numbers (`reported_table`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from vadlab import guards, viz
from vadlab.data.layout import as_layout
from vadlab.errors import VadlabError
from vadlab.eval.baselines import evaluate_frame_difference
from vadlab.eval.metrics import video_aucs
from vadlab.eval.scores import normalise
from vadlab.io import atomic_path
from vadlab.reports.provenance import write_metrics


def compare_runs(groups: list[str | os.PathLike], out: str | os.PathLike | None = None, *,
                 metric: str = "micro_auc") -> dict[str, dict[str, float]]:
    """Side-by-side `metric` of every evaluated run under each group folder (e.g. one per dataset), with the
    frame-difference baseline. A group may be `LABEL=DIR1,DIR2,...` (e.g. one folder per seed): runs of the same
    name are averaged and the figure shows their spread. Writes `comparison.png`, `.md` and `metrics.json` to `out`."""
    rows: dict[str, dict[str, float]] = {}
    spread: dict[str, dict[str, float]] = {}
    lines = [f"| group | run | {metric} (mean) | per folder | macro AUC (mean) | train s (mean) |",
             "|---|---|---|---|---|---|"]
    for group in groups:
        label, sep, dirs = str(group).partition("=")
        folders = [Path(d) for d in dirs.split(",")] if sep else [Path(label)]
        label = label if sep else Path(label).name
        found: dict[str, list[dict]] = {}
        for folder in folders:
            if not folder.is_dir():
                raise VadlabError(f"{folder}: no such run folder")
            for file in guards.metrics_files(folder):  # warns of runs never evaluated
                report = json.loads(file.read_text())
                name = "frame_difference" if report.get("method") == "frame_difference" else file.parent.name
                found.setdefault(name, []).append(report)
                if "baseline_frame_difference" in report:
                    found.setdefault("_baseline", []).append(report["baseline_frame_difference"])
        baseline = found.pop("_baseline", [])
        if "frame_difference" not in found and baseline:
            found["frame_difference"] = baseline[:1]  # the baseline is deterministic: one copy
        if not found:
            raise guards.no_evaluated_runs(str(group))
        rows[label], spread[label] = {}, {}
        for name, reports in found.items():
            values = [r[metric] for r in reports]
            rows[label][name], spread[label][name] = float(np.mean(values)), float(np.std(values))
            train = [r["train_seconds"] for r in reports if "train_seconds" in r]
            lines.append(f"| {label} | {name} | {np.mean(values):.3f} | {', '.join(f'{v:.3f}' for v in values)} | "
                         f"{np.mean([r['macro_auc'] for r in reports]):.3f} | "
                         f"{f'{np.mean(train):.1f}' if train else ''} |")
    if out is not None:
        out = Path(out)
        viz.plot_comparison(rows, metric_label=viz.metric_label(metric), errors=spread, path=out / "comparison.png")
        with atomic_path(out / "comparison.md") as tmp:
            Path(tmp).write_text("\n".join(lines) + "\n")
        write_metrics(out, {"mean": rows, "std": spread}, groups=[str(g) for g in groups])
    print("\n".join(lines))
    return rows


def score_curves(runs: list[str], path: str | os.PathLike | None = None, data=None) -> dict[str, dict[str, float]]:
    """Per-video score curves of evaluated runs (`LABEL=RUN` or `RUN`) on one dataset, beside the frame-difference
    baseline at the first run's image size, with the AUC of each run in each video. Returns {run: {video: AUC}}."""
    from vadlab.engine import load_scores
    from vadlab.eval.baselines import frame_difference_scores

    curves: dict[str, dict[str, np.ndarray]] = {}
    size = None
    for item in runs:
        label, sep, folder = str(item).partition("=")
        folder = Path(folder if sep else label)
        label = label if sep else folder.name
        info, scores = folder / "run.json", folder / "scores.npz"
        if not info.exists() or not scores.exists():
            raise VadlabError(f"{folder}: not an evaluated run (needs run.json and scores.npz; run `vadlab evaluate`)")
        run = json.loads(info.read_text())
        data = data if data is not None else run["data"]
        size = size or run["config"]["image_size"]
        curves[label] = load_scores(folder)["score"]
    layout = as_layout(data)
    labels = {v.name: v.labels for v in layout.testing}
    for label, per_video in curves.items():
        if set(per_video) != set(labels):
            raise VadlabError(f"run {label!r} scored videos {sorted(per_video)}, the data {layout.root} has "
                              f"{sorted(labels)}")
    curves["frame difference"] = frame_difference_scores(layout.testing, size or 64)
    aucs = {label: video_aucs(per_video, labels) for label, per_video in curves.items()}
    curves = {label: normalise(per_video, "video") for label, per_video in curves.items()}
    viz.plot_video_scores(curves, labels, aucs=aucs, path=path)
    return aucs


# --- one comparison across methods ----------------------------------------------------------------------------------
def _trained_epochs(run: Path) -> int | None:
    history = run / "history.json"
    return len(json.loads(history.read_text())) if history.exists() else None


def compare_methods(data, runs_dir: str | os.PathLike, methods: list[str] | None = None, *, preset: str = "cpu",
                    train: bool = True, seed: int = 0, device: str = "auto", epochs: int | None = None,
                    progress: bool = False) -> dict:
    """One dataset, every registered method (or `methods`) and the frame-difference baseline.

    Each method's run is `runs_dir/<method>`: trained at `preset` when it is missing or unfinished (`train`), then
    evaluated with the common protocol. Returns {"rows": {name: metrics}, "roc": {name: (fpr, tpr, auc)},
    "per_type": {name: {type: AUC}}}: micro and macro AUC, EER, pixel AUC, parameters, training seconds and
    inference frames per second per method: the evaluation's own pass over the test split, frames read and the model
    run (no second pass only to time it; the first pass at a frame size also reads and resizes the frames)."""
    from sklearn.metrics import roc_curve

    from vadlab import engine
    from vadlab.eval.baselines import frame_difference_scores
    from vadlab.registry import create_method, list_methods

    layout = as_layout(data)
    names = list(methods) if methods else list_methods()
    runs_dir = Path(runs_dir)
    rows: dict[str, dict] = {}
    roc: dict[str, tuple] = {}
    per_type: dict[str, dict] = {}
    sizes = []
    for name in names:
        run = runs_dir / name
        overrides = {} if epochs is None else {"epochs": epochs}
        wanted = create_method(name, preset, **overrides)  # an unknown method or preset fails before any work
        done = _trained_epochs(run)
        if done is None or done < wanted.config.epochs:
            if not train:
                raise VadlabError(f"{run}: no finished run of {name} (train it, or pass train=True)")
            engine.fit(wanted, layout, run, seed=seed, device=device, resume=True, progress=progress)
        report = engine.evaluate_run(run, layout, device=device, progress=progress)
        trained = engine.load_run(run, device)
        seconds = report["inference_seconds"]  # its own pass over the test split, model only: no second pass
        sizes.append(trained.config.image_size)
        scores = engine.load_scores(run)
        s = np.concatenate([scores["score"][v.name] for v in layout.testing])
        y = np.concatenate([v.labels for v in layout.testing])
        keep = ~np.isnan(s)
        fpr, tpr, _ = roc_curve(y[keep], s[keep])
        roc[name] = (fpr, tpr, report["micro_auc"])
        per_type[name] = report.get("per_type_auc", {})
        rows[name] = {"micro_auc": report["micro_auc"], "macro_auc": report["macro_auc"], "eer": report["eer"],
                      "pixel_auc": report.get("pixel_auc"), "parameters": int(sum(p.numel() for p in
                                                                                   trained.model.parameters())),
                      "train_seconds": report.get("train_seconds"), "inference_fps": report["frames_scored"] / seconds,
                      "image_size": viz.frame_size_text(trained.config.image_size), "epochs": trained.epochs_trained,
                      "frames_left_out": report["frames_left_out"]}
    size = sizes[0] if sizes else 64
    t0 = time.perf_counter()
    raw = frame_difference_scores(layout.testing, size)
    seconds = time.perf_counter() - t0
    base = evaluate_frame_difference(layout, size)
    fd = normalise(raw, "video")
    s = np.concatenate([fd[v.name] for v in layout.testing])
    y = np.concatenate([v.labels for v in layout.testing])
    keep = ~np.isnan(s)
    fpr, tpr, _ = roc_curve(y[keep], s[keep])
    roc["frame_difference"] = (fpr, tpr, base["micro_auc"])
    per_type["frame_difference"] = base.get("per_type_auc", {})
    rows["frame_difference"] = {"micro_auc": base["micro_auc"], "macro_auc": base["macro_auc"], "eer": base["eer"],
                                "pixel_auc": None, "parameters": 0, "train_seconds": 0.0,
                                "inference_fps": base["frames_scored"] / seconds,
                                "image_size": viz.frame_size_text(size), "epochs": 0,
                                "frames_left_out": base["frames_left_out"]}
    return {"rows": rows, "roc": roc, "per_type": per_type, "data": str(layout.root)}


def comparison_table(result: dict):
    """The rows of `compare_methods` as a table (a pandas DataFrame of text cells: AUCs to 3 digits, seconds to 1,
    frame sizes as HxW; `viz.number_text`), one row per method, the baseline last."""
    columns = {"micro_auc": "micro AUC", "macro_auc": "macro AUC", "eer": "EER", "pixel_auc": "pixel AUC",
               "parameters": "parameters", "train_seconds": "training (s)",
               "inference_fps": "inference (frames/s, reading included)",
               "image_size": "frame size (HxW)", "epochs": "epochs", "frames_left_out": "frames left out"}
    frame = viz.text_table({name: {label: row.get(key) for key, label in columns.items()}
                            for name, row in result["rows"].items()}, index_name="method")
    return frame[list(columns.values())]


def per_type_table(result: dict):
    """AUC per anomaly type (synthetic data) and method, a DataFrame of numbers rounded to 3 digits; empty when the
    dataset records no types."""
    import pandas as pd

    return pd.DataFrame(result["per_type"]).T.round(3)


def reported_table(methods: list[str] | None = None):
    """The papers' own reported frame AUCs (their datasets, their GPUs), one row per method that has them, labelled
    as such (each method's `register_method(reported=...)`); a DataFrame."""
    import pandas as pd

    from vadlab.registry import REPORTED_DATASETS as DATASETS
    from vadlab.registry import list_methods, reported

    rows = {}
    for name in methods or list_methods():
        paper = reported(name)
        if paper:
            rows[name] = {**{f"{d} (paper's number)": paper.get(d) for d in DATASETS}, "source": paper["source"]}
    return pd.DataFrame(rows).T
