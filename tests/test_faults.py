"""The fault table: real `vadlab` processes SIGKILLed at seeded random moments, then recovered.

Kinds of fault, each tried a few times at moments drawn from a seeded RNG:
- SIGKILL during training (a random moment after the run folder is locked: mostly inside a step), then `--resume`;
- SIGKILL during a checkpoint write (the killer watches the run folder with inotify and kills as soon as the
  writer creates its temp file `.checkpoint.<pid>.tmp.pt`; the temp file still there afterwards proves the kill
  landed inside the write; no hook in the code is needed), then `--resume`;
- SIGKILL during evaluation (a random moment after the lock), then the same `vadlab evaluate` again;
- SIGKILL during the scores.npz write (watched the same way), then `vadlab evaluate` again. The metrics.json write
  (a few kB, well under a millisecond) ends before a kill sent on its creation lands, so it is not a kind of its own;
  every kill above checks that metrics.json is absent or whole.

A kill that comes too late (the process already ended, or the write already done) counts as a try that missed.

Every recovery must end with the weights of an undisturbed run (torch.equal on every tensor) or its metrics.json
(byte-identical apart from timing fields) and scores, and no file may ever be half-written: checkpoint.pt loadable,
history.json / run.json / metrics.json valid JSON, scores.npz readable, or absent. The table is printed at the end
of the module (and written to $VADLAB_FAULT_TABLE when set).
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import select
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vadlab import engine, runs

pytestmark = pytest.mark.slow

VADLAB = [sys.executable, "-m", "vadlab.cli"]
TRIES = int(os.environ.get("VADLAB_FAULT_TRIES", 3))  # per kind of fault (kills that land where they should)
EPOCHS = 3
TIMING = ("scoring_seconds", "inference_seconds", "train_seconds")  # the fields a rerun may change
RNG = random.Random(2026)


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1")


def _train_args(data: Path, out: Path) -> list[str]:
    return ["train", "mnad_pred", "--data", str(data), "--out", str(out), "--preset", "smoke", "--epochs",
            str(EPOCHS), "--seed", "3", "--device", "cpu", "--quiet"]


def _eval_args(data: Path, run: Path) -> list[str]:
    return ["evaluate", str(run), "--data", str(data), "--device", "cpu", "--quiet"]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(VADLAB + args, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(VADLAB + args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_until(condition, proc: subprocess.Popen, poll: float = 0.005, timeout: float = 120) -> bool:
    """Poll `condition` while `proc` runs; True once it holds, False if the process ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    raise TimeoutError("condition never held")


def _temp_files(folder: Path, prefixes=("",)) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(n for n in os.listdir(folder) if n.startswith(".") and ".tmp" in n
                  and any(n.startswith("." + p) for p in prefixes))


class _Creations:
    """New files in a folder, from inotify (Linux): woken by the kernel the moment a writer creates its temp file, so
    the kill lands inside writes that last a millisecond, which polling from a busy 2-core machine misses."""

    IN_CREATE = 0x100

    def __init__(self, folder: Path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init()
        if self.fd < 0 or self.libc.inotify_add_watch(self.fd, str(folder).encode(), self.IN_CREATE) < 0:
            raise OSError(ctypes.get_errno(), f"inotify on {folder}")

    def wait_for(self, prefix: str, proc: subprocess.Popen, count: int = 1) -> bool:
        """Block until the `count`-th file named `prefix`... is created; False if `proc` ends first."""
        seen = 0
        while proc.poll() is None:
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            data = os.read(self.fd, 65536)
            offset = 0
            while offset < len(data):
                _, _, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16:offset + 16 + length].rstrip(b"\0").decode()
                offset += 16 + length
                seen += name.startswith(prefix)
                if seen >= count:
                    return True
        return False

    def close(self) -> None:
        os.close(self.fd)


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify watches the writes")


def _kill(proc: subprocess.Popen) -> bool:
    """SIGKILL; True if the process was still running (the fault happened)."""
    running = proc.poll() is None
    proc.kill()
    proc.wait()
    return running


