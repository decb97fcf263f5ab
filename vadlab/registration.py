"""The low layer of the method registry: `register_method` and `MethodSpec`.

A method module (`vadlab/models/<method>.py`, or a plugin) registers its glue class here on import. This module
imports no method and nothing above the models, so a method file can register itself without an import circle; the
lookups that import the built-in methods and the plugins (`list_methods`, `get_spec`, `create_method`) are in
`vadlab.registry`, one layer above `vadlab.models`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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
        summary = description or (cls.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = MethodSpec(name, cls, config_cls, dict(presets), summary)
        return cls

    return deco


def ordered_presets(spec: MethodSpec) -> list[str]:
    """A method's preset names, smoke, cpu, paper first."""
    return sorted(spec.presets, key=lambda p: (PRESETS.index(p) if p in PRESETS else len(PRESETS), p))
