"""`vadlab reproduce TABLE`: re-run a paper's table from a declarative spec shipped in `vadlab/specs/TABLE.toml`.

A spec (TOML, read with `tomllib`) names the paper, its table and section, a dataset kind (`ped2`, `avenue`,
`shanghaitech` or `synthetic:<preset>`; `--data ROOT` gives the path), an optional few-anomaly `[split]` (DREAM's
fold protocol, `vadlab.data.splits.kfold_split`, each fold a replicate beside the seeds), the seeds, the metric (a
dotted key of `metrics.json`, default `micro_auc`) and its rows. A row is either trained (`method`, optional
`ablation` and `set` of config overrides on top of the preset) or scored from another row (`scored_from = "ID"`
with `score_set` test-time overrides and/or its own `metric`): it re-scores that row's trained runs
(`engine.evaluate_run(..., overrides=...)`), never trains. Each row carries the paper's number (`paper`, in
`paper_unit` "percent" or "fraction") and the spec says on what the paper measured it (`paper_on`).

Runs live in `RUNS/<spec>/<row>/seed<k>` (`fold<f>-seed<k>` with a split). Each run folder holds `reproduce.json`:
the resolved key of the run (method, preset, ablation, overrides, the full config, data, split and fold, seed) and
its SHA-256. A finished run (its epochs done, `metrics.json` there, same hash) is reused, an unfinished one resumes
from its checkpoint (`engine.fit(..., resume=True)`), and a run whose hash differs is refused, naming the row and
what changed. Time estimates come from the measured seconds per training step each method registers
(`register_method(step_seconds=...)`) times the steps of the preset's epochs on the given data.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vadlab.errors import ConfigError, DataError, Interrupted, VadlabError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SPEC_DIR = Path(__file__).resolve().parent / "specs"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")  # a row id names its run folder
KEY_FORMAT = 1  # the layout of `reproduce.json`'s key
RECORD = "reproduce.json"

# dataset kind -> the default --data root (relative to the working directory); `synthetic:<preset>` ->
# data/synthetic-<preset>, generated on first use
DATA_DEFAULTS = {"ped2": "data/ped2-mini", "avenue": "data/avenue", "shanghaitech": "data/shanghaitech"}

_TOP = {  # key -> (type, required, what it is)
    "title": (str, True, "the table's title"),
    "paper": (str, True, "the paper's authors and title"),
    "table": (str, True, "the table, as the paper numbers it"),
    "section": (str, True, "the section that discusses it"),
    "dataset": (str, True, "a dataset kind"),
    "seeds": (list, True, "a non-empty list of distinct integers >= 0"),
    "paper_on": (str, True, "what the paper's numbers were measured on (dataset, scale)"),
    "rows": (list, True, "the rows ([[rows]])"),
    "metric": (str, False, "a dotted key of metrics.json"),
    "paper_unit": (str, False, "'percent' or 'fraction'"),
    "notes": (str, False, "notes printed under the table"),
    "split": (dict, False, "a few-anomaly split ([split])"),
}
_ROW = {
    "id": (str, True, "the row's id, unique in the spec"),
    "label": (str, True, "what the row is, in words"),
    "method": (str, False, "a registered method"),
    "ablation": (str, False, "one of the method's ablations"),
    "set": (dict, False, "config overrides"),
    "scored_from": (str, False, "the id of a trained row"),
    "score_set": (dict, False, "test-time config overrides"),
    "metric": (str, False, "a dotted key of metrics.json"),
    "paper": ((int, float), False, "the paper's number"),
}
_SPLIT = {
    "protocol": (str, True, "'kfold'"),
    "k": (int, True, "folds, >= 2"),
    "folds": (list, True, "the folds run (0-based)"),
    "unit": (str, False, "'segment' or 'video'"),
    "margin": (int, False, "frames removed around a moved segment"),
}


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    method: str  # a scored row: its source's method
    ablation: str | None = None
    set: dict = field(default_factory=dict)
    scored_from: str | None = None
    score_set: dict = field(default_factory=dict)
    metric: str = "micro_auc"
    paper: float | None = None  # in the spec's paper_unit


@dataclass(frozen=True)
class Spec:
    name: str
    file: Path
    title: str
    paper: str
    table: str
    section: str
    dataset: str
    seeds: tuple[int, ...]
    paper_on: str
    rows: tuple[Row, ...]
    metric: str = "micro_auc"
    paper_unit: str = "percent"
    notes: str = ""
    split: dict | None = None

    def row(self, row_id: str) -> Row:
        return next(r for r in self.rows if r.id == row_id)

    def paper_fraction(self, row: Row) -> float | None:
        """The row's paper number on the 0-1 scale of vadlab's AUCs."""
        if row.paper is None:
            return None
        return row.paper / 100.0 if self.paper_unit == "percent" else float(row.paper)


# --- specs ----------------------------------------------------------------------------------------------------
def list_specs() -> dict[str, str]:
    """{spec name: title} of every spec shipped in the package."""
    out = {}
    for file in sorted(SPEC_DIR.glob("*.toml")):
        with open(file, "rb") as f:
            out[file.stem] = tomllib.load(f).get("title", "")
    return out


def spec_file(table: str | os.PathLike) -> Path:
    """A shipped spec by name, or a .toml file by path."""
    path = Path(table)
    if path.suffix == ".toml":
        if not path.is_file():
            raise ConfigError(f"{path}: no such spec file")
        return path
    file = SPEC_DIR / f"{table}.toml"
    if not file.is_file():
        raise ConfigError(f"unknown table {str(table)!r}; valid tables: {', '.join(list_specs())} (or a .toml file)")
    return file


def _check_keys(obj: dict, allowed: dict, where: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(allowed)}")
    for key, (typ, required, what) in allowed.items():
        if key not in obj:
            if required:
                raise ConfigError(f"{where}: missing key {key!r} ({what})")
            continue
        value = obj[key]
        if not isinstance(value, typ) or isinstance(value, bool) and typ is not bool:
            raise ConfigError(f"{where}.{key} = {value!r}: must be {what}")


def load_spec(table: str | os.PathLike, preset: str = "cpu") -> Spec:
    """Read and validate a spec (`table`: a shipped name or a .toml path): every key, method, ablation, config key
    and value at `preset`, dataset kind, split and `scored_from` is checked; ConfigError names the file and key."""
    file = spec_file(table)
    try:
        with open(file, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc})") from None
    _check_keys(raw, _TOP, str(file))
    _check_dataset(raw["dataset"], f"{file}: dataset")
    seeds = raw["seeds"]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{file}: seeds = {seeds!r}: must be {_TOP['seeds'][2]}")
    unit = raw.get("paper_unit", "percent")
    if unit not in ("percent", "fraction"):
        raise ConfigError(f"{file}: paper_unit = {unit!r}: must be 'percent' or 'fraction'")
    metric = raw.get("metric", "micro_auc")
    split = _check_split(raw["split"], f"{file}: split") if "split" in raw else None
    if not raw["rows"]:
        raise ConfigError(f"{file}: rows: no rows")
    rows = _check_rows(raw["rows"], file, preset, metric, unit)
    return Spec(name=file.stem, file=file, title=raw["title"], paper=raw["paper"], table=raw["table"],
                section=raw["section"], dataset=raw["dataset"], seeds=tuple(seeds), paper_on=raw["paper_on"],
                rows=rows, metric=metric, paper_unit=unit, notes=raw.get("notes", ""), split=split)


def _check_dataset(kind: str, where: str) -> None:
    if kind.startswith("synthetic:"):
        from vadlab.data.synthetic import PRESETS

        if kind.partition(":")[2] not in PRESETS:
            raise ConfigError(f"{where} = {kind!r}: unknown synthetic preset; valid: "
                              + ", ".join(f"synthetic:{p}" for p in sorted(PRESETS)))
    elif kind not in DATA_DEFAULTS:
        raise ConfigError(f"{where} = {kind!r}: unknown dataset kind; valid: {', '.join(DATA_DEFAULTS)}, "
                          "synthetic:<preset>")


def _check_split(split: dict, where: str) -> dict:
    _check_keys(split, _SPLIT, where)
    if split["protocol"] != "kfold":
        raise ConfigError(f"{where}.protocol = {split['protocol']!r}: must be 'kfold'")
    k, folds = split["k"], split["folds"]
    if k < 2:
        raise ConfigError(f"{where}.k = {k}: must be >= 2")
    if not folds or not all(isinstance(f, int) and not isinstance(f, bool) and 0 <= f < k for f in folds) \
            or len(set(folds)) != len(folds):
        raise ConfigError(f"{where}.folds = {folds!r}: must be distinct folds in 0..{k - 1}")
    unit = split.get("unit", "segment")
    if unit not in ("segment", "video"):
        raise ConfigError(f"{where}.unit = {unit!r}: must be 'segment' or 'video'")
    margin = split.get("margin", 5)
    if margin < 0:
        raise ConfigError(f"{where}.margin = {margin}: must be >= 0")
    return {"protocol": "kfold", "k": k, "folds": list(folds), "unit": unit, "margin": margin}


def _check_rows(raw_rows: list, file: Path, preset: str, metric: str, unit: str) -> tuple[Row, ...]:
    from vadlab.config import apply_overrides
    from vadlab.registry import get_config, get_spec

    ids = [r.get("id") if isinstance(r, dict) else None for r in raw_rows]
    rows, configs = [], {}
    for i, raw in enumerate(raw_rows):
        where = f"{file}: rows[{i}]" + (f" ({raw['id']})" if isinstance(raw, dict) and "id" in raw else "")
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: must be a table ([[rows]])")
        _check_keys(raw, _ROW, where)
        if not _SAFE_ID.fullmatch(raw["id"]) or raw["id"] == "data":
            raise ConfigError(f"{where}.id = {raw['id']!r}: must be a folder name of letters, digits, '.', '_', '+', "
                              "'-' (and not 'data', where the splits go)")
        if ids.count(raw["id"]) > 1:
            raise ConfigError(f"{where}.id = {raw['id']!r}: used by more than one row")
        paper = raw.get("paper")
        if paper is not None and not (0 <= paper <= (100 if unit == "percent" else 1)):
            raise ConfigError(f"{where}.paper = {paper!r}: outside the {unit} scale")
        row_metric = raw.get("metric", metric)
        if "scored_from" in raw:
            source_id = raw["scored_from"]
            for key in ("method", "ablation", "set"):
                if key in raw:
                    raise ConfigError(f"{where}.{key}: a scored_from row trains nothing; it takes its source's "
                                      f"{key}")
            source = next((r for r in raw_rows if isinstance(r, dict) and r.get("id") == source_id), None)
            if source is None:
                raise ConfigError(f"{where}.scored_from = {source_id!r}: no such row; rows: {', '.join(map(str, ids))}")
            if "scored_from" in source or "method" not in source:
                raise ConfigError(f"{where}.scored_from = {source_id!r}: must name a trained row (one with a method)")
            score_set = raw.get("score_set", {})
            if not score_set and row_metric == source.get("metric", metric):
                raise ConfigError(f"{where}: score_set is empty and the metric is its source's: the same number as "
                                  f"row {source_id}")
            try:
                base = get_config(source["method"], preset, ablations=[source["ablation"]] if "ablation" in source
                                  else [], **source.get("set", {}))
                apply_overrides(base, score_set)
            except ConfigError as exc:
                raise ConfigError(f"{where}.score_set: {exc}") from None
            rows.append(Row(raw["id"], raw["label"], source["method"], scored_from=source_id, score_set=score_set,
                            metric=row_metric, paper=paper))
            continue
        if "score_set" in raw:
            raise ConfigError(f"{where}.score_set: only a scored_from row has one (put training overrides in set)")
        if "method" not in raw:
            raise ConfigError(f"{where}: missing key 'method' (or 'scored_from')")
        try:
            get_spec(raw["method"])
        except ConfigError as exc:
            raise ConfigError(f"{where}.method: {exc}") from None
        ablation = raw.get("ablation")
        try:
            config = get_config(raw["method"], preset, ablations=[ablation] if ablation else [])
        except ConfigError as exc:
            raise ConfigError(f"{where}.ablation: {exc}") from None
        try:
            config = apply_overrides(config, raw.get("set", {}))
        except ConfigError as exc:
            raise ConfigError(f"{where}.set: {exc}") from None
        resolved = json.dumps([raw["method"], asdict(config)], sort_keys=True, default=str)
        if resolved in configs:
            raise ConfigError(f"{where}: trains the same config as row {configs[resolved]}; make it "
                              f"scored_from = {configs[resolved]!r} with score_set, or remove it")
        configs[resolved] = raw["id"]
        rows.append(Row(raw["id"], raw["label"], raw["method"], ablation=ablation, set=dict(raw.get("set", {})),
                        metric=row_metric, paper=paper))
    return tuple(rows)


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
        steps = _steps_per_epoch(row.method, config, layout)
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


def _status(job: Job, spec: Spec) -> None:
    folder, record = job.folder, job.folder / RECORD
    if record.exists():
        saved = json.loads(record.read_text())
        if saved.get("hash") != _key_hash(job.key):
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


def _steps_per_epoch(method: str, config, layout) -> int | None:
    """About the training steps per epoch on `layout`, counted without reading a frame: clips of the normal
    training videos (frames less the clip span) / batch size; the labelled anomalies a method may add are not
    counted (a split is made at run time). None without data."""
    if layout is None:
        return None
    from vadlab.registry import get_spec

    clip = get_spec(method).cls(config).clip_spec()
    clips = sum(len(clip.scored_range(len(v))) for v in layout.training)  # one clip per scored frame, as ClipDataset
    return max(1, math.ceil(clips / config.batch_size))


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


# --- running --------------------------------------------------------------------------------------------------
def _payload(job: Job, preset: str) -> dict:
    return {"folder": str(job.folder), "data": str(job.data), "key": job.key, "hash": _key_hash(job.key),
            "method": job.row.method, "preset": preset, "ablation": job.row.ablation, "set": job.row.set,
            "seed": job.seed, "score_set": job.row.score_set if job.row.scored_from else None,
            "train": not job.row.scored_from}


def execute(payload: dict, *, device: str = "auto", threads: int | None = None, progress: bool = True) -> None:
    """Run one job (a `_payload`): train (resuming from a checkpoint) and evaluate, or re-score with overrides."""
    from vadlab import engine
    from vadlab.io import write_json
    from vadlab.registry import create_method

    folder, data = Path(payload["folder"]), payload["data"]
    if payload["train"]:
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / RECORD).exists():
            write_json(folder / RECORD, {"key": payload["key"], "hash": payload["hash"]})
        method = create_method(payload["method"], payload["preset"],
                               ablations=[payload["ablation"]] if payload["ablation"] else [], **payload["set"])
        history = folder / "history.json"
        done = len(json.loads(history.read_text())) if history.exists() else 0
        if not (folder / engine.CHECKPOINT).exists() or done < method.config.epochs:
            engine.fit(method, data, folder, seed=payload["seed"], device=device, resume=True, progress=progress,
                       threads=threads)
        if not (folder / "metrics.json").exists():
            engine.evaluate_run(folder, data, device=device, progress=progress, threads=threads)
    else:
        engine.evaluate_run(folder, data, device=device, progress=progress, overrides=payload["score_set"] or None,
                            threads=threads)


def _derive_splits(spec: Spec, root: Path, runs: Path) -> None:
    """Write the few-anomaly split of each fold (once; an existing one must come from the same root and args)."""
    if not spec.split:
        return
    from vadlab.data.splits import derived_meta, kfold_split

    s = spec.split
    for fold in s["folds"]:
        out = _split_root(spec, runs, fold)
        args = {"k": s["k"], "fold": fold, "unit": s["unit"], "margin": s["margin"]}
        if out.exists():
            meta = derived_meta(out)
            same = meta.get("derived_from") == str(root.resolve()) and all(meta["args"].get(k) == v
                                                                            for k, v in args.items())
            if not same:
                raise DataError(f"{out}: a split of {meta.get('derived_from')} with {meta.get('args')}, not of "
                                f"{root.resolve()} with {args}; remove it or give another --runs")
            continue
        kfold_split(root, out, **args)


def reproduce(table: str | os.PathLike, *, preset: str = "cpu", data: str | os.PathLike | None = None,
              runs: str | os.PathLike = "runs/reproduce", out: str | os.PathLike = "reports",
              seeds: list[int] | None = None, devices: list[str] | None = None, progress: bool = True,
              log=None) -> dict:
    """Run every missing run of a spec (see the module docstring), then write `out/<spec>/table.md`, `table.csv`,
    `table.png` and `provenance.json`. `devices`: CUDA device indices ("0", "1") or "cpu", one worker process each;
    None: one run at a time in this process. Returns {"spec", "jobs", "rows"} (rows as in `summarise`)."""
    from tqdm.auto import tqdm

    log = log or tqdm.write  # messages above the progress bars, not through them
    spec = load_spec(table, preset)
    root = Path(data) if data is not None else default_data(spec.dataset)
    _check_data(spec, root, create=True)
    jobs = plan(spec, preset=preset, data=root, runs=runs, seeds=seeds)  # refuses a changed spec before any work
    _derive_splits(spec, root, Path(runs))
    todo = [j for j in jobs if j.status not in ("finished", "with source")]
    for job in jobs:
        if job.status == "finished":
            log(f"{job.name}: finished, reused ({job.metrics_file})")
    bar = tqdm(total=len(todo), desc=f"reproduce {spec.name}", unit="run", disable=not progress or not todo)
    if devices:
        _run_pool(todo, devices, preset, bar, log)
    else:
        for job in todo:
            log(_start_message(job))
            execute(_payload(job, preset), device="auto", progress=progress)
            bar.update(1)
    bar.close()
    rows = summarise(spec, jobs)
    paths = write_table(spec, rows, Path(out) / spec.name, preset=preset, data=root, runs=Path(runs), jobs=jobs)
    log(f"wrote {', '.join(str(p) for p in paths)}")
    return {"spec": spec, "jobs": jobs, "rows": rows, "files": paths}


def _start_message(job: Job) -> str:
    if job.row.scored_from:
        return f"{job.name}: re-scoring {job.folder} with {_overrides(job.row.score_set) or job.row.metric}"
    if job.status == "resume":
        return f"{job.name}: resuming {job.folder} after epoch {job.epochs_done} of {job.epochs}"
    if job.status == "evaluate":
        return f"{job.name}: trained, evaluating {job.folder}"
    return f"{job.name}: training into {job.folder}"


def parse_devices(text: str) -> list[str]:
    """`--devices 0,1` (CUDA indices) or `cpu,cpu` (CPU workers sharing the cores) -> ["0", "1"]."""
    items = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in items if not (d.isdigit() or d == "cpu")]
    if not items or bad:
        raise ConfigError(f"--devices {text!r}: expected CUDA device indices or 'cpu', comma-separated (e.g. 0,1)")
    if len(set(d for d in items if d != "cpu")) != sum(d != "cpu" for d in items):
        raise ConfigError(f"--devices {text!r}: a CUDA device listed twice")
    return items


def next_job(pending: list, trained_here: set, done_folders: set, busy_folders: set):
    """The first pending job a free worker may take, or None: a scored row waits until its source run, trained in
    this command, is done, and no two workers ever hold the same run folder (two rows re-scored from one run would
    meet on its evaluation lock)."""
    for job in pending:
        if job.folder in busy_folders:
            continue
        if job.row.scored_from and job.folder in trained_here and job.folder not in done_folders:
            continue
        return job
    return None


def _run_pool(todo: list[Job], devices: list[str], preset: str, bar, log) -> None:
    """One worker subprocess per device (`python -m vadlab.reproduce JOB_JSON`): CUDA_VISIBLE_DEVICES=<index> and
    device cuda, or device cpu with the cores divided among the CPU workers. A scored row waits for its source run.
    SIGINT/SIGTERM are passed to the workers (each saves its checkpoint), then Interrupted is raised."""
    from vadlab import runs as run_utils
    from vadlab.threads import available_cores

    n_cpu = sum(d == "cpu" for d in devices)
    cpu_threads = max(1, available_cores() // max(n_cpu, 1))
    pending, done_folders = list(todo), set()
    trained_here = {(j.folder) for j in todo if not j.row.scored_from}
    free, busy = list(devices), {}
    failed = []
    with run_utils.Interrupts() as interrupts:
        while pending or busy:
            if interrupts.requested:
                for proc, _ in busy.values():
                    proc.send_signal(interrupts.signum)
                for proc, _ in busy.values():
                    proc.wait()
                raise Interrupted(f"{signal.Signals(interrupts.signum).name}: stopped {len(busy)} worker(s); their "
                                  "checkpoints are saved; run the same command again to resume", interrupts.signum)
            while free:
                job = next_job(pending, trained_here, done_folders, {j.folder for _, j in busy.values()})
                if job is None:
                    break
                pending.remove(job)
                device = free.pop(0)
                env = dict(os.environ)
                if device == "cpu":
                    env["VADLAB_THREADS"] = str(cpu_threads)
                    args = ["--device", "cpu"]
                else:
                    env["CUDA_VISIBLE_DEVICES"] = device
                    args = ["--device", "cuda"]
                log(f"{_start_message(job)} [worker on {'cpu' if device == 'cpu' else 'cuda:' + device}]")
                proc = subprocess.Popen([sys.executable, "-m", "vadlab.reproduce", json.dumps(_payload(job, preset)),
                                         *args], env=env)
                busy[device + f"#{id(proc)}"] = (proc, job)
            time.sleep(0.2)
            for slot, (proc, job) in list(busy.items()):
                if proc.poll() is None:
                    continue
                del busy[slot]
                free.append(slot.partition("#")[0])
                bar.update(1)
                if proc.returncode != 0:
                    failed.append(f"{job.name} (exit {proc.returncode})")
                    pending = [p for p in pending if not (p.row.scored_from and p.folder == job.folder)]
                elif not job.row.scored_from:
                    done_folders.add(job.folder)
    if failed:
        raise VadlabError(f"runs failed: {', '.join(failed)}; their messages are above; the others are kept")


# --- results --------------------------------------------------------------------------------------------------
def _lookup(report: dict, dotted: str, file: Path):
    value = report
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DataError(f"{file}: no metric {dotted!r} (no key {part!r})")
        value = value[part]
    return float(value)


def summarise(spec: Spec, jobs: list[Job]) -> list[dict]:
    """One dict per row: id, label, method, metric, ours {replicate: value}, mean, std (sample, over replicates),
    baseline (the frame-difference baseline on the same frames, mean) and paper (0-1 scale)."""
    import numpy as np

    out = []
    for row in spec.rows:
        values, baselines = {}, []
        for job in (j for j in jobs if j.row.id == row.id):
            file = job.metrics_file
            if not file.exists():
                continue
            report = json.loads(file.read_text())
            values[job.replicate] = _lookup(report, row.metric, file)
            base = report.get("baseline_frame_difference", {}).get("on_method_frames", {}).get("micro_auc")
            if base is not None:
                baselines.append(float(base))
        arr = np.array(list(values.values()), dtype=float)
        out.append({"id": row.id, "label": row.label, "method": row.method, "metric": row.metric,
                    "scored_from": row.scored_from, "ours": values,
                    "mean": float(arr.mean()) if arr.size else float("nan"),
                    "std": float(arr.std(ddof=1)) if arr.size > 1 else float("nan"),
                    "baseline": float(np.mean(baselines)) if baselines else float("nan"),
                    "paper": spec.paper_fraction(row), "paper_as_printed": row.paper})
    return out


def _fmt(x: float | None, digits: int = 3) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def write_table(spec: Spec, rows: list[dict], out: Path, *, preset: str, data: Path, runs: Path,
                jobs: list[Job]) -> list[Path]:
    """`table.md`, `table.csv`, `table.png` (ours with the seed spread beside the paper's) and `provenance.json`."""
    import csv
    import io

    from vadlab import viz
    from vadlab.io import atomic_path, write_json
    from vadlab.reports import data_provenance, provenance

    out.mkdir(parents=True, exist_ok=True)
    reps = sorted({j.replicate for j in jobs}, key=lambda r: (len(r), r))
    ours = f"ours ({preset}, {data.name}, mean ± std over {len(reps)})"
    paper = f"paper ({spec.paper_on})"
    lines = [f"# {spec.title}", "", f"{spec.paper}: {spec.table}, {spec.section}.", "",
             f"**Ours**: `vadlab reproduce {spec.name} --preset {preset}` on `{data}` ({spec.dataset}), replicates "
             f"{', '.join(reps)}; metric `{spec.metric}` unless the row says otherwise. **Paper**: the paper's own "
             f"number, measured on {spec.paper_on}: another dataset size and scale, not reproduced here. "
             "**Frame diff.**: the frame-difference baseline on the frames our runs scored.", "",
             f"| id | row | {ours} | per replicate | frame diff. | {paper} |", "|---|---|---|---|---|---|"]
    for r in rows:
        per = ", ".join(f"{k}: {v:.3f}" for k, v in r["ours"].items())
        mean = _fmt(r["mean"]) + (f" ± {_fmt(r['std'])}" if math.isfinite(r["std"]) else "")
        label = r["label"] + (f" (re-scored from {r['scored_from']})" if r["scored_from"] else "") + \
            (f"; metric `{r['metric']}`" if r["metric"] != spec.metric else "")
        printed = "" if r["paper_as_printed"] is None else (f"{r['paper_as_printed']} % ({r['paper']:.3f})"
                                                            if spec.paper_unit == "percent"
                                                            else f"{r['paper_as_printed']}")
        lines.append(f"| {r['id']} | {label} | {mean or 'not run'} | {per} | {_fmt(r['baseline'])} | {printed} |")
    if spec.notes:
        lines += ["", "Notes: " + " ".join(spec.notes.split())]
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "label", "method", "metric", "scored_from", "ours_mean", "ours_std", "replicates",
                     "ours_per_replicate", "frame_difference", "paper", "paper_unit", "paper_on", "preset", "data"])
    for r in rows:
        writer.writerow([r["id"], r["label"], r["method"], r["metric"], r["scored_from"] or "", _fmt(r["mean"], 4),
                         _fmt(r["std"], 4), len(r["ours"]), ";".join(f"{k}={v:.4f}" for k, v in r["ours"].items()),
                         _fmt(r["baseline"], 4), "" if r["paper_as_printed"] is None else r["paper_as_printed"],
                         spec.paper_unit, spec.paper_on, preset, str(data)])
    with atomic_path(out / "table.csv") as tmp:
        tmp.write_text(buf.getvalue())
    viz.plot_reproduction(rows, ours_label=f"ours ({preset}, {data.name})", paper_label=f"paper ({spec.paper_on})",
                          title=f"{spec.title}", path=out / "table.png")
    write_json(out / "provenance.json", provenance(
        spec=spec.name, spec_file=str(spec.file), spec_sha256=hashlib.sha256(spec.file.read_bytes()).hexdigest(),
        preset=preset, data=data_provenance(data), runs=[str(j.folder) for j in jobs if not j.row.scored_from],
        replicates=reps))
    return [out / "table.md", out / "table.csv", out / "table.png", out / "provenance.json"]


def _worker(argv: list[str]) -> int:
    """`python -m vadlab.reproduce JOB_JSON [--device D]`: one job of `_run_pool` (exit 128+signal when stopped)."""
    payload = json.loads(argv[0])
    device = argv[argv.index("--device") + 1] if "--device" in argv else "auto"
    try:
        execute(payload, device=device, progress=False)
    except Interrupted as exc:
        print(f"vadlab: {exc}", file=sys.stderr)
        return exc.exit_status
    except VadlabError as exc:
        print(f"vadlab: error: {exc}", file=sys.stderr)
        return exc.exit_status
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
