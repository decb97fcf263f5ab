"""Config dataclasses shared by every method, their declared valid values, and `--set key=value` overrides.

Each method defines a frozen dataclass subclassing `MethodConfig` (one comment per field) and three presets:
`smoke` (tests, seconds), `cpu` (minutes on 2 cores) and `paper` (the paper's numbers, each with its section).

Every field declares what is valid beside its comment: numbers and tuples of numbers with `Annotated[T, Range(..)]`
(on a tuple it holds for each element, and the tuple must not be empty), strings and small sets with `Literal[..]`,
switches with `bool`. A config checks itself when it is built (a preset, `dataclasses.replace`, `--set`): each field
against its declaration, `target_index` against `frames_in`, then the method's cross-field rules (`validate`). A bad
value raises ConfigError naming the field, the value and what is valid (the CLI exits 2). `check_fits_data` checks a
config against the videos it would train on.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Mapping, Sequence

from vadlab.errors import ConfigError, DataError


@dataclass(frozen=True)
class Range:
    """Valid numbers of a field: `min <= value <= max`; a bound left out (None) is open, `min_exclusive` and
    `max_exclusive` make a bound strict. `Range()` declares a number whose rule is a cross-field one."""

    min: float | None = None
    max: float | None = None
    min_exclusive: bool = field(default=False, kw_only=True)
    max_exclusive: bool = field(default=False, kw_only=True)

    def __contains__(self, x: float) -> bool:
        if self.min is not None and (x <= self.min if self.min_exclusive else x < self.min):
            return False
        return self.max is None or (x < self.max if self.max_exclusive else x <= self.max)

    def __str__(self) -> str:
        if self.min is not None and self.max is not None:
            left, right = "(" if self.min_exclusive else "[", ")" if self.max_exclusive else "]"
            return f"in {left}{self.min:g}, {self.max:g}{right}"
        if self.min is not None:
            return f"{'>' if self.min_exclusive else '>='} {self.min:g}"
        if self.max is not None:
            return f"{'<' if self.max_exclusive else '<='} {self.max:g}"
        return ""


@dataclass(frozen=True)
class FieldSpec:
    """One config field: its type (Annotated stripped) and its declared Range (None for bool and Literal fields)."""

    name: str
    type: Any
    range: Range | None

    @property
    def declared(self) -> bool:
        """True when the valid values are known: a Range, or a type with finitely many values (bool, Literal)."""
        return self.range is not None or _finite(self.type)

    def describe(self) -> str:
        """What is valid, in words: 'an integer >= 1', "one of 'paper', 'mean'", 'a non-empty list of ...'."""
        return _what(self.type, self.range or Range())

    def check(self, value: Any) -> None:
        """ConfigError `name=value: must be ...` unless `value` is valid for this field."""
        if not _fits(value, self.type, self.range or Range()):
            raise ConfigError(f"{self.name}={value!r}: must be {self.describe()}")


def _finite(typ: Any) -> bool:
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        return all(_finite(a) for a in typing.get_args(typ))
    return typ is bool or typ is type(None) or origin is Literal


def _what(typ: Any, rng: Range, plural: bool = False) -> str:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    bound = f" {rng}" if str(rng) else ""
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_what(a, rng, plural) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return "a non-empty list of " + _what(args[0], rng, plural=True)
        return f"{len(args)} " + _what(args[0], rng, plural=True)
    if typ is bool:
        return "true or false"
    if typ is type(None):
        return "none"
    if typ is int:
        return ("integers" if plural else "an integer") + bound
    if typ is float:
        return ("finite numbers" if plural else "a finite number") + bound
    return ("values" if plural else "a value") + f" of type {getattr(typ, '__name__', typ)}"


def _fits(value: Any, typ: Any, rng: Range) -> bool:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)  # strict: True is not 1
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a, rng) for a in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return len(value) > 0 and all(_fits(v, args[0], rng) for v in value)
        return len(value) == len(args) and all(_fits(v, a, rng) for v, a in zip(value, args))
    if typ is type(None):
        return value is None
    if typ is bool:
        return isinstance(value, bool)
    if typ is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value in rng
    if typ is float:
        return (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
                and value in rng)
    return isinstance(value, typ) if isinstance(typ, type) else True


@functools.cache
def field_specs(cls: type) -> dict[str, FieldSpec]:
    """Field name -> FieldSpec of a config dataclass (its declared type and Range)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = {}
    for f in dataclasses.fields(cls):
        typ, rng = hints[f.name], None
        if typing.get_origin(typ) is Annotated:
            typ, *meta = typing.get_args(typ)
            rng = next((m for m in meta if isinstance(m, Range)), None)
        out[f.name] = FieldSpec(f.name, typ, rng)
    return out


