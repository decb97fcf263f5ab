"""One training and scoring loop for every method: `fit`, `load_run`, `infer`, `evaluate_run`.

The loop calls only the hooks of `vadlab.models.base.Method` (training data, optimiser and schedule, per-epoch stage
hook, training step, post-step update, test-time contract), so a new method plugs in without editing it.

Under `torchrun` (WORLD_SIZE > 1) the same `fit` trains data-parallel with PyTorch DDP (`vadlab.distributed`):
`batch_size` is per process, each process reads its shard of every epoch (DistributedSampler, or the method's own
batch sampler), outputs whose name starts with "_" (e.g. MNAD's queries) are gathered over all processes before
`after_optimizer_step`, so a memory update sees the global batch, and only rank 0 writes files and shows progress.

A run folder holds `run.json` (what was run), `checkpoint.pt` (model with its memory, optimiser, scheduler, RNG
states, epoch, history, `format`; tensors and plain data only, read without running code, never holding NaN or Inf:
`vadlab.checkpoint`; written atomically after every epoch), `history.json`, and after evaluation
`metrics.json` and `scores.npz`. At the end of training the run scores its normal training frames and stores the
distribution of each raw signal in `calibration.npz` (`calibrate`; what `vadlab score` maps new frames onto); a method
whose scoring needs constants from those frames (`Method.fit_scoring`, e.g. MAAM-Net's branch scales) gets them first,
stored as `scoring_fit.json` (`ensure_scoring_fit`; computed again by an evaluation that finds it missing). Last,
the health of its memories on a few training batches goes to `memory_health.json`
(`vadlab.analysis.memory.memory_health`, copied into `metrics.json` under "memory_health").
`fit(..., resume=True)` continues from the last checkpoint and, on the CPU with
the same seed, ends with the same weights as an uninterrupted run.

Nothing silent, nothing clobbered (`vadlab.runs`): `run.lock` keeps a second training or evaluation out of the
folder; a NaN or Inf loss term stops training before that step's optimiser step, and after each step non-finite or
runaway weights or buffers, or a loss far above the run's first steps, stop it (`vadlab.guards`, `DivergenceError`);
a resume must match the run's seed, method, data and labels; SIGINT or
SIGTERM stop it after the current step with a checkpoint that also holds the position inside the epoch
(`"position"`: batches done, the epoch's running loss sums, the RNG states at the epoch's start), from which a
resume replays the epoch's start (hook, loader), restores the state and skips the batches done: same weights.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, RandomSampler
from tqdm.auto import tqdm as tqdm_auto

from vadlab import distributed, guards, runs
from vadlab import threads as cpu_threads
from vadlab.analysis.memory import memory_health
from vadlab.config import apply_overrides, check_fits_data
from vadlab.data.layout import as_layout
from vadlab.distributed import world  # noqa: F401  (public: `engine.world()` is used by the CLI)
from vadlab.errors import DataError, VadlabError, no_checkpoint
from vadlab.eval.calibration import CALIBRATION, Calibration
from vadlab.eval.protocol import evaluate_signals
from vadlab.eval.scores import fuse
from vadlab.io import atomic_path, write_json
from vadlab.models.base import EpochContext, Method, check_batch
from vadlab.progress import tqdm
from vadlab.registry import get_spec

CHECKPOINT = "checkpoint.pt"
MEMORY_HEALTH = "memory_health.json"  # written at the end of training, copied into metrics.json
MEMORY_HEALTH_BATCHES = 16  # training batches the memory-health diagnostic reads (bounded: cheap)
SCORING_FIT = "scoring_fit.json"  # `Method.fit_scoring` of a run (label-free constants from its training frames)


# --- small utilities ----------------------------------------------------------------------------------------------
def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VadlabError(f"device {device!r} asked for but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _autocast(device: torch.device):
    # AMP on CUDA only (bf16: no loss scaler needed); CPU runs in float32.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


# --- training -----------------------------------------------------------------------------------------------------
def fit(method, data, out: str | os.PathLike, *, seed: int = 0, device: str = "auto", resume: bool = False,
        progress: bool = True, stop_after: int | None = None,
        on_epoch: Callable[[int, list[dict]], None] | None = None, threads: int | None = None) -> list[dict]:
    """Train `method` (from `create_method`) on its training data from `data`, checkpointing into `out`.

    `stop_after=N` stops after epoch N as if interrupted (the schedule still spans `config.epochs`);
    `on_epoch(epoch, history)` is called after every epoch (e.g. a live loss plot); `threads` sets torch's CPU
    threads (default: `vadlab.threads.configure`, the cores this process may use). Returns the history.

    `out` is locked while training (`vadlab.runs`). SIGINT/SIGTERM stop training after the current step with a
    checkpoint of the position inside the epoch and raise `Interrupted`; a NaN or Inf loss term stops it before that
    step's optimiser step and raises `DivergenceError`, leaving the last good checkpoint untouched.
    """
    out = Path(out)
    layout = as_layout(data)  # validate before anything is written
    check_fits_data(method.config, method.training_videos(layout))  # a clip longer than a training video
    guards.check_resources(method.config, method.training_videos(layout), resolve_device(device))
    with guards.removed_if_left_empty(out):  # an early failure leaves no empty folder it made
        runs.make_run_folder(out)
        cpu_threads.configure(threads)
        group = distributed.join(resolve_device(device))
        with runs.lock(out, "training", group), runs.Interrupts() as interrupts:
            history = _train(method, layout, out, group, interrupts, seed=seed, resume=resume,
                             progress=progress and group.main, stop_after=stop_after, on_epoch=on_epoch)
    distributed.leave(group)
    return history


def _train(method, layout, out: Path, group, interrupts: runs.Interrupts, *, seed: int, resume: bool, progress: bool,
           stop_after: int | None, on_epoch) -> list[dict]:
    cfg = method.config
    ckpt_file = out / CHECKPOINT
    if ckpt_file.exists() and not resume:
        raise DataError(f"{ckpt_file}: a run already exists here; pass --resume to continue it or choose another --out")
    dev, n_procs = group.device, group.size

    set_seed(seed)
    if method.model_built:  # used before this run's seed was set (e.g. inspected): build it again under the seed
        method.model = method.build_model()
    model = method.model.to(dev)  # built here, once, under the seed: same init, same memory items, every time
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = method.configure_optimizers()

    history: list[dict] = []
    start_epoch, state, position = 0, None, None
    identity = {"seed": seed, "method": method.name, "data": str(layout.root),
              "labels_sha256": guards.labels_checksum(layout)}  # what a resume must match
    if resume and ckpt_file.exists():
        state = runs.read_checkpoint(ckpt_file, dev)
        guards.check_record(ckpt_file, {**_recorded(out), **state}, identity)  # seed, method, data, labels
        _check_same_config(state, cfg, ckpt_file)
        _load_training_state(state, model, optimizer, scheduler)
        history, start_epoch, position = state["history"], state["epoch"], state.get("position")
    kept = runs.describe_checkpoint(ckpt_file, state and state["epoch"], position)  # what a divergence leaves

    # what training_step calls: the model, or its DDP wrapper (same init on every rank, gradients averaged)
    method.train_net = distributed.wrap(model, group)

    dataset = method.train_dataset(layout)
    drop_last = len(dataset) // n_procs > cfg.batch_size  # BatchNorm needs more than one sample
    if group.main:
        write_json(out / "run.json", {
            "method": method.name, "config": asdict(cfg), "data": str(layout.root), "seed": seed,
            "device": str(dev), "train_clips": len(dataset), "processes": n_procs, "git_commit": git_commit(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "labels_sha256": identity["labels_sha256"],
        })
        if history:  # the checkpoint's history: a kill between the checkpoint and history.json left it behind
            write_json(out / "history.json", history)
    context = EpochContext(dataset=dataset, optimizer=optimizer, device=dev, seed=seed, world_size=n_procs)
    watch = guards.WeightWatch(model, state=(state or {}).get("guard"),  # weights and loss, every step
                               agree=lambda bad: runs.agree_any(bad, group, dev))

    def save(epochs_done: int, position: dict | None = None) -> None:
        if group.main:
            runs.save_checkpoint(ckpt_file, {
                "method": method.name, "config": asdict(cfg), "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
                "epoch": epochs_done, "history": history, "rng": _get_rng_state(), "seed": seed,
                "position": position, "data": identity["data"], "labels_sha256": identity["labels_sha256"],
                "guard": watch.state(),
            })
            write_json(out / "history.json", history)

    last = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    checked = False
    for epoch in range(start_epoch, last):
        resumed = position if epoch == start_epoch else None  # set when the checkpoint was written inside this epoch
        if resumed:
            _set_rng_state(resumed["rng_epoch_start"])  # replay the epoch's start (hook, loader) as it ran
        epoch_rng = _get_rng_state()
        method.on_epoch_start(epoch, context)
        model.train()
        done = resumed["batches_done"] if resumed else 0
        loader = _train_loader(method, dataset, epoch, seed, group, drop_last, dev, skip=done)
        batches, n_steps = _iterate(loader), done + len(loader)
        sums: dict[str, torch.Tensor] = {}
        t0 = time.perf_counter()
        if resumed:  # then back to where it stopped: weights, memory, optimiser, RNG, the epoch's running sums
            _load_training_state(state, model, optimizer, scheduler)
            sums, t0 = _resumed_sums(resumed, group, ckpt_file), t0 - resumed["seconds"]
        bar = tqdm(batches, total=len(loader), desc=f"{method.name} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, leave=False)
        stop = False
        for batch in bar:
            if not checked:  # the first batch against the batch contract (models.base.Batch)
                check_batch(batch, frames_in=method.clip_spec().frames_in, channels=cfg.channels,
                            frame_hw=method.frame_size, extras=tuple(getattr(dataset, "extras", ())))
                checked = True
            batch = _to_device(batch, dev)
            with _autocast(dev):
                outputs = method.training_step(batch)
            optimizer.zero_grad(set_to_none=True)
            outputs["loss"].backward()
            finite, stop = runs.step_status(outputs, interrupts, group, dev)  # the step's one host sync
            if not finite:
                raise runs.divergence_error(outputs, epoch, done, n_steps, kept)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            method.after_optimizer_step(distributed.gather_private(outputs, n_procs))
            watch.after_step(outputs["loss"], f"epoch {epoch + 1}, step {done + 1} of {n_steps}", kept)
            for k, v in outputs.items():
                if not k.startswith("_"):
                    sums[k] = sums.get(k, 0.0) + v.detach().float()  # no host sync in the loop
            done += 1
            if stop:
                break
        if done < n_steps:  # a signal: save the position inside the epoch, then stop
            save(epoch, {"batches_done": done, "sums": runs.sums_of_every_process(sums, group),
                         "seconds": time.perf_counter() - t0, "rng_epoch_start": epoch_rng})
            raise runs.interrupted(interrupts.signum, out, epoch, done, n_steps)
        n = max(n_steps, 1)
        sums = distributed.mean_over_processes(sums, n_procs)  # epoch means over all processes
        distributed.check_in_step(model, n_procs)  # and check that they are still in step
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        record.update({k: float(v) / n for k, v in sums.items()})
        runs.flag_bad_loss(record, history, f"{method.name} epoch {epoch + 1}", warn=group.main)
        history.append(record)
        if scheduler is not None:
            scheduler.step()
        save(epoch + 1)
        kept = runs.describe_checkpoint(ckpt_file, epoch + 1)
        if progress:
            tqdm_auto.write(f"{method.name} epoch {epoch + 1}/{cfg.epochs}: loss {record['loss']:.4f} "
                       f"({record['seconds']:.1f}s)")
        if on_epoch is not None and group.main:
            on_epoch(epoch + 1, history)
        if epoch + 1 < last and (stop or runs.stop_agreed(interrupts, group, dev)):  # a signal at the epoch's end
            raise runs.interrupted(interrupts.signum, out, epoch, n_steps, n_steps)
    method.train_net = model
    if group.main and last == cfg.epochs:  # trained to the end: the reference `vadlab score` calibrates against
        ensure_scoring_fit(method, out, layout, progress=progress)  # before the calibration: its scores may use it
        calibrate(method, layout, progress=progress, epochs_trained=cfg.epochs).save(out / CALIBRATION)
        rng = _get_rng_state()
        health = memory_health(method, dataset, max_batches=MEMORY_HEALTH_BATCHES, seed=seed)
        _set_rng_state(rng)
        if health:  # per memory space: top item's share, entropy; DREAM: active triplets per branch
            write_json(out / MEMORY_HEALTH, health)
    return history


def _recorded(run: Path) -> dict:
    """The run.json fields a resume compares (a checkpoint older than these fields has only run.json's)."""
    try:
        info = json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: info[k] for k in ("seed", "method", "data", "labels_sha256") if k in info}


