"""Reports: metrics and figures with provenance, the demo job, and papermill runs of the notebooks."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from vadlab import guards, viz
from vadlab.data.layout import as_layout, check_layout
from vadlab.engine import git_commit
from vadlab.errors import VadlabError
from vadlab.eval.baselines import evaluate_frame_difference
from vadlab.eval.metrics import video_aucs
from vadlab.eval.scores import normalise
from vadlab.io import atomic_path, write_json

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


PACKAGES = ("vadlab", "torch", "numpy", "scipy", "scikit-learn", "matplotlib", "plotly", "ipywidgets", "anywidget",
            "papermill", "scrapbook", "nbconvert", "opencv-python-headless", "jupyterlab")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a report depends on (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> dict:
    """{"commit": full hash or None, "dirty": tracked files changed since it (None outside a git checkout)}."""
    import subprocess

    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                text=True, timeout=10, cwd=here)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def data_provenance(root) -> dict:
    """A dataset root and a SHA-256 over its test labels (file names and contents, in order): two reports with the same
    checksum were scored against the same ground truth."""
    import hashlib

    root = Path(root)
    files = sorted((root / "testing" / "labels").glob("*.npy"))
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return {"root": str(root.resolve()), "label_files": len(files),
            "labels_sha256": digest.hexdigest() if files else None}


def provenance(**extra) -> dict:
    """Who made a report file, from what: command line, git commit and dirty flag, versions, time."""
    import torch

    git = git_state()
    return {"command": " ".join(sys.argv), "git_commit": git_commit(), "git": git, "python": platform.python_version(),
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
    inference frames per second (a separate scoring pass, model only) per method."""
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
        t0 = time.perf_counter()
        engine.infer(trained, layout, progress=False)
        seconds = time.perf_counter() - t0
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
                      "image_size": str(trained.config.image_size), "epochs": trained.epochs_trained,
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
                                "inference_fps": base["frames_scored"] / seconds, "image_size": str(size),
                                "epochs": 0, "frames_left_out": base["frames_left_out"]}
    return {"rows": rows, "roc": roc, "per_type": per_type, "data": str(layout.root)}


def comparison_table(result: dict):
    """The rows of `compare_methods` as a table (a pandas DataFrame), one row per method, the baseline last."""
    import pandas as pd

    columns = {"micro_auc": "micro AUC", "macro_auc": "macro AUC", "eer": "EER", "pixel_auc": "pixel AUC",
               "parameters": "parameters", "train_seconds": "training (s)", "inference_fps": "inference (frames/s)",
               "image_size": "frame size", "epochs": "epochs", "frames_left_out": "frames left out"}
    frame = pd.DataFrame({name: {columns[k]: v for k, v in row.items()} for name, row in result["rows"].items()}).T
    return frame[list(columns.values())]


def per_type_table(result: dict):
    """AUC per anomaly type (synthetic data) and method, a DataFrame; empty when the dataset records no types."""
    import pandas as pd

    return pd.DataFrame(result["per_type"]).T


def reported_table(methods: list[str] | None = None):
    """The papers' own reported frame AUCs (their datasets, their GPUs), one row per method that has them, labelled
    as such (`vadlab.eval.reported`); a DataFrame."""
    import pandas as pd

    from vadlab.eval.reported import DATASETS, reported
    from vadlab.registry import list_methods

    rows = {}
    for name in methods or list_methods():
        paper = reported(name)
        if paper:
            rows[name] = {**{f"{d} (paper's number)": paper.get(d) for d in DATASETS}, "source": paper["source"]}
    return pd.DataFrame(rows).T


# --- reports: executed notebook, HTML, every figure at 300 dpi and as PDF, metrics, provenance, index -------------
def _defaults(notebook: Path) -> dict:
    """The parameters a notebook declares, with their default values."""
    import ast

    import papermill as pm

    out = {}
    for name, info in pm.inspect_notebook(str(notebook)).items():
        try:
            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            out[name] = info["default"]
    return out


