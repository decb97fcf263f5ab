"""The README is a door and the docs are the house: the site builds with --strict, every relative link and anchor in
the README and the docs resolves, every registered method and every notebook has its place in the docs, and no file
outside the repository is cited anywhere in the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from vadlab import registry

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
MARKDOWN = [REPO / "README.md", *PAGES]

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
_ATTR_ID = re.compile(r"\{\s*#([\w-]+)\s*\}")


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code, where Markdown links live."""
    return _CODE.sub("", _FENCE.sub("", text))


def links(path: Path) -> list[str]:
    """Every link and image target written in a Markdown file (outside code)."""
    return _LINK.findall(_prose(path.read_text()))


def anchors(path: Path) -> set[str]:
    """The ids the headings of a Markdown file get: Python-Markdown's toc slugs (what mkdocs uses), after the inline
    markup is dropped, plus explicit `{#id}` attributes."""
    text = _FENCE.sub("", path.read_text())
    out = set()
    for _, title in _HEADING.findall(text):
        out.update(_ATTR_ID.findall(title))
        title = _ATTR_ID.sub("", title)
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link keeps its text
        title = title.replace("`", "").replace("*", "")
        out.add(slugify(title, "-"))
    return out


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target)) or target.startswith("//")


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in MARKDOWN:
        for target in links(page):
            if _is_external(target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            where = f"{page.relative_to(REPO)} -> {target}"
            if REPO not in dest.parents and dest != REPO:
                broken.append(f"{where}: outside the repository")
            elif not dest.exists():
                broken.append(f"{where}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{where}: no heading with id {anchor!r} in {dest.relative_to(REPO)}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_checker_catches_a_broken_link_and_a_broken_anchor(tmp_path):
    """The checker itself: a missing file and a missing anchor are found, a good link and one in code are not."""
    (tmp_path / "b.md").write_text("# Title\n## The `cpu` budget (2 cores)\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#the-cpu-budget-2-cores) [gone](c.md) [bad](b.md#nope) `[code](x.md)`\n"
                    "```\n[fenced](y.md)\n```\n![img](b.md)\n")
    assert links(page) == ["b.md#the-cpu-budget-2-cores", "c.md", "b.md#nope", "b.md"]
    assert anchors(tmp_path / "b.md") == {"title", "the-cpu-budget-2-cores"}


def _docs_text() -> str:
    return "\n".join(p.read_text() for p in PAGES)


def _builtin_methods() -> list[str]:
    """Every method the package registers (plugins, such as the tests' toy method, are not the package's)."""
    names = [n for n in registry.list_methods() if registry.get_spec(n).cls.__module__.startswith("vadlab.")]
    assert len(names) >= 6, names
    return names


def test_every_registered_method_has_its_page():
    index = (DOCS / "methods" / "index.md").read_text()
    method_pages = {p: p.read_text() for p in (DOCS / "methods").glob("*.md") if p.name != "index.md"}
    missing = []
    for name in _builtin_methods():
        if f"`{name}`" not in index:
            missing.append(f"{name}: not in docs/methods/index.md")
        owners = [p.name for p, text in method_pages.items() if f"`{name}`" in text.split("\n## ")[0]]
        if not owners:
            missing.append(f"{name}: no docs/methods/<page>.md names it in its opening section")
    assert not missing, "\n".join(missing)


def test_every_notebook_has_its_place_in_the_docs():
    text = _docs_text()
    notebooks = sorted(p.stem for p in (REPO / "notebooks" / "src").glob("*.py"))
    assert notebooks, "no notebook sources found"
    missing = [nb for nb in notebooks if f"`{nb}`" not in text]
    assert not missing, f"notebooks named on no docs page: {missing}"


# A path of one machine: the shared folder beside a checkout, an absolute workspace path, a design file that is not
# in the repository. Written split so that this file does not cite them itself.
OUTSIDE = [re.compile(p) for p in (r"\.\./" + "shared", "/" + r"work/", "DESIGN" + r"\.md")]
SCANNED = ["README.md", "docs", "vadlab", "notebooks", "benchmarks", "tools", "tests", "Makefile", "pyproject.toml",
           "mkdocs.yml", "environment.yml", ".ci"]
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".yml", ".yaml", ".ipynb", ".txt", ".cfg", ".json", ""}


def _scanned_files() -> list[Path]:
    files = []
    for entry in SCANNED:
        path = REPO / entry
        candidates = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        files.extend(p for p in candidates
                     if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts)
    return files


def test_no_file_outside_the_repository_is_cited():
    found = []
    for path in _scanned_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for pattern in OUTSIDE:
                if pattern.search(line):
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert not found, "files outside the repository cited (cite papers by authors, title, venue and DOI or arXiv " \
                      "id; give scripts their paths as arguments):\n" + "\n".join(found)


def test_the_readme_is_a_door():
    text = (REPO / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines"
    assert "to follow" not in "\n".join(lines[:5])
    for command in ("make demo", "make test"):
        assert command in text
    for page in ("docs/getting-started.md", "docs/methods/index.md", "docs/architecture.md"):
        assert f"({page}" in text, f"README does not link {page}"
    for name in _builtin_methods():
        assert f"`{name}`" in text, f"README's method list lacks {name}"
    assert not re.search(r"^#+ Measured", text, re.M), "dated measurement logs belong on the docs pages"


@pytest.mark.slow
def test_mkdocs_builds_strict(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    for page in ("index.html", "methods/mnad/index.html", "api/registry/index.html"):
        assert (site / page).is_file(), page
    for method, field in (("mnad", "memory_items"), ("dream", "abnormal_per_batch"), ("maam", "shrink_n"),
                          ("std", "kmeans_samples")):
        html = (site / "methods" / method / "index.html").read_text()
        assert "vadlab:presets" not in html and "vadlab:ablations" not in html, method
        assert f"<code>{field}</code>" in html, f"{method}: the preset table from the registry is missing"
    api = (site / "api" / "registry" / "index.html").read_text()
    assert "create_method" in api and "register_method" in api