def _check_same_config(state: dict, cfg, ckpt_file: Path) -> None:
    saved = type(cfg).from_saved(state["config"])
    changed = sorted(k for k, v in asdict(cfg).items() if k != "epochs" and saved.get(k) != v)
    if changed:  # only the epoch count may change on resume
        raise DataError(f"{ckpt_file}: cannot resume with a different config: "
                        + ", ".join(f"{k} {saved.get(k)!r} -> {getattr(cfg, k)!r}" for k in changed))


def _load_training_state(state: dict, model, optimizer, scheduler) -> None:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])


def _resumed_sums(position: dict, group, ckpt_file: Path) -> dict[str, torch.Tensor]:
    """This process's running loss sums of the interrupted epoch."""
    per_process = position["sums"]
    if len(per_process) != group.size:
        raise DataError(f"{ckpt_file}: stopped inside an epoch with {len(per_process)} processes; resume it with "
                        f"{len(per_process)}, not {group.size}")
    return {k: v.to(group.device) for k, v in per_process[group.rank].items()}


def _iterate(loader: DataLoader):
    """The epoch's iterator over `loader`. Every iter() of a DataLoader draws one seed from its generator (the global
    RNG when it has none) before the batch order is drawn. The progress bar (tqdm.auto) used to call iter() once more
    than needed, so one iterator is made and thrown away first: batch orders stay those of earlier versions. Both
    happen here, before a resume restores the RNG state of the interruption."""
    iter(loader)
    return iter(loader)