def _torn_files(folder: Path) -> list[str]:
    """Files of the run that exist but cannot be read back whole (there must never be any)."""
    torn = []
    if (folder / engine.CHECKPOINT).exists():
        try:
            runs.read_checkpoint(folder / engine.CHECKPOINT, "cpu")
        except Exception:
            torn.append(engine.CHECKPOINT)
    for name in ("history.json", "run.json", "metrics.json"):
        if (folder / name).exists():
            try:
                json.loads((folder / name).read_text())
            except ValueError:
                torn.append(name)
    if (folder / "scores.npz").exists():
        try:
            with np.load(folder / "scores.npz") as npz:
                [npz[k] for k in npz.files]
        except Exception:
            torn.append("scores.npz")
    return torn


def _checkpoints_done(folder: Path) -> int:
    try:
        return len(json.loads((folder / "history.json").read_text()))
    except (OSError, ValueError):
        return 0


def _checkpoint_epoch(folder: Path) -> int | None:
    ckpt = folder / engine.CHECKPOINT
    return torch.load(ckpt, weights_only=False)["epoch"] if ckpt.exists() else None


def _same_weights(a: Path, b: Path) -> bool:
    sa = torch.load(a / engine.CHECKPOINT, weights_only=False)
    sb = torch.load(b / engine.CHECKPOINT, weights_only=False)
    return sa["model"].keys() == sb["model"].keys() and all(torch.equal(sa["model"][k], sb["model"][k])
                                                            for k in sa["model"])


def _without_timing(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.strip().startswith(tuple(f'"{k}"' for k in TIMING))]


def _same_scores(a: Path, b: Path) -> bool:
    with np.load(a / "scores.npz") as x, np.load(b / "scores.npz") as y:
        return x.files == y.files and all(np.array_equal(x[k], y[k], equal_nan=True) for k in x.files)


# --- the table ----------------------------------------------------------------------------------------------------
def _format(rows: list[dict], details: list[str]) -> str:
    head = ["fault", "tries", "landed in the window", "recovery", "outcome", "anything lost"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(row[h]) for h in head) + " |" for row in rows]
    return "\n".join(["", "Fault table (tests/test_faults.py, mnad_pred smoke, CPU)", *lines, "", "Tries:",
                      *details, ""])


@pytest.fixture(scope="module")
def table(request):
    rows, details = [], []
    yield rows, details
    text = _format(rows, details)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # printed with the test's output, even under the default capture
        print(text)
    if os.environ.get("VADLAB_FAULT_TABLE"):
        Path(os.environ["VADLAB_FAULT_TABLE"]).write_text(text)


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    """Data, an undisturbed trained and evaluated run (evaluated twice: the second time with warm frame caches), and
    how long the phases take: from the lock to the first checkpoint, an epoch, the lock to metrics.json."""
    from conftest import write_random_layout

    root = tmp_path_factory.mktemp("faults")
    data = write_random_layout(root / "data", n_train=2, frames=30, size=(32, 32))
    ref = root / "ref"
    proc = _start(_train_args(data, ref))
    _wait_until(lambda: (ref / runs.LOCK).exists(), proc, poll=0.002)
    t0 = time.time()
    _wait_until(lambda: (ref / "history.json").exists(), proc, poll=0.002)
    first_checkpoint = time.time() - t0
    assert proc.wait(timeout=300) == 0
    epoch = min(h["seconds"] for h in json.loads((ref / "history.json").read_text()))
    metrics = []
    for _ in range(2):  # the same evaluate command twice
        proc = _start(_eval_args(data, ref))
        _wait_until(lambda: (ref / runs.LOCK).exists(), proc, poll=0.002)
        t0 = time.time()
        _wait_until(lambda: (ref / "metrics.json").exists(), proc, poll=0.002)
        evaluation = time.time() - t0
        assert proc.wait(timeout=300) == 0
        metrics.append((ref / "metrics.json").read_text())
        scores = np.load(ref / "scores.npz")
        scores = {k: scores[k] for k in scores.files}
        if len(metrics) == 1:
            (ref / "metrics.json").unlink()
            (ref / "scores.npz").unlink()
    return {"data": data, "ref": ref, "root": root, "first_checkpoint": first_checkpoint, "epoch": epoch,
            "evaluate": evaluation, "metrics": metrics}


