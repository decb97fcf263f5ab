"""One training and scoring loop for every method: `fit`, `load_run`, `infer`, `evaluate_run`.

The loop calls only the hooks of `vadlab.models.base.Method` (training data, optimiser and schedule, per-epoch stage
hook, training step, post-step update, test-time contract), so a new method plugs in without editing it.

Under `torchrun` (WORLD_SIZE > 1) the same `fit` trains data-parallel with PyTorch DDP (`vadlab.distributed`):
`batch_size` is per process, each process reads its shard of every epoch (DistributedSampler, or the method's own
batch sampler), outputs whose name starts with "_" (e.g. MNAD's queries) are gathered over all processes before
`after_optimizer_step`, so a memory update sees the global batch, and only rank 0 writes files and shows progress.

A run folder holds `run.json` (what was run), `checkpoint.pt` (model with its memory, optimiser, scheduler, RNG
states, epoch, history; written atomically after every epoch), `history.json`, and after evaluation
`metrics.json` and `scores.npz`. `fit(..., resume=True)` continues from the last checkpoint and, on the CPU with
the same seed, ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

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
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from vadlab import distributed
from vadlab.config import apply_overrides
from vadlab.data.layout import as_layout
from vadlab.distributed import world  # noqa: F401  (public: `engine.world()` is used by the CLI)
from vadlab.errors import DataError, VadlabError
from vadlab.eval.protocol import evaluate_signals
from vadlab.eval.scores import fuse
from vadlab.io import atomic_path, write_json
from vadlab.models.base import EpochContext
from vadlab.registry import get_spec

CHECKPOINT = "checkpoint.pt"


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


def atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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
        on_epoch: Callable[[int, list[dict]], None] | None = None) -> list[dict]:
    """Train `method` (from `create_method`) on its training data from `data`, checkpointing into `out`.

    `stop_after=N` stops after epoch N as if interrupted (the schedule still spans `config.epochs`);
    `on_epoch(epoch, history)` is called after every epoch (e.g. a live loss plot). Returns the history.
    """
    out = Path(out)
    layout = as_layout(data)  # validate before anything is written
    out.mkdir(parents=True, exist_ok=True)
    cfg = method.config
    ckpt_file = out / CHECKPOINT
    if ckpt_file.exists() and not resume:
        raise DataError(f"{ckpt_file}: a run already exists here; pass --resume to continue it or choose another --out")
    group = distributed.join(resolve_device(device))
    dev, n_procs = group.device, group.size
    progress = progress and group.main

    set_seed(seed)
    method.model = method.build_model()  # built under the seed: same init, same memory items, every time
    model = method.model.to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = method.configure_optimizers()

    history: list[dict] = []
    start_epoch = 0
    if resume and ckpt_file.exists():
        state = torch.load(ckpt_file, map_location=dev, weights_only=False)
        if state["method"] != method.name:
            raise DataError(f"{ckpt_file}: holds a {state['method']} run, not {method.name}")
        changed = sorted(k for k, v in asdict(cfg).items() if k != "epochs" and state["config"].get(k) != v)
        if changed:  # only the epoch count may change on resume
            raise DataError(f"{ckpt_file}: cannot resume with a different config: "
                            + ", ".join(f"{k} {state['config'].get(k)!r} -> {getattr(cfg, k)!r}" for k in changed))
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        history, start_epoch = state["history"], state["epoch"]
        _set_rng_state(state["rng"])

    # what training_step calls: the model, or its DDP wrapper (same init on every rank, gradients averaged)
    method.train_net = distributed.wrap(model, group)

    dataset = method.train_dataset(layout)
    drop_last = len(dataset) // n_procs > cfg.batch_size  # BatchNorm needs more than one sample
    if group.main:
        write_json(out / "run.json", {
            "method": method.name, "config": asdict(cfg), "data": str(layout.root), "seed": seed,
            "device": str(dev), "train_clips": len(dataset), "processes": n_procs, "git_commit": git_commit(),
            "torch": torch.__version__, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        })
    context = EpochContext(dataset=dataset, optimizer=optimizer, device=dev, seed=seed, world_size=n_procs)

    last = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    for epoch in range(start_epoch, last):
        method.on_epoch_start(epoch, context)
        model.train()
        loader = _train_loader(method, dataset, epoch, seed, group, drop_last, dev)
        sums: dict[str, torch.Tensor] = {}
        t0 = time.perf_counter()
        bar = tqdm(loader, desc=f"{method.name} epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
        for batch in bar:
            batch = _to_device(batch, dev)
            with _autocast(dev):
                outputs = method.training_step(batch)
            optimizer.zero_grad(set_to_none=True)
            outputs["loss"].backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            method.after_optimizer_step(distributed.gather_private(outputs, n_procs))
            for k, v in outputs.items():
                if not k.startswith("_"):
                    sums[k] = sums.get(k, 0.0) + v.detach().float()  # no host sync in the loop
        n = max(len(loader), 1)
        sums = distributed.mean_over_processes(sums, n_procs)  # epoch means over all processes
        distributed.check_in_step(model, n_procs)  # and check that they are still in step
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        record.update({k: float(v) / n for k, v in sums.items()})
        history.append(record)
        if scheduler is not None:
            scheduler.step()
        if group.main:
            atomic_torch_save({
                "method": method.name, "config": asdict(cfg), "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
                "epoch": epoch + 1, "history": history, "rng": _get_rng_state(), "seed": seed,
            }, ckpt_file)
            write_json(out / "history.json", history)
        if progress:
            tqdm.write(f"{method.name} epoch {epoch + 1}/{cfg.epochs}: loss {record['loss']:.4f} "
                       f"({record['seconds']:.1f}s)")
        if on_epoch is not None and group.main:
            on_epoch(epoch + 1, history)
    method.train_net = model
    distributed.leave(group)
    return history


def _train_loader(method, dataset, epoch: int, seed: int, group, drop_last: bool, dev: torch.device) -> DataLoader:
    """This process's batches of one epoch: the method's batch sampler if it has one, else a shuffle that depends
    on (seed, epoch) only, so a resumed run sees the same batches (under torchrun each rank its shard of one
    permutation, padded to equal length)."""
    cfg = method.config
    common = {"num_workers": cfg.num_workers, "pin_memory": dev.type == "cuda"}
    batches = method.train_batches(dataset, epoch=epoch, seed=seed, rank=group.rank, world_size=group.size,
                                   batch_size=cfg.batch_size)
    if batches is not None:
        return DataLoader(dataset, batch_sampler=batches, **common)
    if group.size > 1:
        order = {"sampler": DistributedSampler(dataset, group.size, group.rank, shuffle=True, seed=seed * 1000 + epoch)}
    else:
        order = {"shuffle": True, "generator": torch.Generator().manual_seed(seed * 1000 + epoch)}
    return DataLoader(dataset, batch_size=cfg.batch_size, drop_last=drop_last, **order, **common)


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
def load_run(run: str | os.PathLike, device: str = "auto", overrides: dict | None = None):
    """The trained method of a run folder (its checkpoint), in eval mode on `device`.

    `overrides` change test-time settings of the config (e.g. gamma, test_update, score_lambda)."""
    run = Path(run)
    ckpt_file = run / CHECKPOINT
    if not ckpt_file.exists():
        raise DataError(f"{ckpt_file}: no checkpoint (is {run} a run folder written by `vadlab train`?)")
    dev = resolve_device(device)
    state = torch.load(ckpt_file, map_location=dev, weights_only=False)
    spec = get_spec(state["method"])
    method = spec.cls(apply_overrides(spec.config_cls(**state["config"]), overrides))
    method.model.load_state_dict(state["model"])
    method.model.to(dev).eval()
    method.epochs_trained = state["epoch"]
    return method


@torch.no_grad()
def infer(method, data, *, device: str | None = None, progress: bool = True, split: str = "testing") -> dict:
    """Score every frame of every video in `split`: {signal: {video: (N,) float64, NaN where unscorable}}.

    A method's per-pixel map comes back under "_map" as {video: (N, H, W) float32, NaN for unscored frames}."""
    layout = as_layout(data)
    cfg = method.config
    dev = next(method.model.parameters()).device if device is None else resolve_device(device)
    method.model.to(dev).eval()
    videos = layout.split(split)
    dataset = method.test_dataset(videos)
    signals: dict[str, dict[str, np.ndarray]] = {}
    batch_size = 1 if method.sequential_test else max(cfg.batch_size, 16)
    for vi, video in enumerate(tqdm(videos, desc=f"scoring {split}", disable=not progress, leave=False)):
        method.reset_test_state()
        subset = torch.utils.data.Subset(dataset, dataset.clip_indices(vi).tolist())
        per_signal: dict[str, list] = {}
        indices = []
        for batch in DataLoader(subset, batch_size=batch_size, shuffle=False):
            batch = _to_device(batch, dev)
            with _autocast(dev):
                scores = method.score_batch(batch)
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


