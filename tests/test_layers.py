"""The layers of the package (docs/architecture.md): a method file never imports the engine, and no import circle
runs through the models, the registry and the engine. Read from the source (every import statement, also those
inside functions), so an import hidden in a function body counts."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vadlab"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The package module a dotted import name lives in (`vadlab.models.dream.DREAM` -> `vadlab.models.dream`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Every vadlab module that `module` imports anywhere in its file (top level or in a function)."""
    path = MODULES[module]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(_owner(a.name) for a in node.names if a.name.split(".")[0] == "vadlab")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            if base.split(".")[0] == "vadlab":
                found.update(_owner(f"{base}.{a.name}") for a in node.names)
    found.discard(None)
    found.discard(module)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def _cycles() -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in GRAPH:
        if v not in index:
            visit(v)
    return out


def test_the_import_reader_sees_imports_inside_functions():
    # analysis.std imports the engine at the top, registry imports the models inside a function
    assert "vadlab.engine" in GRAPH["vadlab.analysis.std"]
    assert "vadlab.models" in GRAPH["vadlab.registry"]
    assert {"vadlab.models.dream", "vadlab.engine"} <= GRAPH["vadlab.analysis.dream"]


def test_no_model_module_imports_the_engine():
    models = sorted(m for m in MODULES if m == "vadlab.models" or m.startswith("vadlab.models."))
    assert {"vadlab.models.mnad", "vadlab.models.dream", "vadlab.models.maam", "vadlab.models.std"} <= set(models)
    offenders = {m: sorted(GRAPH[m] & {"vadlab.engine", "vadlab.registry"}) for m in models}
    assert {m: deps for m, deps in offenders.items() if deps} == {}


def test_models_register_through_the_low_layer():
    """`vadlab.registration` imports no vadlab module: a method file imports it without importing any method."""
    assert GRAPH["vadlab.registration"] == set()
    for name in ("mnad", "dream", "maam", "std"):
        assert "vadlab.registration" in GRAPH[f"vadlab.models.{name}"]


def test_no_import_circle_through_models_registry_or_engine():
    layered = {"vadlab.engine", "vadlab.registry", "vadlab.registration"}
    bad = [sorted(c) for c in _cycles() if c & layered or any(m.startswith("vadlab.models") for m in c)]
    assert bad == []
