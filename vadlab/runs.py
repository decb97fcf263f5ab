"""What keeps a run folder safe: nothing silent, nothing clobbered. `engine.fit` and `engine.evaluate_run` use it.

- **One process per run folder.** `lock(folder, action)` holds `run.lock` for the life of a training or an
  evaluation: one JSON object `{"pid", "host", "command", "action", "started", "process_start", "token"}`, created
  with O_CREAT|O_EXCL and removed on exit (exceptions included). A second process raises `VadlabError` naming the
  first; a lock whose process is gone (same host, pid dead or reused) is stale and taken over with a warning, and the
  temp files killed writers left behind are removed. Under torchrun only rank 0 takes it and tells the other ranks.
- **Checkpoints carry a format** (`"format": FORMAT`) and never run code (`vadlab.checkpoint`): `read_checkpoint`
  refuses another format, another method, and a model holding NaN or Inf.
- **Signals.** `Interrupts` turns SIGINT/SIGTERM during `fit` into a request to stop after the current step; `fit`
  then writes a checkpoint with the position inside the epoch (`"position"`) and raises `Interrupted`.
- **Divergence.** `step_status` is the one host sync of a training step (are all loss terms finite; has a signal
  asked to stop); `divergence_error` names the epoch, the step and the bad terms. `loss_warning` flags an epoch's
  mean loss that looks stuck or blown up.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import socket
import sys
import threading
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
import torch.distributed as dist

from vadlab import checkpoint
from vadlab.errors import DivergenceError, Interrupted, VadlabError, VadlabWarning
from vadlab.io import temp_file_owner

LOCK = "run.lock"
FORMAT = checkpoint.FORMAT  # checkpoint layout (`vadlab.checkpoint`); files without the field are read as 1
# files the engine writes into a run folder: their temp files, left by a killed writer, are cleaned up on locking
_RUN_FILES = ("checkpoint.pt", "history.json", "run.json", "metrics", "scores")
_HELD: set[str] = set()  # the locks this process holds now (a lock of this pid not in here leaked: an interrupt)


# --- the run folder -----------------------------------------------------------------------------------------------
def make_run_folder(out: Path) -> None:
    """Create `out` (and its parents); a file in the way is an error a user can act on, not a FileExistsError."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                where = "is a file" if path == out else f"is inside {path}, which is a file"
                raise VadlabError(f"{out}: {where}; a run needs a folder (choose another --out)")
            break
    out.mkdir(parents=True, exist_ok=True)


# --- the lock -----------------------------------------------------------------------------------------------------
def _command() -> str:
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("cli.py", "vadlab"):
        argv[0] = "vadlab"
    return shlex.join(argv)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a process from /proc, or None where there is no /proc entry."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3, starttime field 22
    return fields[0], int(fields[19])


def _pid_alive(pid: int, started: int | None = None) -> bool:
    """Is process `pid` of this host running (not a zombie; and, when `started` is known, not a reused pid)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, start = stat
    return state not in ("Z", "X") and (started is None or start == started)


def _describe(holder: dict) -> str:
    return (f"{holder.get('action', 'a run')} by pid {holder.get('pid')} on host {holder.get('host')} since "
            f"{holder.get('started')} (command: {holder.get('command')})")


def _read_lock(path: Path) -> tuple[bytes | None, dict | None]:
    """The lock file's bytes (None: no lock) and its content (None when unreadable: empty, or being written)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    try:
        holder = json.loads(raw)
    except ValueError:
        return raw, None
    return raw, holder if isinstance(holder, dict) else None


def _stale(path: Path, raw: bytes, holder: dict | None) -> bool:
    """True if the lock's process is gone; raise naming it if it may still run."""
    if holder is None:  # written by O_EXCL then killed before its content, or being written right now
        time.sleep(0.2)
        raw2, holder = _read_lock(path)
        if holder is None:
            return raw2 == raw and time.time() - path.stat().st_mtime > 1.0
    if holder.get("host") != socket.gethostname():
        raise VadlabError(f"{path.parent} is in use: {_describe(holder)}. If that process is gone, delete {path}")
    if holder.get("pid") == os.getpid() and holder.get("process_start") == _start_of_this_process():
        if str(path.resolve()) not in _HELD:  # this process's own, left by an interrupt (e.g. in a notebook)
            return True
        raise VadlabError(f"{path.parent} is in use by this process: {_describe(holder)}")
    if _pid_alive(int(holder.get("pid", -1)), holder.get("process_start")):
        raise VadlabError(f"{path.parent} is in use: {_describe(holder)}; wait for it to end or use another folder")
    return True


