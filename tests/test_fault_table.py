"""The fault table of issue 25: every fault and bad input a new user met, as tests. Real `vadlab` subprocesses where
the fault needs a process of its own (a crafted checkpoint whose unpickling would run code, a signal during a
download); `cli.main` in this process where an exit status and a message are the whole story.

Rows (the issue's table), each with the test that holds it:
- a crafted checkpoint.pt (pickle payload): evaluate and score refuse it, exit 2, nothing runs  -> test_crafted_*
- --set lr=1e6 / 1e15 / 1e38 / image_size=4096: refused at validation, exit 2                 -> test_bounds_*
- divergence inside epoch 1 (weights grow, BatchNorm running_var Inf): stopped, no checkpoint    -> test_divergence_*
- a checkpoint holding Inf: evaluate and score refuse it naming the tensor; save refuses it      -> test_non_finite_*
- a step too big for the memory: exit 2 naming the fields, nothing written                       -> test_memory_*
- --resume with another --seed or --data: exit 2 naming each field, nothing rewritten             -> test_resume_*
- a MNAD-P checkpoint in a MNAD-R run folder: exit 2                                             -> test_mixed_*
- a video cut short of its header: a warning and summary.json's `short`                          -> test_short_*
- compare on an unevaluated run, report on a non-notebook: exit 2                                 -> test_compare_*,
  test_report_*
- train --evaluate with a broken test frame: exit 2 before training                               -> test_evaluate_*
- --threads 0, --device cuda without CUDA, an undecodable training frame: no empty --out left    -> test_early_*
- SIGTERM during a download: exit 143, the bytes received kept in the .part, named               -> test_sigterm_*
Rows that already behaved (bad --set values, malformed data, run locks, SIGKILL and --resume, SIGTERM/SIGINT during
training, download faults) are held by tests/test_faults.py, test_runs.py, test_config.py, test_layout.py and
test_download.py; a few of them are repeated here as CLI rows (test_still_*).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import write_random_layout

from vadlab import checkpoint, engine, guards
from vadlab.cli import main
from vadlab.errors import DivergenceError
from vadlab.registry import create_method

VADLAB = [sys.executable, "-m", "vadlab.cli"]


def _cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(VADLAB + args, capture_output=True, text=True, env=env, timeout=240, **kw)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_random_layout(tmp_path_factory.mktemp("faults") / "data")


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    """A 1-epoch MNAD-P smoke run (read-only for the tests: copy it before changing it)."""
    run = tmp_path_factory.mktemp("trained") / "mnad_pred"
    engine.fit(create_method("mnad_pred", "smoke", epochs=1), data, run, device="cpu", progress=False)
    return run


def _copy(run: Path, tmp_path: Path, name: str = "run") -> Path:
    target = tmp_path / name
    shutil.copytree(run, target)
    return target


def _video(path: Path, frames: int = 27) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    return path


# --- a crafted checkpoint: nothing in it runs ---------------------------------------------------------------------
class _Payload:
    """Unpickling this creates a file (the proof that code ran)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_crafted_checkpoint_is_refused_by_evaluate_and_score_and_runs_nothing(trained, tmp_path):
    run = _copy(trained, tmp_path)
    marker = tmp_path / "PAYLOAD_RAN"
    good = torch.load(trained / engine.CHECKPOINT, weights_only=True)
    torch.save({**good, "config": _Payload(marker)}, run / engine.CHECKPOINT)  # looks like a vadlab checkpoint
    video = _video(tmp_path / "clip.avi")
    for args in (["evaluate", str(run), "--device", "cpu", "--quiet"],
                 ["score", str(run), str(video), "--device", "cpu", "--quiet", "--no-video"]):
        proc = _cli(args)
        assert proc.returncode == 2, proc.stderr
        assert "refused" in proc.stderr and "Nothing in it was run" in proc.stderr
        assert "python -m vadlab.checkpoint convert" in proc.stderr  # how to convert a file one trusts
        assert "Traceback" not in proc.stderr
        assert not marker.exists(), f"{args[0]} ran the payload"
    assert not (run / "metrics.json").exists() and not (run / "score").exists()
    # the plain-pickle form (no torch zip container) is refused the same way
    import pickle

    with open(run / engine.CHECKPOINT, "wb") as f:
        pickle.dump({"method": "mnad_pred", "x": _Payload(marker)}, f)
    proc = _cli(["evaluate", str(run), "--device", "cpu", "--quiet"])
    assert proc.returncode == 2 and "refused" in proc.stderr and not marker.exists()


