"""Reproduce planning: the jobs of a spec on a dataset (`plan`, `Job`), their status from each run's `reproduce.json`
key, and the time estimates of a dry run."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from vadlab.errors import ConfigError, DataError
from vadlab.reproduce.spec import DATA_DEFAULTS, Row, Spec

KEY_FORMAT = 1  # the layout of `reproduce.json`'s key
RECORD = "reproduce.json"


# --- planning -------------------------------------------------------------------------------------------------
@dataclass
class Job:
    """One run of a row for one replicate (fold, seed): a training (+ its evaluation) or a re-scoring."""

    row: Row
    seed: int
    fold: int | None
    folder: Path  # the trained run (a scored row: its source's run)
    data: Path  # the dataset it trains and is scored on (a split: the derived root)
    key: dict  # what `reproduce.json` records
    status: str  # new | resume | evaluate | finished; scored rows: re-evaluate | finished | with source (metric only)
    epochs_done: int = 0
    epochs: int = 0
    steps_per_epoch: int | None = None

    @property
    def replicate(self) -> str:
        return f"seed{self.seed}" if self.fold is None else f"fold{self.fold}-seed{self.seed}"

    @property
    def name(self) -> str:
        return f"{self.row.id} {self.replicate}"

    @property
    def metrics_file(self) -> Path:
        from vadlab.engine import metrics_file

        return metrics_file(self.folder, self.row.score_set or None)


def default_data(kind: str) -> Path:
    """The default --data root of a dataset kind."""
    if kind.startswith("synthetic:"):
        return Path("data") / f"synthetic-{kind.partition(':')[2]}"
    return Path(DATA_DEFAULTS[kind])


def _key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _changes(old: dict, new: dict) -> list[str]:
    """What differs between two run keys, in words ("preset 'smoke' -> 'cpu'", "config.epochs 1 -> 3")."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict) and k == "config":
            out += [f"config.{f} {a.get(f)!r} -> {b.get(f)!r}" for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f)]
        elif a != b:
            out.append(f"{k} {a!r} -> {b!r}")
    return out


def _split_root(spec: Spec, runs: Path, fold: int) -> Path:
    s = spec.split
    return runs / spec.name / "data" / f"kfold-k{s['k']}-{s['unit']}-m{s['margin']}-fold{fold}"


def plan(spec: Spec, *, preset: str = "cpu", data: str | os.PathLike | None = None,
         runs: str | os.PathLike = "runs/reproduce", seeds: list[int] | None = None) -> list[Job]:
    """Every run of the spec (trained rows and their re-scorings) with its status on disk. A run folder whose
    `reproduce.json` differs from what the spec now resolves to, or a folder not written by `reproduce`, is refused
    (ConfigError naming the row, the folder and what changed)."""
    from vadlab.data.layout import load_layout
    from vadlab.registry import get_config

    root = Path(data) if data is not None else default_data(spec.dataset)
    root = _check_data(spec, root, create=False)
    runs = Path(runs)
    seeds = list(seeds) if seeds is not None else list(spec.seeds)
    folds = spec.split["folds"] if spec.split else [None]
    layout = load_layout(root) if root.exists() else None
    jobs: list[Job] = []
    trained: dict[tuple[str, int, int | None], Job] = {}
    for row in spec.rows:
        if row.scored_from:
            continue
        config = get_config(row.method, preset, ablations=[row.ablation] if row.ablation else [], **row.set)
        steps = steps_per_epoch(row.method, config, layout)
        for fold in folds:
            for seed in seeds:
                run_data = _split_root(spec, runs, fold) if fold is not None else root
                split = None if fold is None else {k: v for k, v in spec.split.items() if k != "folds"} | {
                    "fold": fold}
                key = {"format": KEY_FORMAT, "method": row.method, "preset": preset, "ablation": row.ablation,
                       "set": row.set, "config": json.loads(json.dumps(asdict(config), default=str)),
                       "data": str(root.resolve()), "split": split, "seed": seed}
                folder = runs / spec.name / row.id / (f"seed{seed}" if fold is None else f"fold{fold}-seed{seed}")
                job = Job(row, seed, fold, folder, run_data, key, "new", epochs=config.epochs, steps_per_epoch=steps)
                _status(job, spec)
                trained[(row.id, seed, fold)] = job
                jobs.append(job)
    for row in spec.rows:
        if row.scored_from:
            for fold in folds:
                for seed in seeds:
                    source = trained[(row.scored_from, seed, fold)]
                    job = Job(row, seed, fold, source.folder, source.data, source.key, "re-evaluate")
                    if not row.score_set:  # another metric of the source's evaluation: nothing to run
                        job.status = "finished" if source.status == "finished" else "with source"
                    elif source.status == "finished" and job.metrics_file.exists():
                        job.status = "finished"
                    jobs.append(job)
    return jobs