def _remove_if_unchanged(path: Path, raw: bytes) -> None:
    """Remove a stale lock, but not one another process put there since we read it (two may find it stale)."""
    grave = path.with_name(f".{path.name}.{os.getpid()}.stale")
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return
    if grave.read_bytes() != raw:  # a fresh lock: put it back
        try:
            os.link(grave, path)
        except FileExistsError:
            pass
    grave.unlink(missing_ok=True)


def _start_of_this_process() -> int | None:
    stat = _proc_stat(os.getpid())
    return stat[1] if stat else None


def _acquire(path: Path, action: str) -> dict:
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(), "action": action,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "process_start": _start_of_this_process(),
            "token": uuid.uuid4().hex}
    for _ in range(5):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raw, holder = _read_lock(path)
            if raw is None:  # removed in between
                continue
            if _stale(path, raw, holder):
                what = _describe(holder) if holder else "an unreadable lock"
                warnings.warn(f"{path}: taking over a stale lock, {what}: that process is gone",
                              VadlabWarning, stacklevel=2)
                _remove_if_unchanged(path, raw)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(mine) + "\n")
        _HELD.add(str(path.resolve()))
        return mine
    raise VadlabError(f"{path}: could not take the lock: other processes keep taking it")


def _release(path: Path, mine: dict) -> None:
    _HELD.discard(str(path.resolve()))
    _, holder = _read_lock(path)
    if holder and holder.get("token") == mine["token"]:  # never remove a lock that is not ours
        path.unlink(missing_ok=True)


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Remove the temp files (`vadlab.io.atomic_path`) of run files whose writer is gone (e.g. SIGKILLed mid-write)."""
    removed = []
    for path in folder.iterdir():
        owner = temp_file_owner(path)
        if owner and owner[0].startswith(_RUN_FILES) and path.is_file() and not _pid_alive(owner[1]):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextmanager
def lock(folder: str | os.PathLike, action: str, group=None) -> Iterator[dict | None]:
    """Hold `folder/run.lock` for the block (`action`: "training", "evaluation"); yields the lock's content.

    `group` (`vadlab.distributed.Group`): under torchrun only rank 0 takes the lock, then tells every rank whether it
    got it, so no rank waits in a collective for a rank that gave up."""
    path = Path(folder) / LOCK
    mine, error = None, None
    if group is None or group.main:
        try:
            mine = _acquire(path, action)
        except VadlabError as exc:
            error = exc
        except OSError as exc:  # e.g. a read-only folder: every rank must hear of it
            error = VadlabError(f"{path}: cannot create the lock ({exc})")
    if group is not None and group.size > 1:
        message = [str(error) if error else None]
        dist.broadcast_object_list(message, src=0)
        if message[0] and error is None:
            error = VadlabError(message[0])
    if error is not None:
        raise error
    try:
        if mine is not None:
            remove_stale_temp_files(path.parent)  # the folder is ours now
        yield mine
    finally:
        if mine is not None:
            _release(path, mine)


# --- checkpoints --------------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint atomically, stamped with the format version (`vadlab.checkpoint.save`: tensors and plain
    data only; a non-finite model is refused)."""
    checkpoint.save(path, state)


def read_checkpoint(path: Path, device, method: str | None = None, check_finite: bool = True) -> dict:
    """A checkpoint's state dict, read without running code (`vadlab.checkpoint.load`); refuses another format
    version, another method than `method` (when given), and a model holding NaN or Inf."""
    return checkpoint.load(path, device, method=method, check_finite_model=check_finite)


def describe_checkpoint(path: Path, epoch: int | None, position: dict | None = None) -> str:
    """What a divergence leaves: the last good checkpoint, kept untouched."""
    if epoch is None:
        return "no checkpoint was written yet (it diverged in its first epoch)"
    where = f"epoch {epoch}" + (f" and {position['batches_done']} batches" if position else "")
    return f"the last good checkpoint, {path} ({where}), is kept untouched"