def test_checkpoint_holds_tensors_and_plain_data_only(trained):
    state = torch.load(trained / engine.CHECKPOINT, weights_only=True)  # PyTorch's restricted unpickler reads it
    assert state["format"] == checkpoint.FORMAT == 2
    assert isinstance(state["config"], dict)
    assert torch.is_tensor(state["rng"]["torch"]) and torch.is_tensor(state["rng"]["numpy"]["keys"])
    assert torch.is_tensor(state["rng"]["python"]["state"])


def test_format_1_checkpoint_loads_safely_and_a_trusted_old_one_converts(trained, tmp_path):
    run = _copy(trained, tmp_path)
    state = checkpoint.load(trained / engine.CHECKPOINT)  # RNG states back as NumPy / Python tuples
    assert isinstance(state["rng"]["numpy"], tuple)
    old = {k: v for k, v in state.items() if k != "format"}  # format 1: NumPy arrays in the RNG state
    torch.save(old, run / engine.CHECKPOINT)
    again = checkpoint.load(run / engine.CHECKPOINT)
    assert np.array_equal(again["rng"]["numpy"][1], state["rng"]["numpy"][1])
    assert again["rng"]["python"] == state["rng"]["python"]
    # an old file holding a Python object the safe loader refuses: converted knowingly, the original kept
    torch.save({**old, "data": Path("/an/older/vadlab/kept/a/Path")}, run / engine.CHECKPOINT)
    assert main(["evaluate", str(run), "--device", "cpu", "--quiet"]) == 2
    assert checkpoint.main(["convert", str(run / engine.CHECKPOINT)]) == 0
    assert (run / "checkpoint.pt.unsafe").exists()
    assert checkpoint.load(run / engine.CHECKPOINT)["format"] == 2
    assert main(["evaluate", str(run), "--device", "cpu", "--quiet"]) == 0


# --- bounds -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting, field", [("lr=1e6", "lr=1000000.0"), ("lr=1e15", "lr=1000000000000000.0"),
                                            ("lr=1e38", "lr=1e+38"), ("image_size=4096", "image_size=4096"),
                                            ("batch_size=100000", "batch_size=100000"), ("epochs=10000000", "epochs=")])