def _fresh_run(undisturbed, name: str) -> Path:
    """A copy of the undisturbed run before its evaluation (to evaluate again)."""
    run = undisturbed["root"] / name
    shutil.copytree(undisturbed["ref"], run, ignore=shutil.ignore_patterns("metrics*.json", "scores*.npz"))
    return run


# --- training -----------------------------------------------------------------------------------------------------
def _recover_training(undisturbed, out: Path, started: float, killed_at: float) -> dict:
    """Check what the kill left, then --resume; returns what the table needs (`started`: when the lock appeared)."""
    torn = _torn_files(out)
    temps = _temp_files(out)
    epoch = _checkpoint_epoch(out)
    ckpt = out / engine.CHECKPOINT
    since = ckpt.stat().st_mtime if ckpt.exists() else started
    stale_lock = (out / runs.LOCK).exists()
    proc = _run(_train_args(undisturbed["data"], out) + ["--resume"])
    same = _same_weights(undisturbed["ref"], out)
    return {"torn": torn, "temps": temps, "epoch": epoch, "redone": max(killed_at - since, 0.0),
            "stale_lock": stale_lock, "took_over": "taking over a stale lock" in proc.stderr, "same": same,
            "temps_after": _temp_files(out), "lock_after": (out / runs.LOCK).exists()}


def _check_training_recovery(r: dict) -> None:
    assert not r["torn"], f"half-written files: {r['torn']}"
    assert r["same"], "the resumed run does not end with the undisturbed weights"
    assert r["stale_lock"] <= r["took_over"], "a stale lock was not taken over"
    assert not r["temps_after"] and not r["lock_after"], "temp files or the lock left after recovery"


def test_sigkill_during_training_then_resume(undisturbed, table, tmp_path):
    rows, details = table
    outcomes, tries = [], 0
    while len(outcomes) < TRIES and tries < 3 * TRIES:
        tries += 1
        out = tmp_path / f"kill{tries}"
        after = (tries - 1) % EPOCHS  # checkpoints written before the kill: it lands in epoch `after + 1`
        proc = _start(_train_args(undisturbed["data"], out))
        _wait_until(lambda: (out / runs.LOCK).exists(), proc, poll=0.002)  # noqa: B023
        started = time.time()
        if after == 0:  # somewhere between the lock and the first checkpoint (data loading, epoch 1's steps)
            delay = RNG.uniform(0.1, 0.7) * undisturbed["first_checkpoint"]
        else:  # somewhere inside the next epoch
            _wait_until(lambda: _checkpoints_done(out) >= after, proc, poll=0.002)  # noqa: B023
            delay = RNG.uniform(0.05, 0.8) * undisturbed["epoch"]
        time.sleep(delay)
        killed_at = time.time()
        ran = _kill(proc)
        done = _checkpoint_epoch(out) or 0
        if not ran or done == EPOCHS:  # too late: the training had ended
            details.append(f"- training, try {tries}: SIGKILL {delay:.2f} s after checkpoint {after} came after the "
                           "last epoch (a miss)")
            assert not _torn_files(out)
            continue
        r = _recover_training(undisturbed, out, started, killed_at)
        outcomes.append(r)
        details.append(f"- training, try {tries}: SIGKILL in epoch {done + 1} ({delay:.2f} s after "
                       f"{'the lock' if after == 0 else f'checkpoint {after}'}), last checkpoint at kill: "
                       f"{_epoch_text(r['epoch'])}, temp files left: {r['temps'] or 'none'}, resumed: "
                       f"{'same weights' if r['same'] else 'DIFFERENT WEIGHTS'}, {r['redone']:.2f} s redone")
    rows.append({"fault": "SIGKILL during training (random moment, mostly a step)", "tries": tries,
                 "landed in the window": f"{len(outcomes)}/{tries} while training",
                 "recovery": "`vadlab train ... --resume` (stale lock taken over)",
                 "outcome": _verdict(all(r["same"] and not r["torn"] for r in outcomes), "same weights (torch.equal)"),
                 "anything lost": _lost(outcomes)})
    assert len(outcomes) == TRIES
    for r in outcomes:
        _check_training_recovery(r)