# --- signals ------------------------------------------------------------------------------------------------------
class Interrupts:
    """SIGINT/SIGTERM inside the block ask to stop after the current step instead of killing the process.

    Installed only in the main thread (elsewhere `signal` cannot); the previous handlers come back on exit, and also
    after the first signal, so a second one acts as it did before (Ctrl-C twice: stop at once)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    # the innermost block open in the main thread, so another signal's handler can ask it to stop (`request`)
    active: Interrupts | None = None

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}
        self._outer: Interrupts | None = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
            self._outer, Interrupts.active = Interrupts.active, self
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
        if Interrupts.active is self:
            Interrupts.active = self._outer

    def request(self, signum: int) -> None:
        """Stop after the current step as if `signum` had come (e.g. a cluster job's preemption notice, SIGUSR2,
        which `vadlab.reproduce.cluster` forwards here)."""
        self._handle(signum, None)

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        self._restore()

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None


def _agree(flags: list[bool], group, device) -> list[bool]:
    """Under torchrun, each flag true if it is true on any process (one all_reduce)."""
    if group is None or group.size == 1:
        return flags
    t = torch.tensor(flags, dtype=torch.float32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def step_status(outputs: dict, interrupts: Interrupts, group, device) -> tuple[bool, bool]:
    """(every loss term of the step finite, stop after this step), the same on every process.

    This is the one host sync a training step costs: isfinite over the stacked loss terms (plus, under torchrun, one
    small all_reduce so all processes stop at the same step instead of waiting for each other)."""
    terms = torch.stack([v.detach().float().reshape(()) for k, v in outputs.items() if not k.startswith("_")])
    finite = bool(torch.isfinite(terms).all())
    bad, stop = _agree([not finite, interrupts.requested], group, device)
    return not bad, stop


def agree_any(flag: bool, group, device) -> bool:
    """Under torchrun, True if `flag` is true on any process (one small all_reduce); alone, `flag`."""
    return _agree([flag], group, device)[0]


def stop_agreed(interrupts: Interrupts, group, device) -> bool:
    return _agree([interrupts.requested], group, device)[0]


def divergence_error(outputs: dict, epoch: int, step: int, n_steps: int, kept: str) -> DivergenceError:
    """The error for a step whose loss terms are not all finite (found only now that the step failed)."""
    bad = {k: float(v.detach().float().reshape(())) for k, v in outputs.items()
           if not k.startswith("_") and not torch.isfinite(v.detach()).all()}
    terms = ", ".join(f"{k}={v}" for k, v in bad.items()) or "a loss term on another process"
    return DivergenceError(f"training diverged at epoch {epoch + 1}, step {step + 1} of {n_steps}: {terms}; stopped "
                           f"before its optimiser step (the weights are those before it); {kept}. A lower lr "
                           "(--set lr=...) or grad_clip may help")


def interrupted(signum: int, out: Path, epoch: int, done: int, n_steps: int) -> Interrupted:
    name = signal.Signals(signum).name
    where = f"epoch {epoch + 1} after step {done} of {n_steps}" if done < n_steps else f"the end of epoch {epoch + 1}"
    return Interrupted(f"{name}: training stopped at {where}; checkpoint saved in {out / 'checkpoint.pt'}. "
                       "Resume with the same command and --resume (fit(..., resume=True))", signum)


def sums_of_every_process(sums: dict[str, torch.Tensor], group) -> list[dict[str, torch.Tensor]]:
    """Each process's running loss sums (index = rank), for a checkpoint inside an epoch."""
    if group.size == 1:
        return [dict(sums)]
    keys = sorted(sums)
    mine = torch.stack([sums[k] for k in keys])
    parts = [torch.empty_like(mine) for _ in range(group.size)]
    dist.all_gather(parts, mine)
    return [dict(zip(keys, p)) for p in parts]


# --- the loss curve -----------------------------------------------------------------------------------------------
def loss_warning(history: list[dict], key: str = "loss") -> str | None:
    """A warning about the last epoch's mean loss when it looks obviously bad, else None: not finite, unchanged to 6
    significant digits for 3 epochs (nothing learns), or over 10x epoch 1's (blowing up)."""
    losses = [h[key] for h in history if key in h]
    if not losses:
        return None
    last = losses[-1]
    if not math.isfinite(last):
        return f"mean {key} of epoch {len(losses)} is {last}"
    if len(losses) >= 3 and len({f"{v:.6g}" for v in losses[-3:]}) == 1:
        return f"mean {key} unchanged to 6 digits for 3 epochs ({last:.6g}): is anything learning?"
    if len(losses) >= 2 and losses[0] > 0 and last > 10 * losses[0]:
        return f"mean {key} {last:.4g} is over 10x epoch 1's ({losses[0]:.4g}): diverging? try a lower lr"
    return None


def flag_bad_loss(record: dict, history: list[dict], label: str, warn: bool = True) -> None:
    """Add a `warning` to an epoch's history record (and warn) when its mean loss looks obviously bad."""
    warning = loss_warning(history + [record])
    if warning:
        record["warning"] = warning
        if warn:
            warnings.warn(f"{label}: {warning}", VadlabWarning, stacklevel=3)
