"""Config dataclasses shared by every method, and `--set key=value` overrides.

Each method defines a frozen dataclass subclassing `MethodConfig` (one comment per field) and three presets:
`smoke` (tests, seconds), `cpu` (minutes on 2 cores) and `paper` (the paper's numbers, each with its section).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Mapping

from vadlab.errors import ConfigError


@dataclass(frozen=True)
class MethodConfig:
    image_size: int | tuple[int, int] = 64  # frames are resized to image_size x image_size, or to (H, W)
    channels: int = 1  # 1 = grayscale, 3 = RGB
    frames_in: int = 1  # T input frames per clip
    predict: bool = False  # True: inputs are frames t-T..t-1 and the target is frame t; False: the target is an input
    target_index: int = -1  # reconstruction: position of the target among the T inputs (-1: the last; 8 of 16: the 9th)
    batch_size: int = 8  # clips per optimisation step
    epochs: int = 8  # passes over the training clips
    lr: float = 2e-4  # initial learning rate (Adam)
    cosine_schedule: bool = True  # cosine annealing of the lr over all epochs
    grad_clip: float = 0.0  # max gradient norm; 0 disables clipping
    num_workers: int = 0  # DataLoader worker processes

    def __post_init__(self):
        from vadlab.data.clips import ClipSpec

        ClipSpec(self.frames_in, self.predict, self.target_index)  # checks target_index against frames_in now

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def config_fields(cls_or_cfg) -> dict[str, Any]:
    """Field name -> resolved type of a config dataclass."""
    cls = cls_or_cfg if isinstance(cls_or_cfg, type) else type(cls_or_cfg)
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


_NONE_WORDS = {"none", "null"}


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """A `--set` string parsed to the field type: bool, int, float, str, tuple[...], `X | None`, `Literal[...]`
    and unions (tried in order: `int | tuple[int, int]` reads "64" as 64 and "128,96" as (128, 96))."""
    try:
        return _parse(value, typ)
    except ValueError as exc:
        raise ConfigError(f"--set {key}={value}: expected {_describe(typ)}{f' ({exc})' if str(exc) else ''}") from None


def _describe(typ: Any) -> str:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if typ is type(None):
        return "none"
    if origin is tuple:
        return "a comma-separated list of " + _describe(args[0])
    return f"a value of type {getattr(typ, '__name__', typ)}"


def _parse(value: Any, typ: Any) -> Any:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is typing.Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and str(choice) == value.strip()):
                return choice
        raise ValueError("")
    if origin in (typing.Union, types.UnionType):
        if typ is not Any and not isinstance(value, str):
            for arg in args:  # a typed value (a preset, a notebook parameter) that already fits one member
                if arg is type(None) and value is None:
                    return None
                base = typing.get_origin(arg) or arg
                if arg is not type(None) and isinstance(base, type) and isinstance(value, base):
                    return _parse(value, arg)
        for arg in args:
            try:
                return _parse(value, arg)
            except ValueError:
                continue
        raise ValueError("")
    if typ is type(None):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
            return None
        raise ValueError("")
    if not isinstance(value, str) or typ is str:
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if origin is tuple and isinstance(value, list):
            return tuple(value)
        return value
    text = value.strip()
    if typ is bool:
        lowered = text.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError("")
    if typ is int:
        return int(text)
    if typ is float:
        return float(text)
    if origin is tuple:
        inner = args[0]
        parts = tuple(_parse(part.strip(), inner) for part in text.strip("()[] ").split(",") if part.strip())
        if len(args) > 1 and args[1] is not Ellipsis and len(parts) != len(args):
            raise ValueError(f"{len(args)} values")
        return parts
    return text


def apply_overrides(cfg, overrides: Mapping[str, Any] | None):
    """A copy of `cfg` with `overrides` applied; strings (from `--set key=value`) are parsed to the field type.
    An unknown key raises ConfigError naming it and the valid keys."""
    if not overrides:
        return cfg
    fields = config_fields(cfg)
    unknown = [k for k in overrides if k not in fields]
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r} for {type(cfg).__name__}; "
                          f"valid keys: {', '.join(fields)}")
    return dataclasses.replace(cfg, **{k: _coerce(k, v, fields[k]) for k, v in overrides.items()})


def parse_set_args(pairs: list[str] | None) -> dict[str, str]:
    """`["epochs=3", "lr=1e-3"]` -> {"epochs": "3", "lr": "1e-3"}; a pair without `=` raises ConfigError."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected key=value")
        out[key.strip()] = value
    return out