def _html(executed: Path, target: Path) -> None:
    import warnings

    from nbconvert import HTMLExporter

    exporter = HTMLExporter(embed_images=True)
    with warnings.catch_warnings():  # scrapbook's records have no HTML form, by design
        warnings.filterwarnings("ignore", message=".*application/scrapbook", category=UserWarning)
        body, _ = exporter.from_filename(str(executed))
    with atomic_path(target) as tmp:
        Path(tmp).write_text(body)


def _failure(exc) -> dict:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return {"cell": exc.exec_count, "error": f"{exc.ename}: {exc.evalue}"}
    return {"cell": None, "error": f"{type(exc).__name__}: {exc}"}


def build_report(notebook: str | os.PathLike, root: str | os.PathLike = "reports", parameters: dict | None = None, *,
                 name: str | None = None, cwd: str | os.PathLike | None = None, progress: bool = False) -> dict:
    """Run `notebook` with papermill into `root/<name>/` (default name: the notebook's) and write there: the executed
    notebook, `<name>.html` (images embedded), `figures/NN_*.png` (300 dpi) and `.pdf` of every figure the notebook
    saved through `vadlab.viz`, `metrics.json` (what it recorded with scrapbook), `provenance.json` (parameters,
    package versions, git commit and dirty flag, seed, device, data root and a checksum of its labels) and
    `report.json` (status; for a failure the cell that failed and its error).

    The report is built in a temp folder beside, then swapped in; a failing notebook still gets its folder (status
    "failed", the partial notebook and its HTML) and never touches the other reports. Returns `report.json`'s dict."""
    import shutil

    import papermill as pm

    notebook = Path(notebook)
    if not notebook.is_file():
        raise VadlabError(f"{notebook}: no such notebook")
    root = Path(root)
    name = name or notebook.stem
    params = dict(parameters or {})
    declared = _defaults(notebook)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise VadlabError(f"{notebook}: unknown parameter(s) {', '.join(unknown)}; its parameters: "
                          f"{', '.join(declared)}")
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{name}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "figures").mkdir(parents=True)
    executed = partial / f"{name}.ipynb"
    record = {"name": name, "notebook": str(notebook), "status": "ok", "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    t0 = time.perf_counter()
    previous = os.environ.get(viz.EXPORT_ENV)
    os.environ[viz.EXPORT_ENV] = str((partial / "figures").resolve())  # the kernel inherits it: viz.save exports
    try:
        pm.execute_notebook(str(notebook), str(executed), parameters=params, kernel_name="python3",
                            progress_bar=progress, cwd=str(cwd or Path.cwd()))
    except Exception as exc:  # noqa: BLE001  (any failure is recorded, the other reports go on)
        record.update(status="failed", **_failure(exc))
    finally:
        if previous is None:
            os.environ.pop(viz.EXPORT_ENV, None)
        else:
            os.environ[viz.EXPORT_ENV] = previous
    record["seconds"] = round(time.perf_counter() - t0, 1)
    scraps = {}
    if executed.exists():
        try:
            scraps = read_notebook_scraps(executed)
        except Exception:  # noqa: BLE001  (a notebook that failed before recording anything)
            scraps = {}
        try:
            _html(executed, partial / f"{name}.html")
        except Exception as exc:  # noqa: BLE001
            record["html_error"] = f"{type(exc).__name__}: {exc}"
    metrics = {k: v for k, v in scraps.items() if k != "figures"}
    write_json(partial / "metrics.json", metrics)
    used = {**declared, **params}
    data_root = scraps.get("data_root") or used.get("data_root")
    write_json(partial / "provenance.json", {
        "notebook": str(notebook), "parameters": used, "packages": package_versions(), "git": git_state(),
        "seed": used.get("seed"), "device": _device(used.get("device"), scraps.get("device")),
        "data": data_provenance(data_root) if data_root and Path(data_root).is_dir() else {"root": data_root},
        "command": " ".join(sys.argv), "host": platform.node(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    })
    record["figures"] = sorted(p.name for p in (partial / "figures").glob("*.png"))
    record["key_numbers"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not
                             isinstance(v, bool)}
    write_json(partial / "report.json", record)
    target = root / name
    old = root / f".{name}.{os.getpid()}.old"
    if target.exists():
        os.replace(target, old)
    os.replace(partial, target)
    shutil.rmtree(old, ignore_errors=True)
    return record


def _device(asked, recorded) -> dict:
    """The device a notebook asked for and the one that means on this machine ("auto": CUDA when there is one)."""
    import torch

    used = recorded
    if used is None and isinstance(asked, str):
        used = "cuda" if asked == "auto" and torch.cuda.is_available() else ("cpu" if asked == "auto" else asked)
    return {"asked": asked, "used": used, "cuda_available": torch.cuda.is_available()}


def _esc(text) -> str:
    import html

    return html.escape(str(text))


def write_index(root: str | os.PathLike = "reports") -> Path:
    """`root/index.html`: every report under `root` (a folder with `report.json`) with its status (a failure names
    its cell and error), its key numbers and its first figures, linking the HTML export and each figure."""
    root = Path(root)
    rows = []
    for file in sorted(root.glob("*/report.json")):
        rec = json.loads(file.read_text())
        folder = file.parent.name
        status = ("<span class='ok'>ok</span>" if rec["status"] == "ok" else
                  f"<span class='failed'>failed</span> at cell {_esc(rec.get('cell'))}: <code>{_esc(rec.get('error'))}"
                  "</code>")
        numbers = "".join(f"<tr><td>{_esc(k)}</td><td>{v:.4g}</td></tr>" for k, v in
                          list(rec.get("key_numbers", {}).items())[:12])
        figures = "".join(f"<a href='{_esc(folder)}/figures/{_esc(f)}'><img src='{_esc(folder)}/figures/{_esc(f)}' "
                          f"alt='{_esc(f)}' title='{_esc(f)}'></a>" for f in rec.get("figures", [])[:4])
        more = len(rec.get("figures", [])) - 4
        link = f"{folder}/{folder}.html" if (file.parent / f"{folder}.html").exists() else f"{folder}/{folder}.ipynb"
        rows.append(f"<tr><td><a href='{_esc(link)}'><b>{_esc(folder)}</b></a><br><small>{_esc(rec['notebook'])}"
                    f"<br>{_esc(rec.get('started', ''))}, {rec.get('seconds', 0):.0f} s</small></td><td>{status}</td>"
                    f"<td><table class='num'>{numbers}</table></td><td class='figs'>{figures}"
                    f"{f'<br><small>and {more} more in figures/</small>' if more > 0 else ''}</td></tr>")
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>vadlab reports</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table.main {{ border-collapse: collapse; width: 100%; }}
table.main > tbody > tr > td, table.main th {{ border-bottom: 1px solid #ccc; padding: 8px; vertical-align: top; }}
table.num td {{ padding: 0 8px 0 0; font-size: 0.85em; }}
.ok {{ color: #029E73; font-weight: bold; }} .failed {{ color: #D55E00; font-weight: bold; }}
.figs img {{ height: 150px; margin: 0 6px 6px 0; border: 1px solid #ddd; }}
</style></head><body>
<h1>vadlab reports</h1>
<p>{len(rows)} report(s) in <code>{_esc(root.resolve())}</code>, written {time.strftime("%Y-%m-%d %H:%M:%S")}.
Each folder holds the executed notebook, its HTML export, every figure as PNG (300 dpi) and PDF, metrics.json and
provenance.json.</p>
<table class="main"><thead><tr><th>report</th><th>status</th><th>key numbers</th><th>figures</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    with atomic_path(root / "index.html") as tmp:
        Path(tmp).write_text(page)
    return root / "index.html"


def report_notebooks(notebooks: list[str | os.PathLike], root: str | os.PathLike = "reports",
                     parameters: dict | None = None, *, names: list[str] | None = None, progress: bool = False,
                     per_notebook: dict | None = None) -> list[dict]:
    """`build_report` for each notebook (each gets only the `parameters` it declares, plus `per_notebook[name]`),
    then `write_index`. A failing notebook is recorded and the others still run. Returns the records."""
    records = []
    for i, notebook in enumerate(notebooks):
        name = names[i] if names else Path(notebook).stem
        declared = _defaults(Path(notebook)) if Path(notebook).is_file() else {}
        params = {k: v for k, v in (parameters or {}).items() if k in declared}
        params.update((per_notebook or {}).get(name, {}))
        records.append(build_report(notebook, root, params, name=name, progress=progress))
        rec = records[-1]
        print(f"{rec['name']}: {rec['status']}" + (f" at cell {rec.get('cell')}: {rec.get('error')}"
                                                   if rec["status"] != "ok" else f" ({rec['seconds']:.0f} s)"))
    write_index(root)
    return records


def demo(data: str = "data/synthetic-default", out: str = "reports", *, methods: list[str] | None = None,
         preset: str = "cpu", runs: str = "runs/demo", seed: int = 0, device: str = "auto", inspect: bool = True,
         epochs: int | None = None) -> list[dict]:
    """The demo: synthesise the walkway data (once), train every registered method (or `methods`) at `preset` into
    `runs/<method>`, then the reports: the comparison across methods (`notebooks/40_compare`) and, with `inspect`,
    one `20_inspect_run` per method; ends with `out/index.html`. Returns the report records."""
    from vadlab import engine
    from vadlab.data.synthetic import synthesize
    from vadlab.registry import create_method, list_methods

    names = list(methods) if methods else list_methods()
    overrides = {} if epochs is None else {"epochs": epochs}
    for name in names:
        create_method(name, preset, **overrides)  # an unknown method or preset fails before any work
    if not Path(data).exists():
        synthesize(data, "default", seed=seed)
    layout = check_layout(data)
    print(f"data: {layout.root} {json.dumps(layout.summary())}")
    t_all = time.perf_counter()
    for name in names:
        run = Path(runs) / name
        model = create_method(name, preset, **overrides)
        t0 = time.perf_counter()
        if (_trained_epochs(run) or 0) < model.config.epochs:
            engine.fit(model, layout, run, seed=seed, device=device, resume=True)
        print(f"{name} ({preset}): trained in {time.perf_counter() - t0:.0f} s")  # the comparison evaluates it
    common = {"data_root": str(layout.root), "preset": preset, "seed": seed, "device": device}
    notebooks = [NOTEBOOKS / "40_compare.ipynb"]
    names_out = ["compare"]
    per = {"compare": {"runs_dir": str(runs), "methods": names, **({"epochs": epochs} if epochs else {})}}
    if inspect:
        for name in names:
            notebooks.append(NOTEBOOKS / "20_inspect_run.ipynb")
            names_out.append(f"inspect_{name}")
            per[f"inspect_{name}"] = {"run_dir": str(Path(runs) / name), "out_dir": str(Path(runs) / name / "inspect")}
    records = report_notebooks(notebooks, out, common, names=names_out, per_notebook=per)
    index = Path(out) / "index.html"
    compared = Path(out) / "compare" / "metrics.json"
    if compared.exists():
        for key, value in json.loads(compared.read_text()).items():
            if key.startswith("micro_auc["):
                print(f"  {key[len('micro_auc['):-1]:18s} micro AUC {value:.4f}")
    print(f"demo done in {time.perf_counter() - t_all:.0f} s (training and reports)")
    print(f"open {index.resolve()}  (the comparison: {Path(out).resolve() / 'compare' / 'compare.html'})")
    return records