def _upgraded(key: dict, job: Job) -> dict:
    """A saved run key whose config predates fields added since, filled as loading its checkpoint fills them
    (`MethodConfig.from_saved`: the field's `legacy_defaults` value, else its default): a field added with a default
    that keeps the old behaviour does not orphan the finished runs; one the preset sets otherwise still does."""
    from vadlab.registry import get_spec

    if not isinstance(key.get("config"), dict):
        return key
    cls = get_spec(job.row.method).config_cls
    defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
    config = {**defaults, **cls.from_saved(key["config"])}  # what loading fills in, the field's default otherwise
    return {**key, "config": json.loads(json.dumps(config, default=str))}


def _status(job: Job, spec: Spec) -> None:
    folder, record = job.folder, job.folder / RECORD
    if record.exists():
        saved = json.loads(record.read_text())
        if saved.get("hash") != _key_hash(job.key) and _key_hash(_upgraded(saved.get("key", {}), job)) != \
                _key_hash(job.key):
            changed = "; ".join(_changes(saved.get("key", {}), job.key)) or "the key's format"
            raise ConfigError(f"{spec.file}: row {job.row.id} ({job.replicate}): {folder} was made with another "
                              f"setting ({changed}); refusing to mix runs. Remove that folder or give another --runs")
    elif folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{spec.file}: row {job.row.id} ({job.replicate}): {folder} exists and was not written by "
                          f"`vadlab reproduce` (no {RECORD}); remove it or give another --runs")
    history = folder / "history.json"
    job.epochs_done = len(json.loads(history.read_text())) if history.exists() else 0
    if not (folder / "checkpoint.pt").exists():
        job.status, job.epochs_done = "new", 0
    elif job.epochs_done < job.epochs:
        job.status = "resume"
    elif not (folder / "metrics.json").exists():
        job.status = "evaluate"
    else:
        job.status = "finished"


def steps_per_epoch(method: str, config, layout) -> int | None:
    """About the training steps per epoch on `layout`, counted without reading a frame: clips of the normal
    training videos (frames less the clip span) / batch size; the labelled anomalies a method may add are not
    counted (a split is made at run time). None without data."""
    if layout is None:
        return None
    from vadlab.registry import get_spec

    clip = get_spec(method).cls(config).clip_spec()
    clips = sum(len(clip.scored_range(len(v))) for v in layout.training)  # one clip per scored frame, as ClipDataset
    steps = max(1, math.ceil(clips / config.batch_size))
    return min(steps, config.steps_per_epoch) if config.steps_per_epoch else steps


def _check_data(spec: Spec, root: Path, create: bool) -> Path:
    """The dataset root of a spec: a synthetic kind is generated when missing (`create`); a root whose meta.json
    names another dataset is refused."""
    if not root.exists():
        if spec.dataset.startswith("synthetic:") and create:
            from vadlab.data.synthetic import synthesize

            synthesize(root, spec.dataset.partition(":")[2], seed=0)
        elif not spec.dataset.startswith("synthetic:"):
            raise DataError(f"{root}: no such dataset; give the {spec.dataset} root with --data ROOT (`vadlab data "
                            f"import` makes one from the official download)")
        return root
    meta_file = root / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    named = meta.get("dataset")
    wanted = "synthetic" if spec.dataset.startswith("synthetic:") else spec.dataset
    if named is not None and named != wanted and not (wanted == "synthetic" and "generator" in meta):
        raise DataError(f"{meta_file}: dataset {named!r}, but {spec.file.name} is a table on {spec.dataset!r}")
    return root


