"""The `vadlab` command: real subprocess runs of the console script, exit status 2 on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vadlab.cli import main

VADLAB = [sys.executable, "-m", "vadlab.cli"]


def run(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(VADLAB + [str(a) for a in args], capture_output=True, text=True, cwd=cwd)


def test_console_script_is_installed():
    exe = shutil.which("vadlab", path=str(Path(sys.executable).parent))
    assert exe, "the `vadlab` console script is not installed next to this Python"
    proc = subprocess.run([exe, "list"], capture_output=True, text=True)
    assert proc.returncode == 0 and "mnad_pred" in proc.stdout and "smoke, cpu, paper" in proc.stdout
    assert "toy_dual" in proc.stdout  # the test fixture method, from $VADLAB_PLUGINS
    assert "ablations: no_memory" in proc.stdout


def test_train_evaluate_round_trip(random_layout, tmp_path):
    out = tmp_path / "run"
    proc = run("train", "mnad_recon", "--data", random_layout, "--out", out, "--preset", "smoke", "--epochs", "1",
               "--set", "memory_items=3", "--device", "cpu", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "run.json").read_text())["config"]["memory_items"] == 3
    proc = run("evaluate", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "metrics.json").read_text())
    assert report["method"] == "mnad_recon" and "micro AUC" in proc.stdout
    assert {"micro_auc", "macro_auc", "eer", "auc_global_norm", "auc_raw",
            "frames_left_out"} <= set(report)
    png = tmp_path / "curves.png"
    proc = run("curves", f"R={out}", "--out", png)
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in proc.stdout.splitlines()[1:3]}
    assert set(rows) == {"R", "frame difference"}  # the run and the baseline, one AUC per test video
    from sklearn.metrics import roc_auc_score

    from vadlab.engine import load_scores
    scores = load_scores(out)
    expected = roc_auc_score(scores["label"]["test00"], scores["score"]["test00"])
    assert float(rows["R"][0]) == pytest.approx(expected, abs=5e-4)


@pytest.mark.parametrize("argv, expect", [
    (["train", "nope", "--data", "X", "--out", "Y"], "unknown method 'nope'; valid methods: "),
    (["train", "mnad_pred", "--data", "X", "--out", "Y", "--preset", "huge"], "unknown preset 'huge'"),
    (["train", "mnad_pred", "--data", "X", "--out", "Y", "--set", "lamda=1"], "unknown config key 'lamda'"),
    (["train", "mnad_pred", "--data", "X", "--out", "Y", "--set", "epochs=two"], "epochs=two"),
    (["evaluate", "/nonexistent/run"], "no checkpoint"),
    (["data", "check", "/nonexistent/root"], "does not exist"),
    (["report", "/nonexistent/nb.ipynb", "--out", "Y"], "no such notebook"),
    (["data", "import", "avenue", "/nonexistent/src", "/tmp/never"], "/nonexistent/src"),
    (["curves", "R=/nonexistent/run", "--out", "Y/c.png"], "/nonexistent/run: not an evaluated run"),
    (["train", "mnad_recon", "--data", "X", "--out", "Y", "--preset", "smoke", "--set", "frames_in=4",
      "--set", "target_index=4"], "target_index 4"),
])
def test_bad_input_exits_2_naming_it(argv, expect, capsys, tmp_path):
    argv = [a.replace("X", str(tmp_path / "nodata")).replace("Y", str(tmp_path / "out")) for a in argv]
    assert main(argv) == 2
    assert expect in capsys.readouterr().err
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_bad_data_for_train_exits_2(tmp_path):
    (tmp_path / "root" / "training" / "frames").mkdir(parents=True)
    proc = run("train", "mnad_pred", "--data", tmp_path / "root", "--out", tmp_path / "out", "--preset", "smoke")
    assert proc.returncode == 2 and "testing/frames" in proc.stderr


def test_data_check_prints_the_summary(random_layout):
    proc = run("data", "check", random_layout)
    assert proc.returncode == 0, proc.stderr
    assert "testing   videos    2  frames      24  anomalous     12" in proc.stdout
