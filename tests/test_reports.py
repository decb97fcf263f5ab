"""Reports: `vadlab report` (executed notebook, HTML, figures at 300 dpi and as PDF, metrics, provenance, the index,
failures), the comparison across methods, the demo at the smoke preset, the frame-difference baseline, run
comparison."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from vadlab.eval.baselines import frame_difference
from vadlab.registry import list_methods
from vadlab.reports import build_report, compare_methods, compare_runs, data_provenance, demo, write_index


def test_frame_difference_by_hand():
    frames = np.zeros((3, 2, 2, 1), np.uint8)
    frames[1] = 255  # frame 1 differs from frame 0 everywhere by 1.0; frame 2 from frame 1 as well
    frames[2, 0, 0] = 255  # ...except one pixel of four
    scores = frame_difference(frames)
    assert np.isnan(scores[0])  # no predecessor: left out, not filled in
    np.testing.assert_allclose(scores[1:], [1.0, 0.75])


def _notebook(path: Path, body: str) -> Path:
    """A small notebook: a parameters cell, `body`, a cell that records with scrapbook."""
    nb = new_notebook(cells=[
        new_code_cell("data_root = None\nseed = 0\ndevice = 'cpu'\nvalue = 0.5", metadata={"tags": ["parameters"]}),
        new_code_cell("import numpy as np\nimport scrapbook as sb\nfrom vadlab import viz"),
        new_code_cell(body),
        new_code_cell("sb.glue('micro_auc', value)\nsb.glue('data_root', str(data_root))"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_report_folder_index_and_a_failing_notebook(tmp_path, tiny_synthetic):
    good = _notebook(tmp_path / "good.ipynb", "viz.plot_score_curve(np.linspace(0, 1, 12), np.r_[np.zeros(6), "
                                              "np.ones(6)], method='mnad_pred', path='curve.png');")
    bad = _notebook(tmp_path / "bad.ipynb", "raise ValueError('broken on purpose')")
    root = tmp_path / "reports"
    rec = build_report(good, root, {"data_root": str(tiny_synthetic), "value": 0.75}, cwd=tmp_path)
    assert rec["status"] == "ok" and rec["key_numbers"] == {"micro_auc": 0.75}
    out = root / "good"
    assert (out / "good.ipynb").exists() and (out / "metrics.json").exists()
    html = (out / "good.html").read_text()
    assert "data:image/png;base64," in html  # images embedded
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["00_curve.pdf", "00_curve.png"]
    assert json.loads((out / "metrics.json").read_text())["micro_auc"] == 0.75
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["parameters"] == {"data_root": str(tiny_synthetic), "seed": 0, "device": "cpu", "value": 0.75}
    assert prov["seed"] == 0 and prov["device"]["asked"] == "cpu"
    assert set(prov["git"]) == {"commit", "dirty"} and prov["packages"]["torch"] and prov["packages"]["vadlab"]
    assert prov["data"] == data_provenance(tiny_synthetic) and len(prov["data"]["labels_sha256"]) == 64

    # a failing notebook: its folder says failed at the cell, the good report is untouched, the index lists both
    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("*")}
    rec = build_report(bad, root, {}, cwd=tmp_path)
    assert rec["status"] == "failed" and rec["cell"] == 3 and "broken on purpose" in rec["error"]
    assert json.loads((root / "bad" / "report.json").read_text())["status"] == "failed"
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    index = write_index(root).read_text()
    assert "good/good.html" in index and "good/figures/00_curve.png" in index
    assert "failed</span> at cell 3" in index and "broken on purpose" in index
    assert not list(root.glob(".*partial*")) and not list(root.glob(".*old*"))


def test_report_cli_exit_status(tmp_path):
    good = _notebook(tmp_path / "good.ipynb", "x = 1")
    bad = _notebook(tmp_path / "bad.ipynb", "1 / 0")
    cli = [sys.executable, "-m", "vadlab.cli", "report"]
    proc = subprocess.run(cli + [str(bad), str(good), "--out", str(tmp_path / "r")], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 1 and "bad failed at cell 3: ZeroDivisionError" in proc.stderr
    assert json.loads((tmp_path / "r" / "good" / "report.json").read_text())["status"] == "ok"  # ran after it
    assert "bad" in (tmp_path / "r" / "index.html").read_text()
    proc = subprocess.run(cli + [str(good), "--out", str(tmp_path / "r2"), "-p", "nope", "1"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "nope" in proc.stderr and not (tmp_path / "r2").exists()


def test_label_checksum_follows_the_labels(random_layout):
    first = data_provenance(random_layout)
    label = sorted((random_layout / "testing" / "labels").glob("*.npy"))[0]
    labels = np.load(label)
    labels[0] = 1 - labels[0]
    np.save(label, labels)
    second = data_provenance(random_layout)
    assert first["label_files"] == second["label_files"] == 2 and first["labels_sha256"] != second["labels_sha256"]


def test_compare_methods_every_registered_method_and_the_baseline(tiny_synthetic, smoke_run, tmp_path):
    from sklearn.metrics import auc

    from vadlab import engine

    runs = tmp_path / "runs"
    runs.mkdir()
    for name in list_methods():
        (runs / name).symlink_to(smoke_run(name), target_is_directory=True)
    result = compare_methods(tiny_synthetic, runs, preset="smoke", train=False, device="cpu")
    assert list(result["rows"]) == [*list_methods(), "frame_difference"]
    for name, row in result["rows"].items():
        assert row["inference_fps"] > 0 and 0 <= row["micro_auc"] <= 1
        fpr, tpr, micro = result["roc"][name]
        assert auc(fpr, tpr) == pytest.approx(micro)  # the ROC drawn is the one the AUC is of
        if name != "frame_difference":
            trained = engine.load_run(runs / name, "cpu")
            assert row["parameters"] == sum(p.numel() for p in trained.model.parameters())
            assert row["micro_auc"] == json.loads((runs / name / "metrics.json").read_text())["micro_auc"]
            assert row["pixel_auc"] is not None  # the synthetic data has masks
    types = set(result["per_type"]["frame_difference"])
    assert types and all(set(t) == types for t in result["per_type"].values())


@pytest.mark.slow
def test_demo_at_smoke_ends_with_the_index_and_the_comparison(tiny_synthetic, tmp_path):
    records = demo(str(tiny_synthetic), str(tmp_path / "reports"), preset="smoke", runs=str(tmp_path / "runs"),
                   device="cpu", inspect=False)
    assert [r["name"] for r in records] == ["compare"] and records[0]["status"] == "ok"
    out = tmp_path / "reports"
    metrics = json.loads((out / "compare" / "metrics.json").read_text())
    assert metrics["methods"] == [*list_methods(), "frame_difference"]
    assert all(f"micro_auc[{m}]" in metrics for m in metrics["methods"])
    figures = sorted(p.name for p in (out / "compare" / "figures").iterdir())
    assert any(f.endswith("roc.png") for f in figures)
    assert not any(f.endswith(".pdf") for f in figures)  # smoke: draft figures (100 dpi PNG, no PDF)
    assert "compare/compare.html" in (out / "index.html").read_text()
    for name in list_methods():
        assert (tmp_path / "runs" / name / "metrics.json").exists()


def test_compare_runs_folders_and_seeds(tiny_synthetic, smoke_run, tmp_path):
    from vadlab import engine

    out = tmp_path / "group"
    out.mkdir()
    (out / "mnad_pred").symlink_to(smoke_run("mnad_pred"), target_is_directory=True)
    report = engine.evaluate_run(out / "mnad_pred", tiny_synthetic, device="cpu", progress=False)
    rows = compare_runs([out], tmp_path / "cmp")
    assert rows[out.name]["mnad_pred"] == report["micro_auc"]
    assert (tmp_path / "cmp" / "comparison.png").exists()
    assert "mnad_pred" in (tmp_path / "cmp" / "comparison.md").read_text()
    merged = compare_runs([f"seeds={out},{out}"], tmp_path / "cmp2")  # one folder per seed, averaged
    assert merged["seeds"]["mnad_pred"] == report["micro_auc"]
    saved = json.loads((tmp_path / "cmp2" / "metrics.json").read_text())
    assert saved["std"]["seeds"]["mnad_pred"] == 0.0


def test_frame_difference_on_real_ped2_mini(ped2_mini):
    """The frame-difference baseline (docs/methods/index.md) on ped2-mini: 0.841 measured when it was written; real
    Ped2 gives 0.84-0.88."""
    from vadlab.reports import baseline_report

    report = baseline_report(ped2_mini, ped2_mini.parent / "fd")
    assert report["frames_left_out"] == 3  # frame 0 of each of the 3 test videos
    assert 0.80 <= report["micro_auc"] <= 0.90


def test_a_report_run_is_quiet(tmp_path, capfd):
    """No kernel-transport warning on the terminal (an IPC kernel), no progress bar left in the executed notebook
    (`vadlab.progress`: none in a headless run), and the smoke preset gets its banner in the index."""
    nb = _notebook(tmp_path / "quiet.ipynb", "from vadlab.progress import tqdm\nfor i in tqdm(range(3), desc='work'):"
                                              "\n    pass\nprint('finished')")
    root = tmp_path / "reports"
    rec = build_report(nb, root, {}, cwd=tmp_path)
    assert rec["status"] == "ok"
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err + captured.out
    outputs = [o for cell in nbformat.read(root / "quiet" / "quiet.ipynb", 4).cells for o in cell.get("outputs", [])]
    texts = "".join(o.get("text", "") for o in outputs) + json.dumps([o.get("data", {}) for o in outputs])
    assert "finished" in texts and "work:" not in texts and "%|" not in texts
    from vadlab.reports import SMOKE_NOTE

    assert SMOKE_NOTE.split(":")[0] not in write_index(root).read_text()
    prov = json.loads((root / "quiet" / "provenance.json").read_text())
    prov["parameters"]["preset"] = "smoke"
    (root / "quiet" / "provenance.json").write_text(json.dumps(prov))
    assert SMOKE_NOTE.split(":")[0] in write_index(root).read_text()


def test_reports_side_by_side_each_with_its_own_kernel_environment(tmp_path):
    """`jobs=2`: the first notebook alone, the others side by side, each kernel with its own figure folder and its
    share of the cores; `env` (the smoke demo's draft figures) reaches every kernel: a 100 dpi PNG and no PDF."""
    from vadlab import viz
    from vadlab.reports import report_notebooks
    from vadlab.threads import available_cores

    body = ("import os\nsb.glue('threads', os.environ.get('VADLAB_THREADS', 'unset'))\n"
            "viz.plot_score_curve(np.linspace(0, 1, 12), np.r_[np.zeros(6), np.ones(6)]);")  # exported only
    notebooks = [_notebook(tmp_path / f"n{i}.ipynb", body) for i in range(3)]
    root = tmp_path / "reports"
    records = report_notebooks(notebooks, root, {}, jobs=2, env={viz.DRAFT_ENV: "1"})
    assert [r["name"] for r in records] == ["n0", "n1", "n2"] and all(r["status"] == "ok" for r in records)
    threads = [json.loads((root / f"n{i}" / "metrics.json").read_text())["threads"] for i in range(3)]
    assert threads == ["unset", *[str(max(1, available_cores() // 2))] * 2]
    for i in range(3):
        figures = [p.name for p in (root / f"n{i}" / "figures").iterdir()]
        assert len(figures) == 1 and figures[0].endswith(".png")


def test_the_demo_estimate_counts_the_measured_step_times(tiny_synthetic, tmp_path):
    """The line the demo prints before training: measured seconds per step times the steps on this data, less what a
    run already has; methods without a measured step time are named, not guessed."""
    from vadlab.data.layout import load_layout
    from vadlab.registry import get_config
    from vadlab.reports.demo import training_estimate
    from vadlab.reproduce.plan import step_seconds, steps_per_epoch

    layout = load_layout(tiny_synthetic)
    names = list_methods()
    line = training_estimate(names, "cpu", layout)
    unmeasured = [n for n in names if step_seconds(n, "cpu") is None]
    assert all(n in line.split("no measured step time")[-1] for n in unmeasured)
    measured = [n for n in names if n not in unmeasured]
    total = sum(get_config(n, "cpu").epochs * steps_per_epoch(n, get_config(n, "cpu"), layout) *
                step_seconds(n, "cpu")[0] for n in measured)
    assert f"training {len(measured)} of {len(names)} methods at cpu" in line
    assert (f"{total:.0f} s" if total < 90 else f"{total / 60:.0f} min") in line
    (tmp_path / names[0]).mkdir()
    (tmp_path / names[0] / "history.json").write_text(json.dumps([{}] * get_config(names[0], "cpu").epochs))
    assert f"of {len(names) - 1} methods" in training_estimate(names, "cpu", layout, runs=tmp_path)


def test_progress_write_prints_above_the_bars(capsys):
    """`vadlab.progress.tqdm.write` is tqdm's: reproduce logs its messages through it."""
    from vadlab.progress import tqdm

    tqdm.write("a message")
    assert "a message" in capsys.readouterr().out
