"""Run folders (`vadlab.runs`): the lock, checkpoint formats, divergence, signals and mid-epoch resume.

Nothing silent, nothing clobbered: a second process into a run folder is refused and names the first; a stale lock
is taken over with a warning; a NaN or Inf loss stops training before that step's optimiser step and keeps the last
good checkpoint; SIGINT/SIGTERM stop after the current step with a checkpoint that resumes to the same weights, bit
for bit, for every registered method.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_same_tensors, checkpoint

from vadlab import distributed, engine, runs
from vadlab.cli import main
from vadlab.errors import DataError, DivergenceError, Interrupted, VadlabError, VadlabWarning
from vadlab.registry import create_method, list_methods

METHODS = list_methods()
VADLAB = [sys.executable, "-m", "vadlab.cli"]


def _env(**extra) -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", **extra)


def _assert_same_run(a: Path, b: Path) -> None:
    """Same weights and memory (every tensor), same optimiser state, same loss history, bit for bit."""
    sa, sb = checkpoint(a), checkpoint(b)
    assert_same_tensors(sa["model"], sb["model"])
    for (ka, va), (kb, vb) in zip(sa["optimizer"]["state"].items(), sb["optimizer"]["state"].items()):
        assert ka == kb
        assert_same_tensors(va, vb)
    assert [h["loss"] for h in sa["history"]] == [h["loss"] for h in sb["history"]]


def _fit(name, data, out, **kw):
    epochs = kw.pop("epochs", 2)
    return engine.fit(create_method(name, "smoke", epochs=epochs), data, out, seed=kw.pop("seed", 0), device="cpu",
                      progress=False, **kw)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _steps_per_epoch(name: str, data) -> int:
    from vadlab.data.layout import load_layout

    method = create_method(name, "smoke")
    dataset = method.train_dataset(load_layout(data))
    group = distributed.Group(0, 1, torch.device("cpu"))
    drop_last = len(dataset) > method.config.batch_size
    return len(engine._train_loader(method, dataset, 0, 0, group, drop_last, torch.device("cpu")))


def _on_step(method, action, at: int):
    """Make `method.training_step` call `action(outputs)` on its `at`-th call (1-based, counted over epochs)."""
    original, calls = method.training_step, []

    def step(batch):
        outputs = original(batch)
        calls.append(1)
        if len(calls) == at:
            outputs = action(outputs) or outputs
        return outputs

    method.training_step = step
    return calls


# --- the lock -----------------------------------------------------------------------------------------------------
def test_a_second_process_is_refused_and_told_who_holds_the_folder(random_layout, tmp_path):
    run = tmp_path / "run"
    _fit("mnad_pred", random_layout, run, epochs=1)
    before = (run / engine.CHECKPOINT).read_bytes()
    with runs.lock(run, "training") as mine:
        held = json.loads((run / runs.LOCK).read_text())
        assert held == mine and held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        assert {"command", "started", "action"} <= set(held)
        with pytest.raises(VadlabError, match=f"in use by this process: training by pid {os.getpid()} on host .* si"):
            _fit("mnad_pred", random_layout, run, epochs=2, resume=True)
        with pytest.raises(VadlabError, match=f"in use by this process: training by pid {os.getpid()}"):
            engine.evaluate_run(run, random_layout, device="cpu", progress=False)
        # a real second process: `vadlab train` exits 2 naming this one (its pid, host, start time, command)
        proc = subprocess.run(VADLAB + ["train", "mnad_pred", "--data", str(random_layout), "--out", str(run),
                                        "--preset", "smoke", "--epochs", "2", "--device", "cpu", "--quiet",
                                        "--resume"], capture_output=True, text=True, env=_env())
        assert proc.returncode == 2, proc.stderr
        for part in (f"pid {os.getpid()}", f"host {held['host']}", held["started"], held["command"]):
            assert part in proc.stderr
    assert not (run / runs.LOCK).exists()  # released on exit
    assert (run / engine.CHECKPOINT).read_bytes() == before and not (run / "metrics.json").exists()


def test_the_lock_is_held_during_fit_and_evaluation_and_removed_after(random_layout, tmp_path):
    run, seen = tmp_path / "run", []
    _fit("mnad_pred", random_layout, run, epochs=1,
         on_epoch=lambda epoch, history: seen.append(json.loads((run / runs.LOCK).read_text())["action"]))
    assert seen == ["training"] and not (run / runs.LOCK).exists()
    assert checkpoint(run)["format"] == runs.FORMAT
    engine.evaluate_run(run, random_layout, device="cpu", progress=False)
    assert not (run / runs.LOCK).exists()


def test_a_stale_lock_is_taken_over_with_a_warning(random_layout, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = _dead_pid()
    (run / runs.LOCK).write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "command": "vadlab train x",
                                              "action": "training", "started": "2026-01-01 00:00:00"}))
    leftover = run / f".checkpoint.{dead}.tmp.pt"  # what a writer killed mid-write leaves behind
    leftover.write_bytes(b"half a checkpoint")
    with pytest.warns(VadlabWarning, match=f"stale lock, training by pid {dead}"):
        _fit("mnad_pred", random_layout, run, epochs=1)
    assert not (run / runs.LOCK).exists() and not leftover.exists()
    assert checkpoint(run)["epoch"] == 1


def test_a_reused_pid_or_an_unreadable_old_lock_is_stale(tmp_path):
    # this process's pid, but another start time: the pid was reused since the lock was written
    me = runs._proc_stat(os.getpid())
    lock = tmp_path / runs.LOCK
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "process_start": me[1] - 1}))
    with pytest.warns(VadlabWarning, match="stale"), runs.lock(tmp_path, "training") as mine:
        assert json.loads(lock.read_text())["token"] == mine["token"]
    # this very process's, but not held: left behind by an interrupt (a notebook's kernel lives on)
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "process_start": me[1]}))
    with pytest.warns(VadlabWarning, match="stale"), runs.lock(tmp_path, "training"):
        pass
    lock.write_text("")  # created, then killed before writing its content
    old = time.time() - 60
    os.utime(lock, (old, old))
    with pytest.warns(VadlabWarning, match="unreadable lock"), runs.lock(tmp_path, "training"):
        pass
    assert not lock.exists()


def test_a_lock_from_another_host_is_refused_with_how_to_clear_it(tmp_path):
    (tmp_path / runs.LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "vadlab train x",
                                                   "started": "2026-01-01 00:00:00", "action": "training"}))
    with pytest.raises(VadlabError, match=r"on host elsewhere .* delete .*run\.lock"):
        with runs.lock(tmp_path, "training"):
            pass
    assert (tmp_path / runs.LOCK).exists()  # not ours to remove


def test_only_rank_0_takes_the_lock(tmp_path):
    with runs.lock(tmp_path, "training", distributed.Group(1, 1, torch.device("cpu"))) as mine:
        assert mine is None and not (tmp_path / runs.LOCK).exists()


def test_out_naming_a_file_exits_2_with_a_message(random_layout, tmp_path, capsys):
    target = tmp_path / "taken.txt"
    target.write_text("not a run")
    for out in (target, target / "run"):
        assert main(["train", "mnad_pred", "--data", str(random_layout), "--out", str(out), "--preset", "smoke",
                     "--device", "cpu", "--quiet"]) == 2
        assert f"{target} is a file" in capsys.readouterr().err
        with pytest.raises(VadlabError, match="is a file|which is a file"):
            _fit("mnad_pred", random_layout, out)
    assert main(["baseline", "--data", str(random_layout), "--out", str(target)]) == 2
    assert target.read_text() == "not a run"


# --- checkpoint formats -------------------------------------------------------------------------------------------
def test_a_checkpoint_of_another_format_or_method_is_refused(random_layout, tmp_path, capsys):
    run = tmp_path / "run"
    _fit("mnad_pred", random_layout, run, epochs=1)
    with pytest.raises(DataError, match="method 'mnad_pred' \\(recorded\\) -> 'mnad_recon' \\(now\\)"):
        _fit("mnad_recon", random_layout, run, epochs=2, resume=True)
    with pytest.raises(DataError, match="holds a mnad_pred run, not toy_dual"):
        engine.load_run(run, "cpu", method="toy_dual")
    assert engine.load_run(run, "cpu", method="mnad_pred").name == "mnad_pred"
    state = checkpoint(run)
    torch.save({**state, "format": 3}, run / engine.CHECKPOINT)
    with pytest.raises(DataError, match="checkpoint format 3, but this vadlab reads formats 1, 2"):
        _fit("mnad_pred", random_layout, run, epochs=2, resume=True)
    with pytest.raises(DataError, match="format 3"):
        engine.load_run(run, "cpu")
    assert main(["evaluate", str(run), "--device", "cpu", "--quiet"]) == 2
    assert "format 3" in capsys.readouterr().err
    # one written before the field existed has the format-1 layout
    torch.save({k: v for k, v in state.items() if k != "format"}, run / engine.CHECKPOINT)
    assert engine.load_run(run, "cpu").epochs_trained == 1
    (run / engine.CHECKPOINT).write_bytes(b"torn")
    with pytest.raises(DataError, match="not a readable vadlab checkpoint"):
        engine.load_run(run, "cpu")


# --- divergence ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_at_that_step_and_keeps_the_last_good_checkpoint(random_layout, tmp_path, bad):
    good, run = tmp_path / "good", tmp_path / "run"
    _fit("mnad_pred", random_layout, good, epochs=3, stop_after=1)
    n = _steps_per_epoch("mnad_pred", random_layout)
    method = create_method("mnad_pred", "smoke", epochs=3)

    def poison(outputs):  # one term goes bad at epoch 2, step 3; the total follows
        outputs["separate"] = outputs["separate"] * bad
        outputs["loss"] = outputs["loss"] + outputs["separate"]

    _on_step(method, poison, at=n + 3)
    updates = []
    original_update = method.after_optimizer_step
    method.after_optimizer_step = lambda outputs: (updates.append(1), original_update(outputs))
    with pytest.raises(DivergenceError, match=rf"epoch 2, step 3 of {n}: separate={bad}, loss=(nan|inf)") as info:
        engine.fit(method, random_layout, run, seed=0, device="cpu", progress=False)
    assert "rec=" not in str(info.value) and "epoch 1), is kept untouched" in str(info.value)
    assert len(updates) == n + 2  # the bad step never reached the optimiser step nor the memory update
    assert all(torch.isfinite(p).all() for p in method.model.parameters())
    assert_same_tensors(checkpoint(run)["model"], checkpoint(good)["model"])  # the epoch-1 checkpoint, untouched
    assert checkpoint(run)["epoch"] == 1 and len(json.loads((run / "history.json").read_text())) == 1
    assert not (run / runs.LOCK).exists()


def test_a_non_finite_logged_term_also_stops_and_the_first_epoch_says_no_checkpoint(random_layout, tmp_path):
    method = create_method("toy_dual", "smoke", epochs=2)
    _on_step(method, lambda outputs: outputs.update(extra=torch.tensor(float("inf"))), at=2)
    with pytest.raises(DivergenceError, match=r"epoch 1, step 2 of \d+: extra=inf; .*no checkpoint was written"):
        engine.fit(method, random_layout, tmp_path / "run", device="cpu", progress=False)
    assert not (tmp_path / "run" / engine.CHECKPOINT).exists()


NAN_PLUGIN = '''
import torch
from vadlab.models.mnad import MNADPred, PRED_PRESETS
from vadlab.registry import register_method


@register_method("nan_pred", config_cls=type(PRED_PRESETS["smoke"]), presets=PRED_PRESETS)
class NaNPred(MNADPred):
    """MNAD-P whose reconstruction loss turns NaN at its 7th step."""

    calls = 0

    def training_step(self, batch):
        out = super().training_step(batch)
        NaNPred.calls += 1
        if NaNPred.calls == 7:
            out["rec"] = out["rec"] * float("nan")
            out["loss"] = out["loss"] + out["rec"]
        return out
'''


def test_the_cli_exits_2_on_divergence(random_layout, tmp_path):
    plugin = tmp_path / "nan_plugin.py"
    plugin.write_text(NAN_PLUGIN)
    env = _env(VADLAB_PLUGINS=f"{os.environ['VADLAB_PLUGINS']},{plugin}")
    out = tmp_path / "run"
    proc = subprocess.run(VADLAB + ["train", "nan_pred", "--data", str(random_layout), "--out", str(out), "--preset",
                                    "smoke", "--epochs", "3", "--device", "cpu", "--quiet"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "training diverged at epoch 2, step 3 of 4: rec=nan, loss=nan" in proc.stderr
    assert "Traceback" not in proc.stderr and not (out / runs.LOCK).exists()
    assert torch.load(out / engine.CHECKPOINT, weights_only=False)["epoch"] == 1


def test_loss_warnings_flag_a_stuck_or_blown_up_loss():
    def h(*losses):
        return [{"epoch": i + 1, "loss": v} for i, v in enumerate(losses)]

    assert runs.loss_warning(h(3.0, 2.5, 2.0)) is None
    assert runs.loss_warning(h(3.0, 2.0000001, 2.0000002)) is None  # only 2 epochs at that value
    assert "unchanged to 6 digits for 3 epochs" in runs.loss_warning(h(3.0, 2.0, 2.0000001, 2.0000002))
    assert "over 10x epoch 1's" in runs.loss_warning(h(1.0, 5.0, 10.5))
    assert runs.loss_warning(h(1.0, 5.0, 9.5)) is None
    assert "is nan" in runs.loss_warning(h(1.0, float("nan")))
    assert runs.loss_warning([]) is None


def test_a_stuck_loss_is_warned_about_in_the_history(random_layout, tmp_path):
    method = create_method("mnad_pred", "smoke", epochs=3)
    original = method.training_step

    def stuck(batch):
        outputs = original(batch)
        return {**{k: v * 0 + 5.0 for k, v in outputs.items() if not k.startswith("_")},
                "_queries": outputs["_queries"]}

    method.training_step = stuck
    with pytest.warns(VadlabWarning, match="epoch 3: mean loss unchanged"):
        history = engine.fit(method, random_layout, tmp_path / "run", device="cpu", progress=False)
    assert ["warning" in h for h in history] == [False, False, True]
    assert "warning" in json.loads((tmp_path / "run" / "history.json").read_text())[2]


# --- signals and mid-epoch resume ---------------------------------------------------------------------------------
def _send(signum):
    def action(outputs):
        os.kill(os.getpid(), signum)  # the handler runs before this step returns: stop after this step
    return action


@pytest.mark.parametrize("name", METHODS)
def test_a_signal_mid_epoch_resumes_to_the_same_weights(random_layout, tmp_path, name):
    full, part = tmp_path / "full", tmp_path / "part"
    _fit(name, random_layout, full, epochs=3, seed=5)
    n = _steps_per_epoch(name, random_layout)
    method = create_method(name, "smoke", epochs=3)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    _on_step(method, _send(signal.SIGTERM), at=n + 2)
    with pytest.raises(Interrupted, match=f"SIGTERM: training stopped at epoch 2 after step 2 of {n}") as info:
        engine.fit(method, random_layout, part, seed=5, device="cpu", progress=False)
    assert info.value.exit_status == 143
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers restored
    state = checkpoint(part)
    assert state["epoch"] == 1 and state["position"]["batches_done"] == 2
    assert set(state["position"]["sums"][0]) >= {"loss"} and not (part / runs.LOCK).exists()
    history = _fit(name, random_layout, part, epochs=3, seed=5, resume=True)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    _assert_same_run(full, part)
    assert checkpoint(part)["position"] is None


def test_a_signal_in_the_last_step_stops_at_the_epoch_end(random_layout, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    _fit("mnad_pred", random_layout, full, epochs=3)
    n = _steps_per_epoch("mnad_pred", random_layout)
    method = create_method("mnad_pred", "smoke", epochs=3)
    _on_step(method, _send(signal.SIGINT), at=n)
    with pytest.raises(Interrupted, match="SIGINT: training stopped at the end of epoch 1") as info:
        engine.fit(method, random_layout, part, device="cpu", progress=False)
    assert info.value.exit_status == 130 and checkpoint(part)["position"] is None and checkpoint(part)["epoch"] == 1
    _fit("mnad_pred", random_layout, part, epochs=3, resume=True)
    _assert_same_run(full, part)


def test_a_resume_twice_inside_one_epoch(random_layout, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    _fit("toy_dual", random_layout, full, epochs=2)
    for at in (1, 2):  # stop after step 1, resume, stop after one more step: both inside epoch 1
        method = create_method("toy_dual", "smoke", epochs=2)
        _on_step(method, _send(signal.SIGINT), at=1)
        with pytest.raises(Interrupted, match=f"epoch 1 after step {at} of"):
            engine.fit(method, random_layout, part, device="cpu", progress=False, resume=at > 1)
    _fit("toy_dual", random_layout, part, epochs=2, resume=True)
    _assert_same_run(full, part)


def test_fit_in_a_thread_leaves_signals_alone(random_layout, tmp_path):
    before = signal.getsignal(signal.SIGINT)
    errors = []

    def work():
        try:
            _fit("mnad_pred", random_layout, tmp_path / "run", epochs=1)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert not errors and signal.getsignal(signal.SIGINT) is before
    assert checkpoint(tmp_path / "run")["epoch"] == 1


def test_skipped_batches_are_the_tail_of_the_same_order(random_layout):
    from vadlab.data.layout import load_layout

    for name in METHODS:
        method = create_method(name, "smoke")
        dataset = method.train_dataset(load_layout(random_layout))
        group, cpu = distributed.Group(0, 1, torch.device("cpu")), torch.device("cpu")
        whole = [(b["video"].tolist(), b["index"].tolist()) for b in engine._iterate(
            engine._train_loader(method, dataset, 1, 3, group, True, cpu))]
        tail = [(b["video"].tolist(), b["index"].tolist()) for b in engine._iterate(
            engine._train_loader(method, dataset, 1, 3, group, True, cpu, skip=2))]
        assert tail == whole[2:] and len(tail) > 0


# --- real processes: SIGINT / SIGTERM, then --resume ---------------------------------------------------------------
@pytest.fixture(scope="module")
def signal_data(tmp_path_factory):
    from conftest import write_random_layout

    return write_random_layout(tmp_path_factory.mktemp("signals") / "data", n_train=3, frames=40, size=(32, 32))


_uninterrupted: dict[str, Path] = {}


def _train_args(name, data, out):
    return ["train", name, "--data", str(data), "--out", str(out), "--preset", "smoke", "--epochs", "3", "--seed",
            "3", "--device", "cpu", "--quiet"]


def _uninterrupted_run(name, data, root: Path) -> Path:
    if name not in _uninterrupted:
        out = root / f"full-{name}"
        subprocess.run(VADLAB + _train_args(name, data, out), check=True, capture_output=True, env=_env())
        _uninterrupted[name] = out
    return _uninterrupted[name]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("name", METHODS)
def test_a_real_training_process_stopped_by_a_signal_resumes_bit_exactly(signal_data, tmp_path_factory, tmp_path,
                                                                         name, signum):
    full = _uninterrupted_run(name, signal_data, tmp_path_factory.getbasetemp())
    out = tmp_path / "stopped"
    proc = subprocess.Popen(VADLAB + _train_args(name, signal_data, out), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / engine.CHECKPOINT).exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # into epoch 2's steps (a signal right at the checkpoint stops at the epoch's end instead)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    assert f"resume with: vadlab {' '.join(_train_args(name, signal_data, out))} --resume" in stderr
    state = checkpoint(out)
    assert state["position"] is not None and 0 < state["position"]["batches_done"], "not stopped inside an epoch"
    assert not (out / runs.LOCK).exists() and not list(out.glob(".*.tmp*"))
    resumed = subprocess.run(VADLAB + _train_args(name, signal_data, out) + ["--resume"], capture_output=True,
                             text=True, env=_env())
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(full, out)
    assert np.isfinite([h["loss"] for h in checkpoint(out)["history"]]).all()


def test_a_signal_inside_a_cut_epoch_resumes_to_the_same_weights(random_layout, tmp_path):
    """`steps_per_epoch` (the cpu presets' budget): a stop after step 1 of an epoch cut to 2 steps resumes to the run
    that never stopped, and the message counts the cut epoch's steps."""
    full, part = tmp_path / "full", tmp_path / "part"
    engine.fit(create_method("mnad_pred", "smoke", epochs=2, steps_per_epoch=2), random_layout, full, device="cpu",
               progress=False)
    method = create_method("mnad_pred", "smoke", epochs=2, steps_per_epoch=2)
    _on_step(method, _send(signal.SIGTERM), at=3)
    with pytest.raises(Interrupted, match="epoch 2 after step 1 of 2"):
        engine.fit(method, random_layout, part, device="cpu", progress=False)
    engine.fit(create_method("mnad_pred", "smoke", epochs=2, steps_per_epoch=2), random_layout, part, device="cpu",
               progress=False, resume=True)
    _assert_same_run(full, part)