class _BatchSlice:
    """Batches `start` to `stop` of a batch sampler. The batches before `start` are drawn, so the order stays the
    same, but their data is never loaded (a resume inside the epoch). `stop` is the budget's cut
    (`steps_per_epoch`): a fresh shuffle each epoch, cut after `stop`, so over the epochs every clip is drawn and
    an epoch costs `stop` steps whatever the data's size."""

    def __init__(self, batches, start: int = 0, stop: int | None = None):
        self.batches, self.start, self.stop = batches, start, stop

    def __iter__(self):
        return itertools.islice(iter(self.batches), self.start, self.stop)

    def __len__(self) -> int:
        end = len(self.batches) if self.stop is None else min(len(self.batches), self.stop)
        return max(end - self.start, 0)


def _train_loader(method, dataset, epoch: int, seed: int, group, drop_last: bool, dev: torch.device,
                  skip: int = 0) -> DataLoader:
    """This process's batches of one epoch: the method's batch sampler if it has one, else a shuffle that depends
    on (seed, epoch) only, so a resumed run sees the same batches (under torchrun each rank its shard of one
    permutation, padded to equal length). `skip`: leave out the first batches (a resume inside the epoch)."""
    cfg = method.config
    common = {"num_workers": cfg.num_workers, "pin_memory": dev.type == "cuda"}
    batches = method.train_batches(dataset, epoch=epoch, seed=seed, rank=group.rank, world_size=group.size,
                                   batch_size=cfg.batch_size)
    generator = None
    if batches is None:  # what DataLoader(shuffle=True, generator=...) or (sampler=DistributedSampler) builds
        if group.size > 1:
            sampler = DistributedSampler(dataset, group.size, group.rank, shuffle=True, seed=seed * 1000 + epoch)
        else:
            generator = torch.Generator().manual_seed(seed * 1000 + epoch)
            sampler = RandomSampler(dataset, generator=generator)
        batches = BatchSampler(sampler, cfg.batch_size, drop_last)
    if skip or cfg.steps_per_epoch:  # skip: a resume inside the epoch; steps_per_epoch: the budget's cut
        batches = _BatchSlice(batches, skip, cfg.steps_per_epoch or None)
    return DataLoader(dataset, batch_sampler=batches, generator=generator, **common)


