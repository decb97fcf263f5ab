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


def _parsers(parser, path=()):
    """Every (command path, parser) under `parser`, subcommands included."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_argument_of_every_command_has_help_text():
    import argparse

    from vadlab.cli import build_parser

    commands = list(_parsers(build_parser()))
    assert len(commands) > 15  # the walk reaches the nested ones (data split kfold)
    missing = [f"vadlab {' '.join(path)}: {action.option_strings or action.dest}"
               for path, parser in commands for action in parser._actions
               if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help]
    assert not missing, "arguments without help text:\n" + "\n".join(missing)


def test_synth_help_names_the_generators_presets():
    from vadlab.cli import SYNTH_PRESETS
    from vadlab.data.synthetic import PRESETS

    assert set(SYNTH_PRESETS) == set(PRESETS)
    proc = run("data", "synth", "--help")
    assert proc.returncode == 0 and all(name in proc.stdout for name in PRESETS)


def test_list_help_and_early_errors_import_no_heavy_library():
    """`vadlab list`, every `--help`, a mistyped method and a path that is not there answer without importing torch,
    scikit-learn, plotly or OpenCV (the seconds a new user waits): the modules each leaves in sys.modules, in a fresh
    interpreter."""
    import os

    from vadlab.cli import build_parser

    argvs = [["list"], ["train", "nope", "--data", "X", "--out", "Y"], ["demo", "--preset", "huge"],
             ["evaluate", "/nonexistent/run"], ["score", "/nonexistent/run", "v.mp4"], ["report", "/nonexistent.ipynb"],
             ["curves", "R=/nonexistent/run", "--out", "c.png"], ["compare", "/nonexistent/runs"],
             ["baseline", "--data", "/nonexistent/data", "--out", "/nonexistent/out"]]
    argvs += [[*path, "--help"] for path, _ in _parsers(build_parser())]
    script = ("import json, sys\nfrom vadlab.cli import main\nfor argv in json.loads(sys.argv[1]):\n"
              "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
              "print('MODULES', json.dumps(sorted(m for m in ('torch', 'sklearn', 'plotly', 'cv2') "
              "if m in sys.modules)))\n")
    env = {k: v for k, v in os.environ.items() if k != "VADLAB_PLUGINS"}  # the test plugin imports torch itself
    for argv in argvs:
        proc = subprocess.run([sys.executable, "-c", script, json.dumps([argv])], capture_output=True, text=True,
                              env=env)
        line = [x for x in proc.stdout.splitlines() if x.startswith("MODULES ")]
        assert line, (argv, proc.stdout, proc.stderr)
        assert json.loads(line[0][len("MODULES "):]) == [], f"vadlab {' '.join(argv)} imported them"


def test_list_lines_up_its_columns():
    proc = run("list")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines()[1:] if not line.startswith(" ")]
    header = proc.stdout.splitlines()[0]
    assert {row.index(row.split()[1]) for row in rows} == {header.index("presets")}