def evaluate_run(run: str | os.PathLike, data=None, *, device: str = "auto", progress: bool = True,
                 overrides: dict | None = None) -> dict:
    """Score the test split with a trained run and write `metrics.json` and `scores.npz` into the run folder.

    With test-time `overrides` (e.g. {"test_update": False}) the files are named after them instead,
    `metrics[test_update=False].json`, so the run's own evaluation is kept."""
    run = Path(run)
    method = load_run(run, device, overrides)
    suffix = "[" + ",".join(f"{k}={v}" for k, v in sorted(overrides.items())) + "]" if overrides else ""
    if data is None:
        data = json.loads((run / "run.json").read_text())["data"]
    layout = as_layout(data)
    t0 = time.perf_counter()
    signals = infer(method, layout, progress=progress)
    maps = signals.pop("_map", None)
    report = evaluate_signals(signals, method.fusion_weights(), layout, size=method.config.image_size, maps=maps)
    report.update({"method": method.name, "data": str(layout.root), "epochs_trained": method.epochs_trained,
                   "scoring_seconds": time.perf_counter() - t0, "git_commit": git_commit()})
    report.update(method.test_statistics())
    history_file = run / "history.json"
    if history_file.exists():
        report["train_seconds"] = sum(h["seconds"] for h in json.loads(history_file.read_text()))
    fused = fuse(signals, method.fusion_weights(), mode="video")
    arrays = {f"{name}/{video}": arr for name, per in signals.items() for video, arr in per.items()}
    arrays.update({f"score/{video}": arr for video, arr in fused.items()})
    arrays.update({f"label/{v.name}": v.labels for v in layout.testing})
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
