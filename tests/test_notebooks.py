"""Notebooks: sources that are code (notebooks/src/*.py), the generated .ipynb, and the papermill harness.

Fast: every committed notebook is exactly what its source generates, is clean and thin, and every `vadlab` name a
source imports exists. Slow: every notebook runs headlessly with smoke parameters and what it records with
scrapbook is read back and checked against tests/notebook_baselines.json. A notebook that declares a `run_dir`
parameter is an analysis notebook: it runs once per registered method on a smoke run trained once per session
(`smoke_run`), so a new method goes through it without editing this file.

Bounds for a notebook missing from the baseline file: every number finite, every `*auc*` in [0, 1].
"""

from __future__ import annotations

import ast
import importlib
import json
import math
from pathlib import Path

import nbformat
import pytest

from vadlab.registry import list_methods
from vadlab.reports import read_notebook_scraps, run_notebook

REPO = Path(__file__).resolve().parent.parent

SOURCES = sorted((REPO / "notebooks" / "src").glob("*.py"))
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
BASELINES = {k: v for k, v in json.loads((REPO / "tests" / "notebook_baselines.json").read_text()).items()
             if not k.startswith("_")}


def generated(source: Path, committed: str, tmp_path: Path) -> str:
    """The notebook `make notebooks` writes from `source` (`jupytext --update --to ipynb`: the source's cells and
    metadata, the committed notebook's cell ids), as text."""
    import jupytext
    from jupytext.combine import combine_inputs_with_outputs

    nb = combine_inputs_with_outputs(jupytext.read(source, fmt="py:percent"), nbformat.reads(committed, 4),
                                     fmt="py:percent")
    jupytext.write(nb, tmp_path / "generated.ipynb", fmt="ipynb")
    return (tmp_path / "generated.ipynb").read_text()


def test_every_notebook_has_a_source_and_is_what_it_generates(tmp_path):
    assert {p.stem for p in SOURCES} == {p.stem for p in NOTEBOOKS}, "a notebook without a source, or the reverse"
    for source in SOURCES:
        committed = (REPO / "notebooks" / f"{source.stem}.ipynb").read_text()
        assert committed == generated(source, committed, tmp_path), \
            f"{source.stem}.ipynb differs from notebooks/src/{source.name}; run `make notebooks`"
        nb = nbformat.reads(committed, 4)  # papermill's parameters cell and the kernel survive the round trip
        assert nb.metadata["kernelspec"]["name"] == "python3"
        assert [c.metadata.get("tags") for c in nb.cells if "parameters" in c.metadata.get("tags", [])] == \
            [["parameters"]]


