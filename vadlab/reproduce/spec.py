"""Reproduce specs: the TOML schema, `load_spec` and its checks (`Spec`, `Row`), the shipped specs (`list_specs`)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vadlab.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


SPEC_DIR = Path(__file__).resolve().parent.parent / "specs"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")  # a row id names its run folder


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
