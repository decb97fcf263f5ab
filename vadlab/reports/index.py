"""The HTML index of a reports folder (`write_index`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from vadlab.io import atomic_path

SMOKE_NOTE = ("Smoke preset: these numbers only check that the whole path runs (an epoch or two of small models on "
              "a few frames). They say nothing about the methods; numbers below the frame-difference baseline are "
              "expected here. The cpu preset (plain make demo) gives numbers to read.")


def smoke_banner(preset: str | None):
    """In a notebook: a banner (`SMOKE_NOTE`) above the numbers of a report run at the smoke preset; nothing for any
    other preset. Returns the Markdown shown, or None."""
    if preset != "smoke":
        return None
    from IPython.display import Markdown, display

    text = f"> **{SMOKE_NOTE.split(':')[0]}:**{SMOKE_NOTE.split(':', 1)[1]}"
    display(Markdown(text))
    return text


def _preset(folder: Path) -> str | None:
    try:
        return json.loads((folder / "provenance.json").read_text())["parameters"].get("preset")
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def _number(name: str, value) -> str:
    from vadlab.viz import number_text

    return number_text(name, value)


def _esc(text) -> str:
    import html

    return html.escape(str(text))


def write_index(root: str | os.PathLike = "reports") -> Path:
    """`root/index.html`: every report under `root` (a folder with `report.json`) with its status (a failure names
    its cell and error), its key numbers and its first figures, linking the HTML export and each figure."""
    root = Path(root)
    rows = []
    smoke = False
    for file in sorted(root.glob("*/report.json")):
        rec = json.loads(file.read_text())
        folder = file.parent.name
        status = ("<span class='ok'>ok</span>" if rec["status"] == "ok" else
                  f"<span class='failed'>failed</span> at cell {_esc(rec.get('cell'))}: <code>{_esc(rec.get('error'))}"
                  "</code>")
        numbers = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(_number(k, v))}</td></tr>" for k, v in
                          list(rec.get("key_numbers", {}).items())[:12])
        figures = "".join(f"<a href='{_esc(folder)}/figures/{_esc(f)}'><img src='{_esc(folder)}/figures/{_esc(f)}' "
                          f"alt='{_esc(f)}' title='{_esc(f)}'></a>" for f in rec.get("figures", [])[:4])
        preset = _preset(file.parent)
        smoke = smoke or preset == "smoke"
        tag = f"<br><span class='smoke'>{_esc(preset)} preset</span>" if preset else ""
        more = len(rec.get("figures", [])) - 4
        link = f"{folder}/{folder}.html" if (file.parent / f"{folder}.html").exists() else f"{folder}/{folder}.ipynb"
        rows.append(f"<tr><td><a href='{_esc(link)}'><b>{_esc(folder)}</b></a><br><small>{_esc(rec['notebook'])}"
                    f"<br>{_esc(rec.get('started', ''))}, {rec.get('seconds', 0):.0f} s</small>{tag}</td>"
                    f"<td>{status}</td>"
                    f"<td><table class='num'>{numbers}</table></td><td class='figs'>{figures}"
                    f"{f'<br><small>and {more} more in figures/</small>' if more > 0 else ''}</td></tr>")
    draft = " (at the smoke preset: a 100 dpi PNG only)" if smoke else ""
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>vadlab reports</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table.main {{ border-collapse: collapse; width: 100%; }}
table.main > tbody > tr > td, table.main th {{ border-bottom: 1px solid #ccc; padding: 8px; vertical-align: top; }}
table.num td {{ padding: 0 8px 0 0; font-size: 0.85em; }}
.ok {{ color: #029E73; font-weight: bold; }} .failed {{ color: #D55E00; font-weight: bold; }}
.figs img {{ max-width: 340px; max-height: 230px; width: auto; height: auto; margin: 0 6px 6px 0;
  border: 1px solid #ddd; vertical-align: top; }}
.banner {{ background: #FFF4D6; border-left: 5px solid #DE8F05; padding: 8px 12px; }}
.smoke {{ color: #8A5A00; font-size: 0.85em; }}
</style></head><body>
<h1>vadlab reports</h1>
{f"<p class='banner'><b>{_esc(SMOKE_NOTE.split(':')[0])}:</b>{_esc(SMOKE_NOTE.split(':', 1)[1])}</p>" if smoke else ""}
<p>{len(rows)} report(s) in <code>{_esc(root.resolve())}</code>, written {time.strftime("%Y-%m-%d %H:%M:%S")}.
Each folder holds the executed notebook, its HTML export, every figure as PNG (300 dpi) and PDF{draft}, metrics.json
and provenance.json.</p>
<table class="main"><thead><tr><th>report</th><th>status</th><th>key numbers</th><th>figures</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    with atomic_path(root / "index.html") as tmp:
        Path(tmp).write_text(page)
    return root / "index.html"