def undeclared_fields(cls_or_cfg) -> list[str]:
    """Fields of a config class without a declaration of their valid values (a number without a Range, a str
    without Literal): every field must have one."""
    cls = cls_or_cfg if isinstance(cls_or_cfg, type) else type(cls_or_cfg)
    return [name for name, spec in field_specs(cls).items() if not spec.declared]


def check_multiple(image_size: int | tuple[int, int], stride: int, what: str) -> None:
    """ConfigError unless every side of `image_size` is a multiple of an encoder's total `stride` (`what` names the
    encoder), with the nearest valid size."""
    sides = (image_size,) if isinstance(image_size, int) else tuple(image_size)
    if all(s % stride == 0 for s in sides):
        return
    nearest = tuple(max(stride, (s + stride // 2) // stride * stride) for s in sides)
    if isinstance(image_size, int):
        raise ConfigError(f"image_size={image_size}: {what} needs a multiple of {stride}; nearest valid {nearest[0]}")
    raise ConfigError(f"image_size={tuple(image_size)}: {what} needs each side a multiple of {stride}; "
                      f"nearest valid {nearest}")


# The `cpu` presets' steps per epoch (ours, issue 27; docs/architecture.md, "The `cpu` budget"): the budget is a
# number of steps, not of passes over the data, so it holds at any training set's size. 150 is above one epoch of
# ped2-mini (600 frames: 73-75 steps of 8 clips) and of the synthetic demo sets (134-138 steps), which train exactly as
# before; on the full Ped2 training set (2,550 frames: 311 steps) each epoch takes a fresh half of the clips, and the
# longest preset (MNAD-R: 20 epochs, 3,000 steps) stays inside 20 minutes on 2 cores.
CPU_STEPS_PER_EPOCH = 150


@dataclass(frozen=True)
class MethodConfig:
    # upper bounds (ours) keep a typo from taking the machine: 2048 px is over any benchmark's native frame (856x480),
    # 64 frames over any method's clip; what fits the memory is checked before training (`vadlab.guards`)
    image_size: Annotated[int | tuple[int, int], Range(1, 2048)] = 64  # frames resized to image_size square, or (H, W)
    channels: Literal[1, 3] = 1  # 1 = grayscale, 3 = RGB
    frames_in: Annotated[int, Range(1, 64)] = 1  # T input frames per clip
    predict: bool = False  # True: inputs are frames t-T..t-1 and the target is frame t; False: the target is an input
    # reconstruction: position of the target among the T inputs (-1: the last; 8 of 16: the 9th); -T..T-1
    target_index: Annotated[int, Range()] = -1
    batch_size: Annotated[int, Range(1, 4096)] = 8  # clips per optimisation step (per process under torchrun)
    epochs: Annotated[int, Range(1, 100_000)] = 8  # passes over the training clips
    # at most this many optimisation steps per epoch (per process), the first ones of the epoch's fresh shuffle, so
    # an epoch costs the same on 600 frames or 60,000 and a preset's budget holds at any data size (ours: the `cpu`
    # presets, issue 27); 0 = every clip once per epoch, as the papers train
    steps_per_epoch: Annotated[int, Range(0, 10_000_000)] = 0
    # initial learning rate (Adam); at most 1 (ours): Adam moves each weight by about lr a step, and weights live near 1
    lr: Annotated[float, Range(0, 1, min_exclusive=True)] = 2e-4
    cosine_schedule: bool = True  # cosine annealing of the lr over all epochs
    grad_clip: Annotated[float, Range(0)] = 0.0  # max gradient norm; 0 disables clipping
    num_workers: Annotated[int, Range(0, 256)] = 0  # DataLoader worker processes
    # fields added after checkpoints were written without them: the value that reproduces those checkpoints
    legacy_defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def from_saved(cls, saved: dict) -> dict:
        """The config fields of a checkpoint, with `legacy_defaults` filled in for fields it predates."""
        return {**{k: v for k, v in cls.legacy_defaults.items() if k not in saved}, **saved}

    def __post_init__(self):
        for name, spec in field_specs(type(self)).items():
            value = getattr(self, name)
            listed = isinstance(value, list) and _has_tuple(spec.type)  # e.g. from JSON: the same values as a tuple
            plain = _plain(tuple(value) if listed else value)
            if plain is not value:
                object.__setattr__(self, name, plain)
            spec.check(plain)
        from vadlab.data.clips import ClipSpec

        ClipSpec(self.frames_in, self.predict, self.target_index)  # checks target_index against frames_in
        self.validate()

    def validate(self) -> None:
        """A method's rules between fields (e.g. the frame size its encoder's stride needs), checked after every field
        fits its declaration; raise ConfigError naming the fields, the value and a value that would work."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _has_tuple(typ: Any) -> bool:
    return typing.get_origin(typ) is tuple or any(_has_tuple(a) for a in typing.get_args(typ))


def _plain(value: Any) -> Any:
    """Numpy integers and floats (a notebook's parameters) as Python int and float, also inside a tuple."""
    if isinstance(value, tuple):
        items = tuple(_plain(v) for v in value)
        return value if all(a is b for a, b in zip(items, value)) else items
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)):
        return float(value)
    return value


def check_fits_data(config: MethodConfig, videos: Sequence) -> None:
    """DataError when a clip (frames_in, +1 when predicting) is longer than the shortest of `videos` (the videos a
    method trains on), naming that video, its frame count and the largest frames_in that would work."""
    videos = list(videos)
    if not videos:
        return
    need = config.frames_in + int(config.predict)
    shortest = min(videos, key=len)
    n = len(shortest)
    if n >= need:
        return
    clip = f"frames_in={config.frames_in}" + (f" + 1 predicted = {need}" if config.predict else "")
    largest = n - int(config.predict)
    if largest < 1:
        hint = "no frames_in fits it (prediction needs at least 2 frames)"
    else:
        hint = f"the largest frames_in that would work is {largest}"
        if not config.predict and not -largest <= config.target_index < largest:
            hint += f" (with target_index in {-largest}..{largest - 1})"
    raise DataError(f"{shortest.split} video {shortest.name!r} has {n} frames, fewer than a clip of {clip} frames; "
                    f"{hint}")


def config_fields(cls_or_cfg) -> dict[str, Any]:
    """Field name -> resolved type of a config dataclass (Annotated stripped)."""
    cls = cls_or_cfg if isinstance(cls_or_cfg, type) else type(cls_or_cfg)
    return {name: spec.type for name, spec in field_specs(cls).items()}


_NONE_WORDS = {"none", "null"}


def _coerce(key: str, value: Any, typ: Any, what: str | None = None) -> Any:
    """A `--set` string parsed to the field type: bool, int, float, str, tuple[...], `X | None`, `Literal[...]`
    and unions (tried in order: `int | tuple[int, int]` reads "64" as 64 and "128,96" as (128, 96)). `what`
    describes the valid values in the error (default: the type)."""
    try:
        return _parse(value, typ)
    except ValueError as exc:
        raise ConfigError(f"--set {key}={value}: expected {what or _describe(typ)}"
                          f"{f' ({exc})' if str(exc) else ''}") from None


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
    fields = field_specs(type(cfg))
    unknown = [k for k in overrides if k not in fields]
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r} for {type(cfg).__name__}; "
                          f"valid keys: {', '.join(fields)}")
    parsed = {k: _coerce(k, v, fields[k].type, fields[k].describe()) for k, v in overrides.items()}
    return dataclasses.replace(cfg, **parsed)  # __post_init__ checks every value


def parse_set_args(pairs: list[str] | None) -> dict[str, str]:
    """`["epochs=3", "lr=1e-3"]` -> {"epochs": "3", "lr": "1e-3"}; a pair without `=` raises ConfigError."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected key=value")
        out[key.strip()] = value
    return out
