"""The demo job (`vadlab demo`, `make demo`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from vadlab.data.layout import check_layout
from vadlab.reports.comparisons import _trained_epochs
from vadlab.reports.notebooks import NOTEBOOKS, report_notebooks

# queries per memory space in a smoke inspection's t-SNE (the notebook's default, 2000, at the other presets): a smoke
# report checks the path, and t-SNE's time grows with the points; our choice
SMOKE_TSNE_POINTS = 500


def training_estimate(names: list[str], preset: str, layout, overrides: dict | None = None,
                      runs: str | os.PathLike | None = None) -> str:
    """A line that says about how long training `names` at `preset` on `layout` takes, from each method's measured
    seconds per step (`register_method(step_seconds=...)`) times its steps on this data (as `vadlab reproduce
    --dry-run` counts them), less the epochs a run in `runs/<method>` already has; methods without a measured step
    time at `preset` are named as left out."""
    from vadlab.registry import create_method
    from vadlab.reproduce.plan import _duration, step_seconds, steps_per_epoch

    total, missing, done = 0.0, [], []
    for name in names:
        config = create_method(name, preset, **(overrides or {})).config
        left = config.epochs - min(config.epochs, (_trained_epochs(Path(runs) / name) or 0) if runs else 0)
        if left == 0:
            done.append(name)
            continue
        measured, steps = step_seconds(name, preset), steps_per_epoch(name, config, layout)
        if measured is None or steps is None:
            missing.append(name)
            continue
        total += left * steps * measured[0]
    todo = len(names) - len(done)
    if todo == 0:
        return f"estimate: every run is trained already ({', '.join(done)}); the evaluations and reports follow"
    if len(missing) == todo:
        return (f"estimate: none; no method to train has a measured step time at {preset} "
                f"({', '.join(missing)})")
    line = (f"estimate: training {todo - len(missing)} of {todo} methods at {preset} takes about {_duration(total)} "
            "(their measured seconds per step times their steps on this data)")
    if missing:
        line += f"; no measured step time at {preset} for {', '.join(missing)}"
    return line + "; evaluation and the reports come on top"


def demo(data: str = "data/synthetic-default", out: str = "reports", *, methods: list[str] | None = None,
         preset: str = "cpu", runs: str = "runs/demo", seed: int = 0, device: str = "auto", inspect: bool = True,
         epochs: int | None = None, jobs: int | None = None) -> list[dict]:
    """The demo: synthesise the walkway data (once), train every registered method (or `methods`) at `preset` into
    `runs/<method>`, then the reports: the comparison across methods (`notebooks/40_compare`) and, with `inspect`,
    one `20_inspect_run` per method; ends with `out/index.html`. The comparison runs first (it evaluates every run
    once; the inspections read those evaluations), then the inspections `jobs` at a time (default: one per core, at
    most 4), the cores shared among them. At the smoke preset the figures are exported as drafts (100 dpi PNG, no
    PDF: `viz.DRAFT_ENV`). Returns the report records."""
    from vadlab import engine, viz
    from vadlab.data.synthetic import synthesize
    from vadlab.registry import create_method, list_methods
    from vadlab.threads import available_cores

    names = list(methods) if methods else list_methods()
    overrides = {} if epochs is None else {"epochs": epochs}
    for name in names:
        create_method(name, preset, **overrides)  # an unknown method or preset fails before any work
    if not Path(data).exists():
        t0 = time.perf_counter()
        synthesize(data, "default", seed=seed)
        print(f"synthesised {data} in {time.perf_counter() - t0:.0f} s")
    layout = check_layout(data)
    print(f"data: {layout.root} {json.dumps(layout.summary())}")
    print(training_estimate(names, preset, layout, overrides, runs), flush=True)
    t_all = time.perf_counter()
    t_training = 0.0
    for name in names:
        run = Path(runs) / name
        model = create_method(name, preset, **overrides)
        t0 = time.perf_counter()
        if (_trained_epochs(run) or 0) < model.config.epochs:
            engine.fit(model, layout, run, seed=seed, device=device, resume=True)
        t_training += time.perf_counter() - t0
        print(f"{name} ({preset}): trained in {time.perf_counter() - t0:.0f} s")  # the comparison evaluates it
    common = {"data_root": str(layout.root), "preset": preset, "seed": seed, "device": device}
    notebooks = [NOTEBOOKS / "40_compare.ipynb"]
    names_out = ["compare"]
    per = {"compare": {"runs_dir": str(runs), "methods": names, **({"epochs": epochs} if epochs else {})}}
    if inspect:
        for name in names:
            notebooks.append(NOTEBOOKS / "20_inspect_run.ipynb")
            names_out.append(f"inspect_{name}")
            per[f"inspect_{name}"] = {"run_dir": str(Path(runs) / name), "out_dir": str(Path(runs) / name / "inspect"),
                                      **({"tsne_points": SMOKE_TSNE_POINTS} if preset == "smoke" else {})}
    jobs = jobs or max(1, min(4, available_cores()))
    draft = {viz.DRAFT_ENV: "1"} if preset == "smoke" else {}
    t_reports = time.perf_counter()
    records = report_notebooks(notebooks, out, common, names=names_out, per_notebook=per, jobs=jobs, env=draft)
    print(f"reports: {len(records)} in {time.perf_counter() - t_reports:.0f} s ({jobs} side by side after the "
          "comparison)")
    index = Path(out) / "index.html"
    compared = Path(out) / "compare" / "metrics.json"
    if compared.exists():
        for key, value in json.loads(compared.read_text()).items():
            if key.startswith("micro_auc["):
                print(f"  {key[len('micro_auc['):-1]:18s} micro AUC {value:.3f}")
    print(f"demo done in {time.perf_counter() - t_all:.0f} s (training {t_training:.0f} s, reports "
          f"{time.perf_counter() - t_reports:.0f} s)")
    print(f"open {index.resolve()}  (the comparison: {Path(out).resolve() / 'compare' / 'compare.html'})")
    return records