def _get_rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- loading and scoring ------------------------------------------------------------------------------------------
def load_run(run: str | os.PathLike, device: str = "auto", overrides: dict | None = None, *,
             method: str | None = None):
    """The trained method of a run folder (its checkpoint), in eval mode on `device`.

    `overrides` change test-time settings of the config (e.g. gamma, test_update, score_lambda); `method`, when
    given, refuses a checkpoint of another method. A checkpoint of another format version is refused."""
    run = Path(run)
    ckpt_file = run / CHECKPOINT
    if not ckpt_file.exists():
        raise no_checkpoint(run)
    dev = resolve_device(device)
    state = runs.read_checkpoint(ckpt_file, dev, method=method)  # safe load; a non-finite model is refused
    guards.check_record(ckpt_file, _recorded(run), {"method": state["method"]},  # the folder's own method
                        what="its checkpoint is not the run its run.json records", names=("run.json", "checkpoint.pt"),
                        hint="The folder mixes two runs: put each checkpoint back with its own run.json")
    spec = get_spec(state["method"])
    try:
        config = spec.config_cls(**spec.config_cls.from_saved(state["config"]))
    except TypeError as exc:  # a field this version of the method does not have
        raise DataError(f"{ckpt_file}: its {state['method']} config does not fit this version ({exc})") from None
    trained = spec.cls(apply_overrides(config, overrides))
    trained.model.load_state_dict(state["model"])
    trained.model.to(dev).eval()
    trained.epochs_trained = state["epoch"]
    fit_file = run / SCORING_FIT
    if fit_file.exists():  # taken when it fits the config; else `ensure_scoring_fit` computes it for an evaluation
        trained.use_scoring_fit(_read_scoring_fit(fit_file))
    return trained