def test_the_notebook_check_sees_a_changed_source(tmp_path):
    source, committed = SOURCES[0], (REPO / "notebooks" / f"{SOURCES[0].stem}.ipynb").read_text()
    changed = tmp_path / source.name
    changed.write_text(source.read_text().replace("# %% [markdown]", "# %% [markdown]\n# a new line", 1))
    assert generated(changed, committed, tmp_path) != committed


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_notebook_source_compiles_and_its_vadlab_imports_exist(source):
    tree = ast.parse(source.read_text(), filename=str(source))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vadlab":
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), \
                    f"{source.name}: `from {node.module} import {alias.name}`: no such name"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "vadlab":
                    importlib.import_module(alias.name)
    # attributes used on imported vadlab modules (e.g. `engine.load_run`) exist too
    modules = {alias.asname or alias.name: f"{node.module}.{alias.name}" for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module == "vadlab" for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            module = importlib.import_module(modules[node.value.id])
            assert hasattr(module, node.attr), f"{source.name}: {modules[node.value.id]}.{node.attr} does not exist"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean_and_thin(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{path.name}: outputs committed; run `make notebooks`"
    assert any("parameters" in c.metadata.get("tags", []) for c in code), f"{path.name}: no cell tagged parameters"
    assert nb.metadata.get("kernelspec", {}).get("name"), f"{path.name}: no kernelspec (papermill needs it)"
    for cell in code:  # logic lives in the package: cells are a few lines of vadlab calls
        assert "def " not in cell.source and "class " not in cell.source, f"{path.name}: a definition in a cell"
        assert len(cell.source.splitlines()) <= 12, f"{path.name}: a cell of more than 12 lines"


def _declared(path: Path) -> set[str]:
    import papermill as pm

    return set(pm.inspect_notebook(str(path)))


def _cases() -> list:
    cases = []
    for path in NOTEBOOKS:
        if "run_dir" in _declared(path):
            cases += [pytest.param(path, name, id=f"{path.stem}[{name}]") for name in list_methods()]
        else:
            cases.append(pytest.param(path, None, id=path.stem))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize(("path", "method"), _cases())
def test_notebook_runs_headless_and_records_metrics(path, method, tiny_synthetic, smoke_run, tmp_path):
    declared = _declared(path)
    wanted = {"preset": "smoke", "data_root": str(tiny_synthetic), "out_dir": str(tmp_path / "run"),
              "device": "cpu", "seed": 0, "tsne_points": 300, "runs_dir": str(tmp_path / "runs"), "epochs": None}
    if method is not None:
        wanted["run_dir"] = str(smoke_run(method))
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
    if path.stem in ("10_train_mnad", "11_train_dream", "12_train_maam"):  # the memory health they show (issue 23)
        spaces = {k: v for k, v in scraps["memory_health"].items() if not k.startswith("triplets_")}
        assert spaces and all(1 / h["items"] <= h["top_item_share"] <= 1 for h in spaces.values())
    figures = scraps.get("figures", [])
    assert figures or scraps.get("memory_spaces") == [], f"{path.name}: no figures recorded"  # [] only: no memory
    for fig in figures:
        fig = Path(fig) if Path(fig).is_absolute() else tmp_path / fig
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size > 2000, fig
    if method is not None and "memory_spaces" in scraps:
        from vadlab import engine
        from vadlab.analysis import memory_space_names
        from vadlab.data.layout import load_layout

        trained = engine.load_run(smoke_run(method), "cpu")
        assert scraps["memory_spaces"] == memory_space_names(trained, load_layout(tiny_synthetic).testing)


@pytest.mark.slow
def test_dream_notebook_without_the_ablation_trains_no_table_iii_row(tiny_synthetic, tmp_path):
    """11_train_dream with ablation=False: its Table III holds DREAM (the run trained above it) and the baseline,
    and no ablation row was trained."""
    from vadlab.analysis.dream import TABLE_III_ROWS

    path = REPO / "notebooks" / "11_train_dream.ipynb"
    out = tmp_path / "dream"
    executed = run_notebook(path, tmp_path, {"preset": "smoke", "data_root": str(tiny_synthetic), "device": "cpu",
                                             "out_dir": str(out), "ablation": False, "tsne_points": 300})
    table = read_notebook_scraps(executed)["table_iii"]["micro_auc"]
    assert set(table) == {"UNet+DualMem+Disc (DREAM)", "frame_difference"}
    assert [a for a in TABLE_III_ROWS.values() if a and (out / a).exists()] == []
    assert (out / "dream" / "metrics.json").exists()


@pytest.mark.slow
def test_memory_notebook_with_and_without_separateness(tiny_synthetic, smoke_run, tmp_path):
    """30_memory_spaces with two runs: MNAD-P and its no-separateness ablation, each space of each run drawn."""
    from vadlab import engine
    from vadlab.registry import create_method

    other = tmp_path / "no_sep"
    engine.fit(create_method("mnad_pred", "smoke", ablations=["no_separateness"]), tiny_synthetic, other,
               device="cpu", progress=False)
    path = REPO / "notebooks" / "30_memory_spaces.ipynb"
    executed = run_notebook(path, tmp_path, {"run_dir": str(smoke_run("mnad_pred")), "other_run_dir": str(other),
                                             "out_dir": str(tmp_path / "fig"), "tsne_points": 300, "device": "cpu"})
    scraps = read_notebook_scraps(executed)
    names = {k for k in scraps if k.startswith("max_prob_mean")}
    assert names == {"max_prob_mean[mnad_pred][memory]", "max_prob_mean[without separateness loss][memory]"}
    assert all(0.0 < scraps[k] <= 1.0 for k in names)
    assert sorted(Path(f).name for f in scraps["figures"]) == sorted(
        f"{label}_memory_{kind}.png" for label in ("mnad_pred", "without_separateness_loss")
        for kind in ("tsne", "matching"))


@pytest.mark.slow
def test_mnad_notebook_compares_with_and_without_the_memory(tiny_synthetic, tmp_path):
    """10_train_mnad with compare_no_memory=True (issue 28): the w/o-memory run trained beside the memory run, both
    evaluated on the same frames, the comparison recorded and drawn."""
    import json

    path = REPO / "notebooks" / "10_train_mnad.ipynb"
    out = tmp_path / "mnad"
    executed = run_notebook(path, tmp_path, {"preset": "smoke", "data_root": str(tiny_synthetic), "device": "cpu",
                                             "out_dir": str(out), "compare_no_memory": True, "tsne_points": 300})
    scraps = read_notebook_scraps(executed)
    plain = json.loads((tmp_path / "mnad_no_memory" / "metrics.json").read_text())
    assert scraps["no_memory_micro_auc"] == plain["micro_auc"]
    assert json.loads((tmp_path / "mnad_no_memory" / "run.json").read_text())["config"]["use_memory"] is False
    figure = Path(scraps["figures"][-1])
    figure = figure if figure.is_absolute() else tmp_path / figure
    assert figure.name == "memory_comparison.png" and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