@linux_only
def test_sigkill_during_a_checkpoint_write_then_resume(undisturbed, table, tmp_path):
    rows, details = table
    outcomes, tries, hits = [], 0, 0
    while hits < TRIES and tries < 2 * TRIES:
        tries += 1
        out = tmp_path / f"kill{tries}"
        target = 1 + (tries - 1) % EPOCHS  # which epoch's checkpoint write to hit: each in turn
        proc = _start(_train_args(undisturbed["data"], out))
        _wait_until(out.is_dir, proc, poll=0.002)
        started = time.time()
        watch = _Creations(out)
        landed = watch.wait_for(".checkpoint.", proc, count=target)
        killed_at = time.time()
        ran = _kill(proc)
        watch.close()
        hit = landed and ran and bool(_temp_files(out, ("checkpoint.",)))  # temp file still there: killed mid-write
        hits += hit
        r = _recover_training(undisturbed, out, started, killed_at)
        r["hit"] = hit
        outcomes.append(r)
        details.append(f"- checkpoint write, try {tries}: epoch {target}'s write, "
                       f"{'killed inside it' if hit else 'the write had already finished (a miss)'}; checkpoint.pt "
                       f"at kill: {_epoch_text(r['epoch'])}, temp files left: {r['temps'] or 'none'}, resumed: "
                       f"{'same weights' if r['same'] else 'DIFFERENT WEIGHTS'}")
    rows.append({"fault": "SIGKILL during a checkpoint write", "tries": tries,
                 "landed in the window": f"{hits}/{tries} inside the write (temp file left behind)",
                 "recovery": "`vadlab train ... --resume` (stale temp file removed)",
                 "outcome": _verdict(all(r["same"] and not r["torn"] for r in outcomes),
                                     "previous checkpoint intact; same weights"),
                 "anything lost": _lost(outcomes)})
    assert hits >= TRIES // 2 + 1, f"only {hits} of {tries} kills landed inside a checkpoint write"
    for r in outcomes:
        _check_training_recovery(r)
        if r["hit"]:
            assert r["temps"] and r["epoch"] != EPOCHS  # the old checkpoint stayed in place while the new was torn


# --- evaluation ---------------------------------------------------------------------------------------------------
def _recover_evaluation(undisturbed, run: Path) -> dict:
    torn = _torn_files(run)
    temps = _temp_files(run)
    had_metrics = (run / "metrics.json").exists()
    stale_lock = (run / runs.LOCK).exists()
    proc = _run(_eval_args(undisturbed["data"], run))
    ref = undisturbed["ref"]
    same = (_without_timing((run / "metrics.json").read_text()) == _without_timing((ref / "metrics.json").read_text())
            and _same_scores(run, ref))
    return {"torn": torn, "temps": temps, "had_metrics": had_metrics, "stale_lock": stale_lock,
            "took_over": "taking over a stale lock" in proc.stderr, "same": same, "temps_after": _temp_files(run),
            "lock_after": (run / runs.LOCK).exists()}


def _check_evaluation_recovery(r: dict) -> None:
    assert not r["torn"], f"half-written files: {r['torn']}"
    assert r["same"], "the rerun's metrics.json or scores differ from the undisturbed evaluation"
    assert r["stale_lock"] <= r["took_over"]
    assert not r["temps_after"] and not r["lock_after"]


