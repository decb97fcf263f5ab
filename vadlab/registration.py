"""The low layer of the method registry: `register_method` and `MethodSpec`, with each method's facts.

A method's facts travel with its registration: its colour in figures, its measured seconds per training step (time
estimates) and its paper's reported numbers. The shared modules (`vadlab.viz`, `vadlab.reproduce`,
`vadlab.reports`) read them from here, so a plugin gives all of them from its own file.

A method module (`vadlab/models/<method>.py`, or a plugin) registers its glue class here on import. This module
imports no method and nothing above the models, so a method file can register itself without an import circle; the
lookups that import the built-in methods and the plugins (`list_methods`, `get_spec`, `create_method`) are in
`vadlab.registry`, one layer above `vadlab.models`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

PRESETS = ("smoke", "cpu", "paper")

# the datasets a paper's reported frame AUCs are keyed by (`reported=`): full UCSD Ped2, CUHK Avenue, ShanghaiTech
REPORTED_DATASETS = ("ped2", "avenue", "shanghaitech")
_HEX = re.compile(r"#[0-9A-Fa-f]{6}")

# where the built-in methods' `step_seconds` come from: one plain `make demo` (every method at `cpu`) and one
# `make demo PRESET=smoke` from a fresh clone, nothing else running, epoch seconds over the steps of the epoch
DEMO_TIMES = "make demo from a fresh clone on 2026-12-07, synthetic default, 2 threads, 2 quiet cores: "


@dataclass(frozen=True)
class MethodSpec:
    """What a method registers: its glue class, config class and presets, and the facts the shared modules read.

    - `colour`: its one colour in every figure (`viz.method_colour`), "#RRGGBB"; None: the next free colour.
    - `step_seconds`: {preset: (measured seconds per training step, where the number comes from)}, for the time
      estimates of `vadlab reproduce --dry-run`; a preset without one is left out of the estimate.
    - `reported`: its paper's own frame AUCs, {"source": "authors, venue, table", "ped2": AUC, "avenue": AUC,
      "shanghaitech": AUC} (any subset of `REPORTED_DATASETS`), printed beside vadlab's numbers and always labelled
      as the paper's; None when there is no paper (your own method, the test plugin).
    """

    name: str
    cls: type  # the method's training glue class (takes a config)
    config_cls: type
    presets: dict  # preset name -> config instance
    description: str
    colour: str | None = None
    step_seconds: dict = field(default_factory=dict)  # preset -> (seconds per step, source)
    reported: dict | None = None


_REGISTRY: dict[str, MethodSpec] = {}


def _check_facts(name: str, presets: dict, colour, step_seconds, reported) -> None:
    if colour is not None and not (isinstance(colour, str) and _HEX.fullmatch(colour)):
        raise ValueError(f"method {name!r}: colour={colour!r}, expected '#RRGGBB'")
    for preset, entry in (step_seconds or {}).items():
        if preset not in presets:
            raise ValueError(f"method {name!r}: step_seconds for unknown preset {preset!r}")
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], (int, float)) and entry[0] > 0
                and isinstance(entry[1], str)):
            raise ValueError(f"method {name!r}: step_seconds[{preset!r}]={entry!r}, expected (seconds > 0, source)")
    if reported is not None:
        unknown = set(reported) - {"source", *REPORTED_DATASETS}
        if "source" not in reported or unknown:
            raise ValueError(f"method {name!r}: reported needs a 'source' and AUCs of {', '.join(REPORTED_DATASETS)}"
                             + (f"; unknown keys {sorted(unknown)}" if unknown else ""))
        bad = {d: v for d, v in reported.items() if d != "source" and not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"method {name!r}: reported AUCs {bad} outside [0, 1]")


def register_method(name: str, *, config_cls: type, presets: dict, description: str = "", colour: str | None = None,
                    step_seconds: dict | None = None, reported: dict | None = None) -> Callable[[type], type]:
    """Class decorator: register a method under `name` with its presets (`smoke`, `cpu`, `paper`) and its facts
    (`colour`, `step_seconds`, `reported`: see `MethodSpec`)."""
    missing = [p for p in PRESETS if p not in presets]
    if missing:
        raise ValueError(f"method {name!r} lacks presets {missing}")
    _check_facts(name, presets, colour, step_seconds, reported)

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"method {name!r} registered twice")
        cls.name = name
        summary = description or (cls.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = MethodSpec(name, cls, config_cls, dict(presets), summary, colour, dict(step_seconds or {}),
                                     dict(reported) if reported else None)
        return cls

    return deco


def ordered_presets(spec: MethodSpec) -> list[str]:
    """A method's preset names, smoke, cpu, paper first."""
    return sorted(spec.presets, key=lambda p: (PRESETS.index(p) if p in PRESETS else len(PRESETS), p))
