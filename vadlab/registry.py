"""One registry for every method: `register_method`, `create_method`, `list_methods` (timm style).

A method module registers its glue class with its Config class and presets (`vadlab.registration`, the low layer
that method files import); the engine, CLI, notebooks and tests look methods up here, one layer above
`vadlab.models`: the lookups import the built-in methods and the plugins. So a new method plugs in without touching
the pipeline. Methods outside the package
(your own, or a test's) load from `$VADLAB_PLUGINS`: module names or `.py` files, separated by commas.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from vadlab.config import apply_overrides
from vadlab.errors import ConfigError
from vadlab.registration import _REGISTRY, PRESETS, REPORTED_DATASETS, MethodSpec, ordered_presets, register_method

__all__ = ["PRESETS", "REPORTED_DATASETS", "MethodSpec", "register_method", "ordered_presets", "list_methods",
           "get_spec", "reported", "ablation_overrides", "get_config", "create_method", "catalogue", "check_name",
           "source_hash", "write_catalogue"]

# The built-in methods' names, presets, ablations and descriptions, so that `vadlab list` and the errors that come
# before any work (an unknown method or preset) answer without importing the methods (torch, scikit-learn: seconds).
# Written from the live registry by `python -m vadlab.registry`, with a hash of the files it was made from
# (`source_hash`): where they changed since, `catalogue` imports the methods instead (slow but right), so an edited
# method is never misreported; tests/test_registry.py checks the committed file matches.
CATALOGUE = Path(__file__).with_name("methods.json")
PACKAGE = Path(__file__).parent  # the package whose method files `source_hash` reads


def _ensure_loaded() -> None:
    import vadlab.models  # noqa: F401  (importing registers every built-in method)

    for entry in filter(None, (e.strip() for e in os.environ.get("VADLAB_PLUGINS", "").split(","))):
        _load_plugin(entry)


def _load_plugin(entry: str) -> None:
    """Import a plugin module once, by module name or by `.py` path (it registers its methods on import)."""
    if not entry.endswith(".py"):
        try:
            importlib.import_module(entry)
        except ImportError as exc:
            raise ConfigError(f"VADLAB_PLUGINS: cannot import {entry!r}: {exc}") from None
        return
    path = Path(entry).expanduser().resolve()
    module_name = f"vadlab_plugin_{path.stem}"
    if module_name in sys.modules:
        return
    if not path.is_file():
        raise ConfigError(f"VADLAB_PLUGINS: no such file {entry}")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise


def _entry(spec: MethodSpec) -> dict:
    return {"presets": ordered_presets(spec), "ablations": list(spec.cls.ablations), "description": spec.description}


def _plugins() -> list[str]:
    return [e for e in (e.strip() for e in os.environ.get("VADLAB_PLUGINS", "").split(",")) if e]


def source_hash(package: Path | None = None) -> str:
    """sha256 over the files a catalogue entry comes from: `models/*.py` and `registration.py` of the package, read
    as bytes, each with its path (names sorted). A cheap read (tens of kB); no import."""
    package = Path(package) if package is not None else PACKAGE
    digest = hashlib.sha256()
    for path in sorted([*(package / "models").glob("*.py"), package / "registration.py"]):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _stored_catalogue() -> dict[str, dict] | None:
    """The built-in methods as `methods.json` holds them, or None when it is missing, unreadable, or was written
    from other method files than the package's now (its `source_sha256` is not `source_hash()`)."""
    try:
        stored = json.loads(CATALOGUE.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("source_sha256") != source_hash():
        return None
    return stored.get("methods")


def catalogue() -> dict[str, dict]:
    """{name: {"presets", "ablations", "description"}} of every method, by name: the built-in ones from
    `methods.json` (no method is imported) while its hash matches the method files, else from the methods
    themselves (imported: seconds, but never a stale answer; `python -m vadlab.registry` rewrites the file); the
    plugins of `$VADLAB_PLUGINS` by importing them."""
    entries = _stored_catalogue()
    if entries is None:
        entries = builtin_catalogue()
    for entry in _plugins():
        _load_plugin(entry)
    entries.update((name, _entry(spec)) for name, spec in _REGISTRY.items())
    return dict(sorted(entries.items()))


def builtin_catalogue() -> dict[str, dict]:
    """What `methods.json` should hold: the built-in methods (`vadlab.models`) as the live registry has them."""
    import vadlab.models  # noqa: F401

    return {name: _entry(spec) for name, spec in sorted(_REGISTRY.items())
            if spec.cls.__module__.startswith("vadlab.models.")}


def write_catalogue() -> Path:
    """Rewrite `methods.json` from the live registry (after adding or changing a built-in method), with the hash of
    the method files it was made from."""
    text = json.dumps({"source_sha256": source_hash(), "methods": builtin_catalogue()}, indent=1) + "\n"
    CATALOGUE.write_text(text)
    return CATALOGUE


def check_name(name: str, preset: str | None = None) -> None:
    """Fail now, with `get_spec`'s and `get_config`'s messages, on an unknown method or preset, without importing
    the methods (`catalogue`)."""
    known = catalogue()
    if name not in known:
        raise ConfigError(f"unknown method {name!r}; valid methods: {', '.join(known) or '(none)'}")
    if preset is not None and preset not in known[name]["presets"]:
        raise ConfigError(f"unknown preset {preset!r} for {name}; valid presets: "
                          f"{', '.join(known[name]['presets'])}")


def list_methods() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_spec(name: str) -> MethodSpec:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r}; valid methods: {', '.join(sorted(_REGISTRY)) or '(none)'}")
    return _REGISTRY[name]


def reported(name: str) -> dict | None:
    """The paper's own frame AUCs of a method, as it registered them (`register_method(reported=...)`):
    {"source": ..., "ped2": AUC, ...}, or None for a method without them or a name that is no registered method."""
    if name not in list_methods():
        return None
    own = get_spec(name).reported
    return dict(own) if own else None


def ablation_overrides(name: str, ablations: Sequence[str] = ()) -> dict:
    """The config overrides of a method's named ablations (`Method.ablations`); an unknown name fails loudly."""
    declared = get_spec(name).cls.ablations
    out: dict = {}
    for ablation in ablations:
        if ablation not in declared:
            raise ConfigError(f"{name} has no ablation {ablation!r}; its ablations: {', '.join(declared) or '(none)'}")
        out.update(declared[ablation])
    return out


def get_config(name: str, preset: str = "cpu", *, ablations: Sequence[str] = (), **overrides):
    """The config of `name` at `preset` with its named `ablations` and then `overrides` applied (unknown keys fail
    loudly)."""
    spec = get_spec(name)
    if preset not in spec.presets:
        raise ConfigError(f"unknown preset {preset!r} for {name}; valid presets: {', '.join(ordered_presets(spec))}")
    return apply_overrides(spec.presets[preset], {**ablation_overrides(name, ablations), **overrides})


def create_method(name: str, preset: str = "cpu", *, ablations: Sequence[str] = (), **overrides):
    """Build a registered method at a preset, e.g. `create_method("mnad_pred", "smoke", epochs=1)` or
    `create_method("mnad_pred", "cpu", ablations=["no_memory"])`."""
    return get_spec(name).cls(get_config(name, preset, ablations=ablations, **overrides))


if __name__ == "__main__":
    print(f"wrote {write_catalogue()}")
