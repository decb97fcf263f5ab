"""Generate notebooks/*.ipynb from their sources, notebooks/src/*.py (jupytext-style percent format).

The sources are real Python, linted with the package and checked by a fast test (tests/test_notebooks.py); the
committed `.ipynb` files carry no outputs and must be exactly what this script writes:

    python tools/make_notebooks.py           # rewrite every notebook from its source
    python tools/make_notebooks.py --check   # exit 1 naming each notebook that differs from its source

Format: a line `# %%` starts a code cell, `# %% [markdown]` a markdown cell (its lines start with `# `), and
`# %% tags=["parameters"]` the cell papermill overrides.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parent.parent
SOURCES = REPO / "notebooks" / "src"
NOTEBOOKS = REPO / "notebooks"


def _cell(header: str, lines: list[str]):
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    rest = header[len("# %%"):].strip()
    if rest.startswith("[markdown]"):
        text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines)
        return new_markdown_cell(text)
    metadata = {}
    if rest.startswith("tags="):
        metadata["tags"] = json.loads(rest[len("tags="):])
    return new_code_cell("\n".join(lines), metadata=metadata)


def parse(source: str) -> list:
    """The cells of a percent-format source; text before the first `# %%` (a module docstring) is dropped."""
    cells, header, lines = [], None, []
    for line in source.splitlines():
        if line.startswith("# %%"):
            if header is not None:
                cells.append(_cell(header, lines))
            header, lines = line, []
        elif header is not None:
            lines.append(line)
    if header is not None:
        cells.append(_cell(header, lines))
    return cells


def build(source_path: Path) -> nbformat.NotebookNode:
    nb = new_notebook(cells=parse(source_path.read_text()))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{source_path.stem[:12]}-{i:02d}"
    return nb


def render(source_path: Path) -> str:
    """The exact text of the notebook generated from `source_path`."""
    return nbformat.writes(build(source_path)) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for source in sorted(SOURCES.glob("*.py")):
        target = NOTEBOOKS / f"{source.stem}.ipynb"
        text = render(source)
        if check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
    for name in stale:
        print(f"{name}: differs from notebooks/src; run `python tools/make_notebooks.py`")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
