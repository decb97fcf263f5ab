"""Reports: metrics and figures with provenance, the demo job, and papermill runs of the notebooks."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from vadlab import viz
from vadlab.data.layout import as_layout, check_layout
from vadlab.engine import git_commit
from vadlab.errors import VadlabError
from vadlab.eval.baselines import evaluate_frame_difference
from vadlab.eval.metrics import video_aucs
from vadlab.eval.scores import normalise
from vadlab.io import atomic_path, write_json

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def provenance(**extra) -> dict:
    """Who made a report file, from what: command line, git commit, versions, time."""
    import torch

    return {"command": " ".join(sys.argv), "git_commit": git_commit(), "python": platform.python_version(),
            "torch": torch.__version__, "host": platform.node(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            **extra}


def write_metrics(out: str | os.PathLike, report: dict, **prov) -> Path:
    """`metrics.json` and a sibling `provenance.json`, both written atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", report)
    write_json(out / "provenance.json", provenance(**prov))
    return out / "metrics.json"


def baseline_report(data, out, size: int = 64) -> dict:
    """Frame-difference baseline on a dataset's test split: metrics.json + provenance.json in `out`."""
    layout = as_layout(data)
    report = evaluate_frame_difference(layout, size)
    report["method"] = "frame_difference"
    write_metrics(out, report, data=str(layout.root), size=size)
    return report


def demo(data: str = "data/synthetic-default", out: str = "reports/demo", *, method: str = "mnad_pred",
         preset: str = "cpu", train: bool = True, seed: int = 0) -> dict:
    """The main job on the built-in synthetic data: synthesise (once), check, frame-difference baseline, then
    train and evaluate `method` (any registered one) at `preset`, and draw the comparison and one score curve
    into `out`."""
    from vadlab import engine
    from vadlab.data.synthetic import synthesize
    from vadlab.registry import create_method

    out = Path(out)
    model = create_method(method, preset) if train else None  # an unknown method or preset fails before any work
    if not Path(data).exists():
        synthesize(data, "default", seed=seed)
    layout = check_layout(data)
    print(f"data: {layout.root} {json.dumps(layout.summary())}")
    base = baseline_report(layout, out / "baseline")
    print(f"frame-difference baseline: micro AUC {base['micro_auc']:.4f}")
    summary = {"frame_difference": base["micro_auc"]}
    if model is not None:
        run = out / method
        engine.fit(model, layout, run, seed=seed, resume=True)
        report = engine.evaluate_run(run, layout)
        summary[method] = report["micro_auc"]
        print(f"{method} ({preset}): micro AUC {report['micro_auc']:.4f}")
        scores = engine.load_scores(run)
        video = max(layout.testing, key=lambda v: v.n_anomalous).name
        viz.save(viz.plot_score_curve(scores["score"][video], scores["label"][video],
                                      title=f"{method} on {video}"), out / "score_curve.png")
    viz.plot_comparison({Path(str(layout.root)).name: summary}, path=out / "comparison.png")
    write_metrics(out, summary, data=str(layout.root), method=method, preset=preset, seed=seed)
    return summary


def run_notebook(notebook: str | os.PathLike, out_dir: str | os.PathLike, parameters: dict | None = None,
                 *, kernel: str = "python3", progress: bool = False, cwd: str | os.PathLike | None = None) -> Path:
    """Execute a notebook with papermill into `out_dir/<name>.ipynb` (written atomically); returns its path.

    The kernel runs in `cwd` (default: the caller's working directory), so relative paths in `parameters` mean
    what they mean to the caller."""
    import papermill as pm

    notebook = Path(notebook)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / notebook.name
    with atomic_path(target) as tmp:
        pm.execute_notebook(str(notebook), str(tmp), parameters=parameters or {}, kernel_name=kernel,
                            progress_bar=progress, cwd=str(cwd or Path.cwd()))
    return target


def read_notebook_scraps(path: str | os.PathLike) -> dict:
    """Values recorded with `scrapbook.glue` in an executed notebook."""
    import scrapbook as sb

    return {name: scrap.data for name, scrap in sb.read_notebook(str(path)).scraps.items()}



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
            for file in sorted(folder.glob("*/metrics.json")):
                report = json.loads(file.read_text())
                name = "frame_difference" if report.get("method") == "frame_difference" else file.parent.name
                found.setdefault(name, []).append(report)
                if "baseline_frame_difference" in report:
                    found.setdefault("_baseline", []).append(report["baseline_frame_difference"])
        baseline = found.pop("_baseline", [])
        if "frame_difference" not in found and baseline:
            found["frame_difference"] = baseline[:1]  # the baseline is deterministic: one copy
        if not found:
            continue
        rows[label], spread[label] = {}, {}
        for name, reports in found.items():
            values = [r[metric] for r in reports]
            rows[label][name], spread[label][name] = float(np.mean(values)), float(np.std(values))
            train = [r["train_seconds"] for r in reports if "train_seconds" in r]
            lines.append(f"| {label} | {name} | {np.mean(values):.4f} | {', '.join(f'{v:.3f}' for v in values)} | "
                         f"{np.mean([r['macro_auc'] for r in reports]):.4f} | "
                         f"{f'{np.mean(train):.0f}' if train else ''} |")
    if out is not None:
        out = Path(out)
        viz.plot_comparison(rows, metric_label=metric.replace("_", " "), errors=spread, path=out / "comparison.png")
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