# --- estimates ------------------------------------------------------------------------------------------------
def step_seconds(method: str, preset: str) -> tuple[float, str] | None:
    """(measured seconds per training step, its source) of a method at a preset, or None when not measured: what
    the method registered (`register_method(step_seconds=...)`)."""
    from vadlab.registry import get_spec, list_methods

    return get_spec(method).step_seconds.get(preset) if method in list_methods() else None


def estimate(job: Job, preset: str) -> float | None:
    """Seconds of training left for a job (None: no measured step time, or no data to count steps)."""
    if job.status not in ("new", "resume"):
        return 0.0
    measured = step_seconds(job.row.method, preset)
    if measured is None or job.steps_per_epoch is None:
        return None
    return (job.epochs - job.epochs_done) * job.steps_per_epoch * measured[0]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe_plan(spec: Spec, jobs: list[Job], preset: str, devices: list[str] | None = None) -> str:
    """The dry-run listing: one line per run with its status and time estimate, then the totals."""
    lines = [f"{spec.name}: {spec.title}", f"  {spec.paper}, {spec.table} ({spec.section})",
             f"  {'row':14s} {'replicate':14s} {'status':12s} {'epochs':>8s} {'steps/epoch':>11s} {'estimate':>9s}"]
    total, unknown = 0.0, set()
    for job in jobs:
        if job.row.scored_from:
            what = f"{job.row.scored_from}'s run" + (f" with {_overrides(job.row.score_set)}" if job.row.score_set
                                                     else f", its {job.row.metric}")
            lines.append(f"  {job.row.id:14s} {job.replicate:14s} {job.status:12s} {what}")
            continue
        seconds = estimate(job, preset)
        if seconds is None:
            unknown.add(job.row.method)
        else:
            total += seconds
        lines.append(f"  {job.row.id:14s} {job.replicate:14s} {job.status:12s} "
                     f"{job.epochs_done:>3d}/{job.epochs:<4d} {job.steps_per_epoch or '?':>11} "
                     f"{'?' if seconds is None else _duration(seconds):>9s}")
    count = {s: sum(j.status == s for j in jobs if not j.row.scored_from) for s in ("new", "resume", "evaluate",
                                                                                     "finished")}
    rescored = [j for j in jobs if j.row.scored_from]
    read = sum(not j.row.score_set for j in rescored)
    lines.append(f"  trainings: {count['new']} new, {count['resume']} to resume, {count['evaluate']} to evaluate, "
                 f"{count['finished']} finished; re-evaluations: "
                 f"{sum(j.status == 're-evaluate' for j in rescored)} to do, "
                 f"{sum(j.status == 'finished' and bool(j.row.score_set) for j in rescored)} done"
                 + (f"; {read} read another metric of their source's evaluation" if read else ""))
    sources = sorted({f"{m} at {preset}: {step_seconds(m, preset)[0]} s per step ({step_seconds(m, preset)[1]})"
                      for m in {j.row.method for j in jobs} if step_seconds(m, preset)})
    workers = ", one run after the other" if not devices else f", to be shared by {len(devices)} workers"
    known = "" if not unknown else " of the measured methods"
    lines.append(f"  estimate: about {_duration(total)} of training{known}{workers}; scoring not included. Steps per "
                 "epoch = training clips / batch size on this data, times the measured seconds per step "
                 "(each method's registered step_seconds):")
    lines += [f"    {s}" for s in sources]
    if unknown:
        lines.append(f"  no measured step time for {', '.join(sorted(unknown))} at {preset}: not in the estimate")
    return "\n".join(lines)


def _overrides(overrides: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