def test_bounds_refuse_at_validation(data, tmp_path, capsys, setting, field):
    out = tmp_path / "out"
    assert main(["train", "mnad_pred", "--data", str(data), "--out", str(out), "--preset", "smoke", "--set",
                 setting, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert field in err and "must be" in err and "Traceback" not in err
    assert not out.exists()


def test_memory_estimate_names_the_fields_and_writes_nothing(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(guards, "available_memory", lambda device: 2 << 30)  # a 2 GiB machine
    out = tmp_path / "out"
    assert main(["train", "mnad_pred", "--data", str(data), "--out", str(out), "--preset", "smoke", "--set",
                 "image_size=1024", "--set", "batch_size=64", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "of memory" in err and "image_size=1024" in err and "batch_size=64" in err
    assert not out.exists()


def test_cache_larger_than_the_free_disk_is_refused(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(guards, "free_disk", lambda folder: 10_000)  # 10 kB free
    out = tmp_path / "out"
    assert main(["train", "mnad_pred", "--data", str(data), "--out", str(out), "--preset", "smoke", "--set",
                 "image_size=512", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "decoded-frame cache" in err and "image_size=512" in err
    assert not out.exists()


# --- divergence seen in the weights -------------------------------------------------------------------------------
def _unbounded(lr: float):
    """A config with an lr past the bound (as a run diverging for its own reasons would behave)."""
    method = create_method("mnad_pred", "smoke", epochs=2)
    object.__setattr__(method.config, "lr", lr)
    return method


@pytest.mark.parametrize("lr, what", [(1e6, "weights over 10000 times"), (1e15, "non-finite|weights over")])
def test_divergence_inside_epoch_1_stops_and_leaves_no_checkpoint(data, tmp_path, lr, what):
    run = tmp_path / "run"
    with pytest.raises(DivergenceError, match=what) as info:
        engine.fit(_unbounded(lr), data, run, device="cpu", progress=False)
    assert "epoch 1, step 1" in str(info.value)
    assert not (run / engine.CHECKPOINT).exists()


def test_a_loss_exploding_against_the_first_steps_stops_training():
    model = torch.nn.Linear(2, 2)
    watch = guards.WeightWatch(model, every=1)
    for _ in range(guards.REFERENCE_STEPS):
        watch.after_step(torch.tensor(0.5), "epoch 1", "kept")
    watch.after_step(torch.tensor(0.5 * guards.LOSS_EXPLOSION * 0.9), "epoch 1", "kept")  # within the bound
    with pytest.raises(DivergenceError, match="loss 1e\\+04 is over 10000 times the mean of the run's first 10"):
        watch.after_step(torch.tensor(1e4), "epoch 2, step 3 of 9", "kept")


def test_non_finite_buffer_is_caught_after_the_step():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    watch = guards.WeightWatch(model, every=1)
    model[1].running_var[0] = float("inf")
    with pytest.raises(DivergenceError, match=r"buffer 1.running_var \(1 Inf of 2\)"):
        watch.after_step(torch.tensor(1.0), "epoch 1, step 1 of 3", "kept")


def test_non_finite_checkpoint_is_refused_by_evaluate_score_and_save(trained, tmp_path):
    run = _copy(trained, tmp_path)
    state = torch.load(trained / engine.CHECKPOINT, weights_only=True)
    bn = next(k for k in state["model"] if k.endswith("running_var"))
    state["model"][bn] = torch.full_like(state["model"][bn], float("inf"))
    with pytest.raises(DivergenceError, match="running_var"):
        checkpoint.save(tmp_path / "never.pt", state)  # never written
    assert not (tmp_path / "never.pt").exists()
    torch.save(state, run / engine.CHECKPOINT)  # as an older vadlab could have kept it
    video = _video(tmp_path / "clip.avi")
    for args in (["evaluate", str(run), "--device", "cpu", "--quiet"],
                 ["score", str(run), str(video), "--device", "cpu", "--quiet", "--no-video"]):
        proc = _cli(args)
        assert proc.returncode == 2, proc.stderr
        assert f"model.{bn}" in proc.stderr and "non-finite" in proc.stderr


# --- resume checks what it resumes --------------------------------------------------------------------------------
def test_resume_with_another_seed_or_data_is_refused_naming_each_field(trained, data, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    other = write_random_layout(tmp_path / "other", seed=5, frames=14)  # other frames, so other labels
    args = ["train", "mnad_pred", "--out", str(run), "--preset", "smoke", "--epochs", "2", "--resume", "--quiet",
            "--device", "cpu"]
    assert main(args + ["--data", str(data), "--seed", "7"]) == 2
    err = capsys.readouterr().err
    assert "seed 0 (recorded) -> 7 (now)" in err
    assert main(args + ["--data", str(other), "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "seed 0 (recorded) -> 3 (now)" in err and "data " in err and "labels_sha256" in err
    # the same data in another folder (a copy): the root differs, the labels do not
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    assert main(args + ["--data", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "data " in err and "labels_sha256" not in err
    assert main(["train", "mnad_recon", "--data", str(data)] + args[2:]) == 2
    assert "method 'mnad_pred' (recorded) -> 'mnad_recon' (now)" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing rewritten
    assert main(args + ["--data", str(data)]) == 0  # the same settings resume


def test_mixed_folder_checkpoint_of_another_method_is_refused(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "method": "mnad_recon"}))  # a MNAD-R run's record
    assert main(["evaluate", str(run), "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "method 'mnad_recon' (run.json) -> 'mnad_pred' (checkpoint.pt)" in err
    assert not (run / "metrics.json").exists()


# --- short input, unevaluated runs, non-notebooks -----------------------------------------------------------------
def test_short_video_warns_and_says_so_in_the_summary(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    whole = _video(tmp_path / "whole.avi").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole[: int(len(whole) * 0.6)])  # the header still announces 27 frames
    out = tmp_path / "scored"
    assert main(["score", str(run), str(cut), "--out", str(out), "--device", "cpu", "--quiet", "--no-video"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_in_header"] == 27 and summary["frames"] < 27
    assert summary["short"] and f"only {summary['frames']} could be decoded" in summary["short"]
    assert "warning" in capsys.readouterr().err
    full = tmp_path / "full"
    assert main(["score", str(run), str(tmp_path / "whole.avi"), "--out", str(full), "--device", "cpu", "--quiet",
                 "--no-video"]) == 0
    assert json.loads((full / "summary.json").read_text())["short"] is None


def test_compare_on_an_unevaluated_run_exits_2(trained, tmp_path, capsys):
    group = tmp_path / "group"
    _copy(trained, group, "mnad_pred")
    for target in (group, group / "mnad_pred"):
        assert main(["compare", str(target), "--out", str(tmp_path / "cmp")]) == 2
        err = capsys.readouterr().err
        assert "no evaluated run" in err and "never evaluated" in err
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("content", ['{"not": "a notebook"}', "# a markdown file\n", "\x00\x01binary"])
def test_report_on_a_file_that_is_not_a_notebook_exits_2(tmp_path, capsys, content):
    fake = tmp_path / "fake.ipynb"
    fake.write_text(content)
    assert main(["report", str(fake), "--out", str(tmp_path / "reports")]) == 2
    err = capsys.readouterr().err
    assert "not a Jupyter notebook" in err and "Traceback" not in err
    assert not (tmp_path / "reports").exists()


def test_evaluate_checks_the_test_split_before_training(data, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    frame = sorted((broken / "testing" / "frames").glob("*/*"))[3]
    frame.write_bytes(frame.read_bytes()[:60])  # truncated mid-file
    out = tmp_path / "out"
    t0 = time.perf_counter()
    assert main(["train", "mnad_pred", "--data", str(broken), "--out", str(out), "--preset", "smoke", "--evaluate",
                 "--quiet", "--device", "cpu"]) == 2
    assert frame.name in capsys.readouterr().err
    assert not out.exists()  # nothing trained, nothing written
    assert time.perf_counter() - t0 < 60


# --- nothing half made --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [["--threads", "0"], ["--device", "cuda"], ["broken"]])
def test_early_failure_removes_only_the_empty_out_it_made(data, tmp_path, capsys, extra):
    if extra == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    root = data
    if extra == ["broken"]:
        root = tmp_path / "broken"
        shutil.copytree(data, root)
        frame = sorted((root / "training" / "frames").glob("*/*"))[2]
        frame.write_bytes(b"not an image")
        extra = []
    out = tmp_path / "new" / "deeper"
    args = ["train", "mnad_pred", "--data", str(root), "--preset", "smoke", "--quiet", *extra]
    assert main(args + ["--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()  # both folders it made are gone
    mine = tmp_path / "mine"  # a folder the user made is kept, empty or not
    mine.mkdir()
    assert main(args + ["--out", str(mine)]) == 2
    assert mine.is_dir()
    capsys.readouterr()


# --- a signal during a download -----------------------------------------------------------------------------------
def _stalling_server(body: bytes, sent: threading.Event):
    """HTTP on the loopback that sends the headers of a file of `len(body) * 10` bytes, then `body`, then stalls."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(body) * 10) + body)
        sent.set()
        time.sleep(30)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_sigterm_during_a_download_keeps_the_bytes_received_and_says_where(tmp_path):
    body = bytes(range(256)) * 12  # 3072 bytes: less than any buffer, so only a flush puts them on disk
    sent = threading.Event()
    listener = _stalling_server(body, sent)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/UCSD_Anomaly_Dataset.tar.gz"
    root = tmp_path / "ped2"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.Popen(VADLAB + ["data", "download", "ped2", str(root), "--url", url, "--no-verify", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert sent.wait(60), "the download never started"
    time.sleep(1.0)  # the bytes reach the process
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    listener.close()
    part = root / ".download" / "UCSD_Anomaly_Dataset.tar.gz.part"
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert part.read_bytes() == body
    assert f"the {len(body)} bytes received are kept in {part}" in err and "SIGTERM" in err


# --- rows that already behaved, kept as CLI rows ------------------------------------------------------------------
def test_still_bad_set_values_and_malformed_data_exit_2(data, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["train", "mnad_pred", "--out", str(out), "--preset", "smoke", "--quiet"]
    assert main(base + ["--data", str(data), "--set", "no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err
    assert main(base + ["--data", str(data), "--set", "lr=abc"]) == 2
    assert "lr=abc" in capsys.readouterr().err
    assert main(base + ["--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not out.exists()


def test_still_a_run_in_use_is_refused(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    (run / "run.lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "action": "training",
                                              "started": "now", "command": "vadlab train"}))
    assert main(["evaluate", str(run), "--device", "cpu", "--quiet"]) == 2
    assert "in use" in capsys.readouterr().err


# --- tools/fault_table.py: the issue's table as a user meets it ---------------------------------------------------
def test_fault_table_tool_holds_every_row_of_the_issue_and_picks_the_error_line(monkeypatch):
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "tools" / "fault_table.py"
    spec = importlib.util.spec_from_file_location("fault_table", path)
    tool = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fault_table", tool)  # its dataclass looks itself up there
    spec.loader.exec_module(tool)
    cases = [case for case, _ in tool.CASES]
    rows = ["crafted checkpoint.pt (pickle payload): evaluate", "crafted checkpoint.pt (pickle payload): score",
            "lr=1e6", "lr=1e15", "lr=1e38", "image_size=4096", "another --seed", "another --data", "MNAD-P",
            "AVI truncated", "never evaluated", "not a notebook", "--evaluate with a truncated test frame",
            "--threads 0", "--device cuda", "undecodable training frame", "SIGTERM during a download"]
    for row in rows:
        assert any(row in case for case in cases), row
    out = tool.Outcome(["vadlab", "compare", "g"], 2, "", "vadlab: warning: left out\nvadlab: error: g: none\n", 1.0)
    assert tool.message(out) == "vadlab: error: g: none"
    assert tool.message(tool.Outcome([], 1, "", "Traceback (most recent call last):\n  x\nKeyError: 'a'\n", 0.1)) \
        == "(traceback) KeyError: 'a'"
    assert "| g | `vadlab compare g` | 2 | vadlab: error: g: none | - |" in tool.table([("g", out)])
