"""The demo job (`vadlab demo`, `make demo`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from vadlab.data.layout import check_layout
from vadlab.reports.comparisons import _trained_epochs
from vadlab.reports.notebooks import NOTEBOOKS, report_notebooks


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
                print(f"  {key[len('micro_auc['):-1]:18s} micro AUC {value:.3f}")
    print(f"demo done in {time.perf_counter() - t_all:.0f} s (training and reports)")
    print(f"open {index.resolve()}  (the comparison: {Path(out).resolve() / 'compare' / 'compare.html'})")
    return records
