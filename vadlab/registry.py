"""One registry for every method: `register_method`, `create_method`, `list_methods` (timm style).

A method module registers its glue class with its Config class and presets; the engine, CLI, notebooks and tests
only go through this registry, so a new method plugs in without touching the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from vadlab.config import apply_overrides
from vadlab.errors import ConfigError

PRESETS = ("smoke", "cpu", "paper")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    cls: type  # the method's training glue class (takes a config)
    config_cls: type
    presets: dict  # preset name -> config instance
    description: str


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(name: str, *, config_cls: type, presets: dict, description: str = "") -> Callable[[type], type]:
    """Class decorator: register a method under `name` with its presets (`smoke`, `cpu`, `paper`)."""
    missing = [p for p in PRESETS if p not in presets]
    if missing:
        raise ValueError(f"method {name!r} lacks presets {missing}")

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"method {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = MethodSpec(name, cls, config_cls, dict(presets), description or (cls.__doc__ or "").strip().split("\n")[0])
        return cls

    return deco


def ordered_presets(spec: MethodSpec) -> list[str]:
    """A method's preset names, smoke, cpu, paper first."""
    return sorted(spec.presets, key=lambda p: (PRESETS.index(p) if p in PRESETS else len(PRESETS), p))


def _ensure_loaded() -> None:
    import vadlab.models  # noqa: F401  (importing registers every built-in method)


def list_methods() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_spec(name: str) -> MethodSpec:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r}; valid methods: {', '.join(sorted(_REGISTRY)) or '(none)'}")
    return _REGISTRY[name]


def get_config(name: str, preset: str = "cpu", **overrides):
    """The config of `name` at `preset` with overrides applied (unknown keys fail loudly)."""
    spec = get_spec(name)
    if preset not in spec.presets:
        raise ConfigError(f"unknown preset {preset!r} for {name}; valid presets: {', '.join(ordered_presets(spec))}")
    return apply_overrides(spec.presets[preset], overrides)


def create_method(name: str, preset: str = "cpu", **overrides):
    """Build a registered method at a preset, e.g. `create_method("mnad_pred", "smoke", epochs=1)`."""
    return get_spec(name).cls(get_config(name, preset, **overrides))