def _read_scoring_fit(file: Path) -> dict:
    try:
        fit = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{file}: cannot read the scoring statistics ({exc}); delete it to compute them "
                        "again") from None
    if not isinstance(fit, dict):
        raise DataError(f"{file}: not a JSON object; delete it to compute the scoring statistics again")
    return fit


def ensure_scoring_fit(method, run: str | os.PathLike, data, *, progress: bool = True) -> dict | None:
    """The run's `Method.fit_scoring` constants, taken by `method`: read from `scoring_fit.json` when it fits the
    method's config, else computed on the normal training frames of `data` (and written when the run has no file
    yet; one computed for other test-time settings, e.g. another patch size, is used for this call only). None
    for a method that needs none."""
    if type(method).fit_scoring is Method.fit_scoring:  # a method without such constants: nothing to read or do
        return None
    file = Path(run) / SCORING_FIT
    if file.exists() and method.use_scoring_fit(_read_scoring_fit(file)):
        return _read_scoring_fit(file)
    fit = method.fit_scoring(calibration_videos(as_layout(data).training), progress=progress)
    if not fit:
        return None
    if not file.exists() and os.access(Path(run), os.W_OK):
        write_json(file, fit)
    method.use_scoring_fit(fit)
    return fit


@torch.no_grad()
def scoring_batch_size(method) -> int:
    """Clips per scoring batch: 1 where the test-time state follows frame order (`sequential_test`, e.g. MNAD's
    memory update), else max(batch_size, 16)."""
    return 1 if method.sequential_test else max(method.config.batch_size, 16)


