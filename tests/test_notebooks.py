"""The papermill regression harness: every notebook in notebooks/ runs headlessly with smoke parameters, and the
values it records with scrapbook are read back and checked against tests/notebook_baselines.json.

A new notebook is picked up without editing this file. It needs a cell tagged `parameters` with `preset`,
`data_root` and `out_dir`, and should `sb.glue` its metrics and a list of `figures` (PNG paths).
Bounds for a notebook missing from the baseline file: every number finite, every `*auc*` in [0, 1].
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import pytest

from vadlab.reports import read_notebook_scraps, run_notebook

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
BASELINES = {k: v for k, v in json.loads((REPO / "tests" / "notebook_baselines.json").read_text()).items()
             if not k.startswith("_")}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean_and_thin(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{path.name}: outputs committed; run `make strip`"
    assert any("parameters" in c.metadata.get("tags", []) for c in code), f"{path.name}: no cell tagged parameters"
    assert nb.metadata.get("kernelspec", {}).get("name"), f"{path.name}: no kernelspec (papermill needs it)"
    for cell in code:  # logic lives in the package: cells are a few lines of vadlab calls
        assert "def " not in cell.source and "class " not in cell.source, f"{path.name}: a definition in a cell"
        assert len(cell.source.splitlines()) <= 12, f"{path.name}: a cell of more than 12 lines"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_headless_and_records_metrics(path, tiny_synthetic, tmp_path):
    import papermill as pm

    declared = set(pm.inspect_notebook(str(path)))
    wanted = {"preset": "smoke", "data_root": str(tiny_synthetic), "out_dir": str(tmp_path / "run"),
              "device": "cpu", "seed": 0, "tsne_points": 300}
    executed = run_notebook(path, tmp_path, {k: v for k, v in wanted.items() if k in declared})
    scraps = read_notebook_scraps(executed)
    assert scraps, f"{path.name} recorded nothing with scrapbook"
    bounds = BASELINES.get(path.name, {})  # keys starting with "_" are comments
    for name, (lo, hi) in bounds.items():
        assert name in scraps, f"{path.name}: {name} not recorded"
        assert lo <= scraps[name] <= hi, f"{path.name}: {name} = {scraps[name]} outside [{lo}, {hi}]"
    for name, value in scraps.items():
        if isinstance(value, (int, float)):
            assert math.isfinite(value), f"{path.name}: {name} = {value}"
            if "auc" in name:
                assert 0.0 <= value <= 1.0
    figures = scraps.get("figures", [])
    assert figures, f"{path.name}: no figures recorded"
    for fig in figures:
        fig = Path(fig) if Path(fig).is_absolute() else tmp_path / fig
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size > 2000, fig
