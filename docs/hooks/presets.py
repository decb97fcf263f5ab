"""mkdocs hook: a method page's switches, read from the registry when the site is built.

`<!-- vadlab:presets NAME -->` becomes a table of every config field of method NAME: its value at each preset, and the
comment the config class gives the field with the values it accepts. `<!-- vadlab:ablations NAME -->` becomes the
table of its named ablations (`--ablation`) and the config overrides each one sets. The tables are the code's, so they
cannot drift from it; an unknown method name fails the build.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import re
import textwrap
import types
import typing

os.environ.setdefault("MPLBACKEND", "Agg")

_MARK = re.compile(r"<!--\s*vadlab:(presets|ablations)\s+([A-Za-z0-9_]+)\s*-->")


def _field_comments(cls: type) -> dict[str, str]:
    """name -> the comment of each annotated field of `cls` and its bases: the comment at the end of its line, else
    the comment lines right above it."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass.__module__ == "builtins":
            continue
        try:
            lines, _ = inspect.getsourcelines(klass)
        except (OSError, TypeError):
            continue
        source = textwrap.dedent("".join(lines))
        src_lines = source.splitlines()
        body = ast.parse(source).body[0].body
        for node in body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            line = src_lines[node.end_lineno - 1]
            comment = ""
            if "  # " in line:
                comment = line.split("  # ", 1)[1].strip()
            else:
                above = []
                i = node.lineno - 2
                while i >= 0 and src_lines[i].strip().startswith("#"):
                    above.insert(0, src_lines[i].strip().lstrip("#").strip())
                    i -= 1
                comment = " ".join(above)
            out[node.target.id] = comment
    return out


def _text(value) -> str:
    """A value as `--set` would take it: floats to 6 significant digits, tuples as comma-separated lists."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, tuple):
        return ", ".join(_text(v) for v in value)
    return repr(value) if isinstance(value, str) else str(value)


def _cell(value) -> str:
    text = _text(value)
    return "`" + text.replace("|", "\\|") + "`"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _kind(typ) -> str:
    """A short name of what a field takes: int, float, bool, `'a'`/`'b'`, list of int, int or list of int."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is typing.Literal:
        return " / ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_kind(a) for a in args if a is not type(None)) + (
            " or None" if type(None) in args else "")
    if origin is tuple:
        return "list of " + _kind(args[0])
    return getattr(typ, "__name__", str(typ))


def _spec(name: str):
    from vadlab import registry

    return registry.get_spec(name)


def presets_table(name: str) -> str:
    from vadlab.config import field_specs
    from vadlab.registry import ordered_presets

    spec = _spec(name)
    presets = ordered_presets(spec)
    specs = field_specs(spec.config_cls)
    comments = _field_comments(spec.config_cls)
    # preset names may break after an underscore (paper_<wbr>shanghaitech), never inside a word
    head = "| field | " + " | ".join(p.replace("_", "_<wbr>") for p in presets) + " | what it is (valid values) |"
    rows = [head, "|" + "---|" * (len(presets) + 2)]
    for f in dataclasses.fields(spec.config_cls):
        values = [getattr(spec.presets[p], f.name) for p in presets]
        field_spec = specs.get(f.name)
        valid = ""
        if field_spec is not None:
            valid = _kind(field_spec.type)
            if field_spec.range is not None and str(field_spec.range):
                valid += f", {field_spec.range}"
        cells = [_cell(v) for v in values]
        comment = _escape(comments.get(f.name, ""))
        rows.append(f"| `{f.name}` | " + " | ".join(cells) + f" | {comment} ({_escape(valid)}) |")
    return "\n".join(rows)


def ablations_table(name: str) -> str:
    spec = _spec(name)
    declared = spec.cls.ablations
    if not declared:
        return f"`{name}` declares no ablations."
    rows = ["| `--ablation` | sets |", "|---|---|"]
    for ablation, overrides in declared.items():
        sets = ", ".join(f"`{k}={v}`" for k, v in overrides.items())
        rows.append(f"| `{ablation}` | {sets} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:
    def replace(match: re.Match) -> str:
        kind, name = match.groups()
        return presets_table(name) if kind == "presets" else ablations_table(name)

    return _MARK.sub(replace, markdown)
