"""What protects a run and the machine: non-finite weights, a loss that explodes, a step too big for the memory, a
cache too big for the disk.

- `non_finite_tensors(state)`: the tensors of a (nested) state dict holding NaN or Inf, by name.
- `WeightWatch`: during training, every `CHECK_EVERY` steps (after the optimiser step), one fused norm per tensor
  and one host sync check that every parameter and buffer (BatchNorm's running statistics included) is finite, that
  no parameter's root-mean-square has grown over `WEIGHT_GROWTH` times the weights' scale at the start, and that the
  step's loss has not exploded against the first `REFERENCE_STEPS` steps of the run (over `LOSS_EXPLOSION` times
  their mean). Any of them raises `DivergenceError` naming the tensors or the loss, before a checkpoint holds them.
- `check_resources(config, videos, device)`: before training, the frames held in memory plus an analytic floor on a
  step's activations against the memory available, and the decoded-frame cache about to be written against the free
  disk; exit 2 naming the fields that set them (image_size, batch_size, ...).

Constants here are ours (the papers are silent on all of them); none is tuned on test data.
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import torch

from vadlab.errors import ConfigError, DataError, DivergenceError, VadlabError, VadlabWarning

# steps between two weight checks; 0 turns the check off. Every step by default: the measured cost is small (see
# docs/safety.md); $VADLAB_CHECK_EVERY changes it (e.g. for measuring that cost).
CHECK_EVERY = int(os.environ.get("VADLAB_CHECK_EVERY", 1))
REFERENCE_STEPS = 10  # the run's first steps whose mean loss is the reference of the explosion check
# a step's loss over this many times the reference is a divergence: ours, far above any loss curve of a healthy run
# (losses fall from their first steps; a stage that adds a loss term stays well within it)
LOSS_EXPLOSION = 1e4
# a parameter whose root-mean-square grows over this many times the largest |value| of any parameter at the start (at
# least 1) has diverged: ours (Adam moves a weight by about lr a step; lr <= 1). Every method's smoke run on the tiny
# synthetic data ends with its largest weight within 1.02x of that scale; lr=1e6 passes 1e4x at the first step
WEIGHT_GROWTH = 1e4
MEMORY_FRACTION = 0.8  # a step may use at most this share of the memory available (the rest: data, caches, others)


# --- non-finite tensors -------------------------------------------------------------------------------------------
def _tensors(obj, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if torch.is_tensor(obj):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}.{i}" if prefix else str(i))


def describe_bad(t: torch.Tensor) -> str:
    nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
    return ", ".join(p for p in (f"{nan} NaN" if nan else "", f"{inf} Inf" if inf else "") if p) + f" of {t.numel()}"


def non_finite_tensors(state) -> list[tuple[str, str]]:
    """(name, "3 NaN, 1 Inf of 64") of every floating-point tensor of `state` (nested dicts and lists) that is not
    finite everywhere."""
    named = [(n, t) for n, t in _tensors(state) if t.is_floating_point() or t.is_complex()]
    if not named:
        return []
    flags = torch.stack([torch.isfinite(t).all().cpu() for _, t in named])
    if bool(flags.all()):
        return []
    return [(n, describe_bad(t)) for (n, t), ok in zip(named, flags.tolist()) if not ok]


def _norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """(n,) L2 norm of each tensor in one fused pass: NaN where a tensor holds NaN, Inf where it holds Inf (or its
    squares overflow). The fast test; what failed is then looked at tensor by tensor."""
    if not tensors:
        return torch.zeros(0)
    try:
        return torch.stack(torch._foreach_norm(tensors, 2.0))
    except (AttributeError, RuntimeError):  # an older torch or a mixed-device list
        return torch.stack([torch.linalg.vector_norm(t.detach()) for t in tensors])


class WeightWatch:
    """The training loop's divergence check on the weights and on the loss (see the module's docstring).

    Every `every` steps, one host sync over one fused norm of every parameter and floating-point buffer: each finite,
    no parameter's root-mean-square over `WEIGHT_GROWTH` times the run's starting scale (the largest |value| of any
    parameter when training started, at least 1), and the step's loss at most `LOSS_EXPLOSION` times the mean of the
    run's first `REFERENCE_STEPS` steps. The scale and the reference are kept in the checkpoint (`state`), so a
    resumed run compares against the same start. `agree(bad)`: under torchrun, bad on any process."""

    def __init__(self, model: torch.nn.Module, every: int | None = None, state: dict | None = None,
                 factor: float = LOSS_EXPLOSION, agree=None):
        state = state or {}
        self.every = CHECK_EVERY if every is None else every
        self.factor, self.agree = factor, agree
        self.reference = state.get("reference")
        params = [(n, p) for n, p in model.named_parameters() if p.numel()]
        buffers = [(n, b) for n, b in model.named_buffers() if b.is_floating_point() and b.numel()]
        self.names = [f"parameter {n}" for n, _ in params] + [f"buffer {n}" for n, _ in buffers]
        self.tensors = [p.detach() for _, p in params] + [b for _, b in buffers]
        self.scale = state.get("scale")
        if self.scale is None:
            self.scale = max([1.0] + [float(p.detach().abs().max()) for _, p in params])
        device = self.tensors[0].device if self.tensors else torch.device("cpu")
        # a parameter's norm at most WEIGHT_GROWTH * scale * sqrt(numel): its root-mean-square within the bound
        self.limits = torch.tensor([WEIGHT_GROWTH * self.scale * math.sqrt(p.numel()) for _, p in params]
                                   + [math.inf] * len(buffers), device=device)
        self._first: list[torch.Tensor] = []
        self.steps = 0

    def state(self) -> dict:
        return {"reference": self.reference, "scale": self.scale}

    def after_step(self, loss: torch.Tensor, where: str, kept: str) -> None:
        """Call after the optimiser step (and the method's post-step update) with the step's total loss."""
        self.steps += 1
        loss = loss.detach().float().reshape(1)
        if self.reference is None:
            self._first.append(loss)
            if len(self._first) == REFERENCE_STEPS:
                self.reference = float(torch.cat(self._first).mean())
                self._first = []
        if not self.every or self.steps % self.every:
            return
        norms = _norms(self.tensors)
        bound = self.factor * self.reference if self.reference is not None and self.reference > 0 else math.inf
        checks = torch.cat([torch.isfinite(norms) & (norms <= self.limits), loss.to(norms.device) <= bound])
        fine = bool(checks.all())  # the one host sync
        if self.agree is not None:
            fine = not self.agree(not fine)
        if fine:
            return
        self._raise(checks[:-1].cpu().tolist(), float(loss), bound, where, kept)

    def _raise(self, ok: list[bool], loss: float, bound: float, where: str, kept: str) -> None:
        hint = f"; {kept}. A lower lr (--set lr=...) or grad_clip may help"
        failed = [(n, t) for n, t, good in zip(self.names, self.tensors, ok) if not good]
        bad = [(n, t) for n, t in failed if not bool(torch.isfinite(t).all())]
        if bad:
            shown = ", ".join(f"{n} ({describe_bad(t)})" for n, t in bad[:6])
            more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
            raise DivergenceError(f"training diverged at {where}: non-finite values in {len(bad)} tensor(s) after "
                                  f"the optimiser step: {shown}{more}{hint}")
        if failed:
            shown = ", ".join(f"{n} (|w| up to {float(t.abs().max()):.3g})" for n, t in failed[:6])
            more = f" and {len(failed) - 6} more" if len(failed) > 6 else ""
            raise DivergenceError(f"training diverged at {where}: weights over {WEIGHT_GROWTH:g} times their scale "
                                  f"at the start ({self.scale:.3g}): {shown}{more}{hint}")
        if loss > bound:
            raise DivergenceError(f"training diverged at {where}: loss {loss:.4g} is over {self.factor:g} times the "
                                  f"mean of the run's first {REFERENCE_STEPS} steps ({self.reference:.4g}){hint}")
        raise DivergenceError(f"training diverged at {where} on another process{hint}")


# --- memory -------------------------------------------------------------------------------------------------------
def available_memory(device: torch.device) -> int | None:
    """Bytes this process may still use on `device`: free GPU memory, or on the CPU the kernel's MemAvailable
    (capped by a cgroup limit where one is set); None where unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            left = int(limit) - usage
            avail = left if avail is None else min(avail, left)
        break
    return avail


def _frame_bytes(config) -> int:
    size = config.image_size
    h, w = (size, size) if isinstance(size, int) else size
    return config.channels * h * w  # one prepared uint8 frame


def step_bytes(config) -> int:
    """An analytic floor on a training step's memory: the clip batch as float32 ((frames_in + 1) frames per clip)
    times `ACTIVATIONS_PER_INPUT`, the activations kept for the backward pass per input value."""
    return ACTIVATIONS_PER_INPUT * 4 * _frame_bytes(config) * (config.frames_in + 1) * config.batch_size


# activations kept for backward per input value: measured with saved-tensor hooks at batch 1, every method at its
# smoke and cpu presets keeps 28x (MAAM-Net smoke) to 340x (MNAD-R cpu); the floor below them, so the estimate never
# refuses what runs (ours)
ACTIVATIONS_PER_INPUT = 24
SIZE_FIELDS = ("image_size", "batch_size", "frames_in", "channels")


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _fields(config, names) -> str:
    return ", ".join(f"{k}={getattr(config, k)}" for k in names if hasattr(config, k))


def check_resources(config, videos, device: torch.device) -> None:
    """Before anything is written: the training videos' frames held in memory at the model's size (uint8) plus a
    step's activations (`step_bytes`) against the memory available, and the frames not yet in the decoded-frame
    cache against its disk's free space. ConfigError or DataError (exit 2) naming the fields that set the size."""
    from vadlab.data.clips import _cache_key, cache_dir

    videos = list(videos)
    frames = sum(len(v) for v in videos)
    held = frames * _frame_bytes(config)  # in host memory, whatever the device
    step = step_bytes(config)  # on the device
    cpu = torch.device("cpu")
    places = [(cpu, held + step)] if device.type == "cpu" else [(cpu, held), (device, step)]
    for where, need in places:
        avail = available_memory(where)
        if avail is not None and need > MEMORY_FRACTION * avail:
            raise ConfigError(f"training needs about {_human(need)} of memory on {where} ({frames} training frames "
                              f"at image_size={config.image_size}: {_human(held)}; a step of "
                              f"batch_size={config.batch_size}: at least {_human(step)}), more than "
                              f"{MEMORY_FRACTION:.0%} of the {_human(avail)} available there; lower the fields that "
                              f"set it: {_fields(config, SIZE_FIELDS)}")
    uncached = sum(len(v) for v in videos
                   if not (cache_dir() / f"{_cache_key(v.frames, config.image_size, config.channels)}.npy").exists())
    check_disk(uncached * _frame_bytes(config), cache_dir(), "the decoded-frame cache ($VADLAB_CACHE)",
               [f"image_size={config.image_size}", f"channels={config.channels}"])


# --- disk ---------------------------------------------------------------------------------------------------------
def free_disk(folder: str | os.PathLike) -> int | None:
    folder = Path(folder)
    for p in (folder, *folder.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


DISK_MARGIN = 0.9  # a cache may fill at most this share of the free disk (ours)


def check_disk(need: int, folder: str | os.PathLike, what: str, fields: Iterable[str] = ()) -> None:
    """DataError when writing `need` bytes into `folder` would fill the disk (over DISK_MARGIN of what is free)."""
    free = free_disk(folder)
    if free is None or need <= DISK_MARGIN * free:
        return
    hint = f"; lower {', '.join(fields)}" if fields else ""
    raise DataError(f"{folder}: {what} needs about {_human(need)}, but only {_human(free)} is free on its disk{hint}")


# --- what a run folder records -------------------------------------------------------------------------------
def labels_checksum(layout) -> str:
    """SHA-256 over every split's videos: name, frame count and per-frame labels (what a run's numbers depend on)."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for split in ("training", "testing", "abnormal"):
        for video in layout.split(split):
            digest.update(f"{split}/{video.name}/{len(video)}\n".encode())
            if video.labels is not None:
                digest.update(np.asarray(video.labels, np.uint8).tobytes())
    return digest.hexdigest()


def _same_path(a, b) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, TypeError):
        return a == b


RESUME_HINT = ("A run continues with what it was started with: drop the differing options, or train into another "
               "--out")


def check_record(where: Path, recorded: dict, now: dict, *, what: str = "this run was made with other settings "
                 "than now", names: tuple[str, str] = ("recorded", "now"), hint: str = RESUME_HINT) -> None:
    """DataError naming every field of `now` (seed, method, data, labels_sha256) that differs from what the run
    recorded (`recorded`: its checkpoint's fields, else its run.json's); a field the record lacks is not compared."""
    changed = []
    for key, value in now.items():
        old = recorded.get(key)
        if old is None or value is None:
            continue
        same = _same_path(old, value) if key == "data" else old == value
        if not same:
            changed.append(f"{key} {old!r} ({names[0]}) -> {value!r} ({names[1]})")
    if changed:
        raise DataError(f"{where}: {what}: {'; '.join(changed)}. {hint}")


@contextmanager
def removed_if_left_empty(folder: str | os.PathLike) -> Iterator[None]:
    """On an exception in the block, remove `folder` and the parents the block created, each only if it did not
    exist before and is empty now: a failure before anything was written leaves nothing behind, and nothing a
    user made (a folder that existed, a file in it) is ever removed."""
    folder = Path(folder)
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        for p in made:  # deepest first
            try:
                p.rmdir()  # only an empty folder
            except OSError:
                break
        raise


# --- inputs that are not what they claim ----------------------------------------------------------------------
def check_notebook(path: str | os.PathLike) -> None:
    """VadlabError unless `path` is a Jupyter notebook nbformat reads (what `vadlab report` runs)."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise VadlabError(f"{path}: no such notebook")
    try:
        nbformat.read(path, as_version=4)
    except Exception as exc:  # JSON errors, a missing nbformat field, a binary file: whatever nbformat raises
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise VadlabError(f"{path}: not a Jupyter notebook ({first}); `vadlab report` runs .ipynb files "
                          "(the sources in notebooks/src are built into notebooks/ with `make notebooks`)") from None


def metrics_files(folder: str | os.PathLike) -> list[Path]:
    """The metrics.json of each evaluated run in `folder` (a folder of runs, or one run folder), for `vadlab
    compare`; a warning names the runs there that were never evaluated."""
    folder = Path(folder)
    runs = [folder] if (folder / "run.json").exists() else sorted(p for p in folder.iterdir() if p.is_dir())
    found = [r / "metrics.json" for r in runs if (r / "metrics.json").exists()]
    unevaluated = [r for r in runs if (r / "run.json").exists() and not (r / "metrics.json").exists()]
    if unevaluated:
        warnings.warn(f"left out, never evaluated (no metrics.json; `vadlab evaluate RUN` writes it): "
                      f"{', '.join(map(str, unevaluated))}", VadlabWarning, stacklevel=2)
    return found


def no_evaluated_runs(group: str) -> VadlabError:
    return VadlabError(f"{group}: no evaluated run (a run folder holds metrics.json once `vadlab evaluate RUN` has "
                       "scored it); nothing to compare")


def check_test_split(method, data) -> None:
    """Before a `train --evaluate`: read every test frame (and extra input) the evaluation will score, as it will
    read them (decoded into the frame cache), so a broken test frame fails before the training, not after it."""
    from vadlab.data.layout import as_layout

    layout = as_layout(data)
    videos = layout.split("testing")
    if not videos:
        raise DataError(f"{layout.root}: no testing videos to evaluate on (drop --evaluate, or add testing/)")
    method.test_dataset(videos)


def short_video(path, header_frames: int | None, decoded: int) -> str | None:
    """A warning (returned, and issued) when a video file decodes fewer frames than its header announces (a file
    cut short or damaged), else None."""
    if header_frames is None or decoded >= header_frames:
        return None
    message = (f"{path}: its header announces {header_frames} frames but only {decoded} could be decoded (the file is "
               f"cut short or damaged); the last {header_frames - decoded} are not scored")
    warnings.warn(message, VadlabWarning, stacklevel=2)
    return message


# --- signals ------------------------------------------------------------------------------------------------------
class Signalled(BaseException):
    """SIGINT or SIGTERM inside `signals_raise`: a BaseException (as KeyboardInterrupt), so no `except Exception`
    swallows it, and every `with` block on the way out closes its files (their bytes are flushed)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        import signal

        return signal.Signals(self.signum).name


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Signalled` inside the block (main thread only; elsewhere nothing changes)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Signalled(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, signal.SIG_DFL if h is None else h)