@torch.no_grad()
def score_clips(method, batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
    """The method's `score_batch` on a batch of clips moved to `device`, under its autocast: {signal: (B, ...)}."""
    batch = _to_device(batch, device)
    with _autocast(device):
        return method.score_batch(batch)


def infer(method, data, *, device: str | None = None, progress: bool = True, split: str = "testing") -> dict:
    """Score every frame of every video in `split`: {signal: {video: (N,) float64, NaN where unscorable}}.

    A method's per-pixel map comes back under "_map" as {video: (N, H, W) float32, NaN for unscored frames}."""
    layout = as_layout(data)
    dev = next(method.model.parameters()).device if device is None else resolve_device(device)
    method.model.to(dev).eval()
    videos = layout.split(split)
    dataset = method.test_dataset(videos)
    signals: dict[str, dict[str, np.ndarray]] = {}
    batch_size = scoring_batch_size(method)
    method.begin_scoring([v.name for v in videos])
    for vi, video in enumerate(tqdm(videos, desc=f"scoring {split}", disable=not progress, leave=False)):
        method.reset_test_state()
        subset = torch.utils.data.Subset(dataset, dataset.clip_indices(vi).tolist())
        per_signal: dict[str, list] = {}
        indices = []
        for batch in DataLoader(subset, batch_size=batch_size, shuffle=False):
            scores = score_clips(method, batch, dev)
            for name, value in scores.items():
                per_signal.setdefault(name, []).append(value.float().cpu())
            indices.append(batch["index"].cpu())
        idx = torch.cat(indices).numpy()
        for name, chunks in per_signal.items():
            values = torch.cat(chunks).numpy()
            full = np.full((len(video), *values.shape[1:]), np.nan, dtype=np.float32 if name == "_map" else np.float64)
            full[idx] = values
            signals.setdefault(name, {})[video.name] = full
    return signals


# training frames scored for the calibration: whole videos, evenly spaced, up to about this many frames (ped2-mini's
# 600 all; the full Ped2's 2550 all; ShanghaiTech's 274k about 1 %)
CALIBRATION_MAX_FRAMES = 3000


def calibration_videos(videos, max_frames: int = CALIBRATION_MAX_FRAMES) -> list:
    """The normal training videos the calibration scores: all when they hold at most `max_frames` frames, else
    evenly spaced whole videos (at least one) holding about that many."""
    videos = list(videos)
    total = sum(len(v) for v in videos)
    if total <= max_frames:
        return videos
    count = max(1, round(len(videos) * max_frames / total))
    return [videos[i] for i in np.unique(np.linspace(0, len(videos) - 1, count).round().astype(int))]


@torch.no_grad()
def scoring_fingerprint(method) -> dict:
    """What a calibration's raw scores depend on besides the weights: the method's whole config (test-time fields
    such as MAAM-Net's psi_rule, patch and stride included) and the `fit_scoring` constants it scored with, in
    JSON form. `vadlab score` computes the calibration again when the run's fingerprint no longer matches."""
    fingerprint = {"config": method.config.to_dict(), "scoring_fit": getattr(method, "scoring_fit", None)}
    return json.loads(json.dumps(fingerprint, sort_keys=True, default=str))


def calibrate(method, data, *, progress: bool = True, epochs_trained: int | None = None) -> Calibration:
    """Score the normal training frames (`calibration_videos` of `layout.training`) with the trained `method`, as
    `infer` scores test videos (test-time updates included), and return the distribution of each raw signal
    (`vadlab.eval.calibration`). The anomaly map's 99.9th percentile comes along as the display scale of overlays.
    The model's train/eval mode and the global RNG states are restored afterwards."""
    layout = as_layout(data)
    videos = calibration_videos(layout.training)
    was_training, rng = method.model.training, _get_rng_state()  # the caller's RNG and mode are left as they were
    t0 = time.perf_counter()
    signals = infer(method, dataclasses.replace(layout, training=tuple(videos)), progress=progress, split="training")
    seconds = time.perf_counter() - t0
    stats = method.test_statistics()  # also ends the pass (e.g. MAAM-Net's per-frame counts are consumed)
    method.model.train(was_training)
    _set_rng_state(rng)
    maps = signals.pop("_map", None)
    frames = {name: np.concatenate([per[v.name] for v in videos]) for name, per in signals.items()}  # (N,) each
    map_scale = None
    if maps:
        pixels = np.concatenate([m[np.isfinite(m).all(axis=(1, 2))].ravel() for m in maps.values()])
        map_scale = float(np.percentile(pixels, 99.9)) if pixels.size else None
    if epochs_trained is None:
        epochs_trained = getattr(method, "epochs_trained", None)
    meta = {"method": method.name, "data": str(layout.root), "videos": [v.name for v in videos],
            "frames": int(sum(len(v) for v in videos)), "seconds": seconds, "epochs_trained": epochs_trained,
            "test_statistics": stats, "scoring": scoring_fingerprint(method)}
    return Calibration(frames, method.fusion_weights(), map_scale, meta)


def evaluate_run(run: str | os.PathLike, data=None, *, device: str = "auto", progress: bool = True,
                 overrides: dict | None = None, threads: int | None = None) -> dict:
    """Score the test split with a trained run and write `metrics.json` and `scores.npz` into the run folder.

    With test-time `overrides` (e.g. {"test_update": False}) the files are named after them instead,
    `metrics[test_update=False].json`, so the run's own evaluation is kept."""
    run = Path(run)
    cpu_threads.configure(threads)
    method = load_run(run, device, overrides)
    with runs.lock(run, "evaluation"):  # no training or other evaluation writes into the run meanwhile
        return _evaluate(method, run, data, progress, overrides)


def evaluation(run: str | os.PathLike, data=None, *, device: str = "auto", progress: bool = True) -> dict:
    """The run's evaluation: its `metrics.json` when that scored the run's last checkpoint on this data (as the
    demo's comparison just did), else `evaluate_run`. A report that follows the comparison does not score the test
    split twice."""
    run = Path(run)
    metrics, checkpoint = metrics_file(run), run / "checkpoint.pt"
    if metrics.exists() and (run / "scores.npz").exists() and checkpoint.exists():
        report = json.loads(metrics.read_text())
        trained_on = json.loads((run / "run.json").read_text())["data"] if (run / "run.json").exists() else None
        wanted = as_layout(data if data is not None else trained_on).root
        fresh = metrics.stat().st_mtime_ns >= checkpoint.stat().st_mtime_ns
        history = run / "history.json"
        epochs = len(json.loads(history.read_text())) if history.exists() else None
        if fresh and Path(report.get("data", "")).resolve() == Path(wanted).resolve() and \
                report.get("epochs_trained") == epochs and not report.get("overrides"):
            return report
    return evaluate_run(run, data, device=device, progress=progress)


def overrides_suffix(overrides: dict | None) -> str:
    """The file-name suffix of an evaluation with test-time overrides: "[test_update=False]", "" without."""
    return "[" + ",".join(f"{k}={v}" for k, v in sorted(overrides.items())) + "]" if overrides else ""


def metrics_file(run: str | os.PathLike, overrides: dict | None = None) -> Path:
    """Where `evaluate_run(run, overrides=overrides)` writes its metrics: `metrics.json` or `metrics[k=v].json`."""
    return Path(run) / f"metrics{overrides_suffix(overrides)}.json"


def _evaluate(method, run: Path, data, progress: bool, overrides: dict | None) -> dict:
    suffix = overrides_suffix(overrides)
    trained_on = json.loads((run / "run.json").read_text())["data"] if (run / "run.json").exists() else None
    if data is None:
        data = trained_on
    layout = as_layout(data)
    t0 = time.perf_counter()
    # the scoring's training-frame constants come from the data the run trained on (the test data's otherwise)
    ensure_scoring_fit(method, run, trained_on if trained_on and Path(trained_on).is_dir() else layout,
                       progress=progress)
    t1 = time.perf_counter()
    signals = infer(method, layout, progress=progress)
    inference_seconds = time.perf_counter() - t1  # the pass over the test split: frames read, the model (frames/s)
    maps = signals.pop("_map", None)
    report = evaluate_signals(signals, method.fusion_weights(), layout, size=method.config.image_size, maps=maps)
    report.update({"method": method.name, "data": str(layout.root), "epochs_trained": method.epochs_trained,
                   "scoring_seconds": time.perf_counter() - t0, "inference_seconds": inference_seconds,
                   "git_commit": git_commit()})
    report.update(method.test_statistics())
    history_file = run / "history.json"
    if history_file.exists():
        report["train_seconds"] = sum(h["seconds"] for h in json.loads(history_file.read_text()))
    fused = fuse(signals, method.fusion_weights(), mode="video")
    arrays = {f"{name}/{video}": arr for name, per in signals.items() for video, arr in per.items()}
    arrays.update({f"score/{video}": arr for video, arr in fused.items()})
    arrays.update({f"label/{v.name}": v.labels for v in layout.testing})
    if (run / MEMORY_HEALTH).exists():  # the trained memories on the training clips (issue 23)
        report["memory_health"] = json.loads((run / MEMORY_HEALTH).read_text())
    report["overrides"] = dict(overrides or {})
    with atomic_path(run / f"scores{suffix}.npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    write_json(run / f"metrics{suffix}.json", report)
    return report


def load_scores(run: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """`scores.npz` of a run as {kind: {video: array}} with kinds = signal names, "score" and "label"."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with np.load(Path(run) / "scores.npz", allow_pickle=False) as npz:
        for key in npz.files:
            kind, _, video = key.partition("/")
            out.setdefault(kind, {})[video] = npz[key]
    return out


def run_info(run: str | os.PathLike) -> dict:
    """`run.json` of a run folder (method, config, data, seed, ...) and its `history.json` under "history"."""
    run = Path(run)
    if not (run / "run.json").exists():
        raise DataError(f"{run / 'run.json'}: missing (is {run} a run folder written by `vadlab train`?)")
    info = json.loads((run / "run.json").read_text())
    history = run / "history.json"
    info["history"] = json.loads(history.read_text()) if history.exists() else []
    return info