def test_sigkill_during_evaluation_then_rerun(undisturbed, table):
    rows, details = table
    outcomes, tries = [], 0
    while len(outcomes) < TRIES and tries < 3 * TRIES:
        tries += 1
        run = _fresh_run(undisturbed, f"eval-kill{tries}")
        delay = RNG.uniform(0.05, 0.9) * undisturbed["evaluate"]  # before its metrics.json would be written
        proc = _start(_eval_args(undisturbed["data"], run))
        _wait_until(lambda: (run / runs.LOCK).exists(), proc, poll=0.002)  # noqa: B023
        time.sleep(delay)
        if not _kill(proc) or (run / "metrics.json").exists():  # too late: its work was done
            details.append(f"- evaluation, try {tries}: SIGKILL {delay:.2f} s after the lock came after metrics.json "
                           "(a miss)")
            assert not _torn_files(run)
            continue
        r = _recover_evaluation(undisturbed, run)
        outcomes.append(r)
        details.append(f"- evaluation, try {tries}: SIGKILL {delay:.2f} s after the lock; metrics.json at kill: "
                       f"{'present, valid' if r['had_metrics'] else 'absent'}, temp files left: "
                       f"{r['temps'] or 'none'}; rerun: {'same metrics and scores' if r['same'] else 'DIFFERENT'}")
    rows.append({"fault": "SIGKILL during evaluation (random moment)", "tries": tries,
                 "landed in the window": f"{len(outcomes)}/{tries} while evaluating",
                 "recovery": "the same `vadlab evaluate` again",
                 "outcome": _verdict(all(r["same"] and not r["torn"] for r in outcomes),
                                     "same metrics.json (but timing) and scores"),
                 "anything lost": "nothing: metrics.json absent until complete; the scoring is redone"})
    assert len(outcomes) == TRIES
    for r in outcomes:
        _check_evaluation_recovery(r)


@linux_only
def test_sigkill_during_the_scores_write_then_rerun(undisturbed, table):
    rows, details = table
    outcomes, tries, hits = [], 0, 0
    while hits < TRIES and tries < 2 * TRIES:
        tries += 1
        run = _fresh_run(undisturbed, f"write-kill{tries}")
        watch = _Creations(run)
        proc = _start(_eval_args(undisturbed["data"], run))
        landed = watch.wait_for(".scores.", proc)
        ran = _kill(proc)
        watch.close()
        left = _temp_files(run, ("scores", "metrics"))
        hit = landed and ran and bool(left)
        hits += hit
        r = _recover_evaluation(undisturbed, run)
        outcomes.append(r)
        what = f"killed inside the write of {left[0]}" if hit else "the write had already finished (a miss)"
        details.append(f"- scores.npz write, try {tries}: {what}"
                       f"; metrics.json at kill: {'present, valid' if r['had_metrics'] else 'absent'}; rerun: "
                       f"{'same metrics and scores' if r['same'] else 'DIFFERENT'}")
    rows.append({"fault": "SIGKILL during the scores.npz write", "tries": tries,
                 "landed in the window": f"{hits}/{tries} inside a write (temp file left behind)",
                 "recovery": "the same `vadlab evaluate` again (stale temp file removed)",
                 "outcome": _verdict(all(r["same"] and not r["torn"] for r in outcomes),
                                     "no torn file; same metrics.json (but timing) and scores"),
                 "anything lost": "nothing: the scoring is redone"})
    assert hits >= TRIES // 2 + 1, f"only {hits} of {tries} kills landed inside a write"
    for r in outcomes:
        _check_evaluation_recovery(r)


def test_evaluate_reruns_give_byte_identical_metrics_but_timing(undisturbed, table):
    rows, _ = table
    first, second = undisturbed["metrics"]
    assert len(first.splitlines()) == len(second.splitlines())
    differing = [a for a, b in zip(first.splitlines(), second.splitlines()) if a != b]
    assert all(line.strip().startswith(tuple(f'"{k}"' for k in TIMING)) for line in differing), differing
    fields = sorted({line.split(":")[0].strip().strip('"') for line in differing}) or ["nothing"]
    rows.append({"fault": "none: the same evaluate command run twice", "tries": 1, "landed in the window": "-",
                 "recovery": "-", "outcome": "metrics.json byte-identical but for " + ", ".join(fields),
                 "anything lost": "-"})


def _epoch_text(epoch: int | None) -> str:
    return "none yet" if epoch is None else f"epoch {epoch}"


def _verdict(ok: bool, what: str) -> str:
    return f"all recovered: {what}" if ok else "FAILED (see the tries)"


def _lost(outcomes: list[dict]) -> str:
    redone = max(r["redone"] for r in outcomes)
    return f"no file; at most {redone:.2f} s of work redone (since the last checkpoint, or the start)"
