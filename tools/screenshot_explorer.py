"""Screenshot the explorer in a running JupyterLab, and time slider steps there (run by hand; not part of the tests).

Starts JupyterLab on localhost (token off, in a temp folder), writes a notebook that opens
`vadlab.explore.Explorer` on RUN (and COMPARE beside it), runs it in the browser, moves the mouse over the frame (the
matching weights of the query under it update), scrubs the slider with the arrow key and measures each step from the
key press to the frame number in the status line (kernel callback, widget messages and redraw: what a user waits),
then saves a full-page screenshot.

Needs Playwright for Python (`pip install -e .[screenshots]`) and a system Chromium (Debian: `apt-get install
chromium`); Playwright's own browser download is not used:

    python tools/screenshot_explorer.py --run runs/demo/mnad_pred --compare runs/demo/mnad_recon \
        --out reports/explore/explorer.png
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(folder: Path, port: int) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1:`port`, token and password off, serving `folder`, app exposed for scripting."""
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(folder / ".runtime"), "JUPYTER_CONFIG_DIR": str(folder / ".cfg")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={folder}",
           "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=True", "--ServerApp.allow_root=True",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = open(folder / "lab.log", "w")  # noqa: SIM115  (closed with the process)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=1)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"JupyterLab did not start; see {folder / 'lab.log'}")


def write_notebook(path: Path, run: str, compare: str | None, data: str | None, frame: int | None) -> None:
    args = [repr(str(Path(run).resolve()))]
    if data:
        args.append(repr(str(Path(data).resolve())))
    if compare:
        args.append(f"compare={str(Path(compare).resolve())!r}")
    cells = [
        new_code_cell("from vadlab.explore import Explorer\n"
                      f"explorer = Explorer({', '.join(args)}, device='cpu')\nexplorer"),
        new_code_cell("import numpy as np\n"
                      "maps = explorer.maps(0, explorer.video.value)\n"
                      f"explorer.frame.value = {frame if frame is not None else 'int(np.nanargmax(maps.score))'}"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a run folder")
    parser.add_argument("--compare", help="a second run folder, laid beside the first")
    parser.add_argument("--data", help="dataset root (default: the run's)")
    parser.add_argument("--frame", type=int, help="frame to show (default: the most anomalous)")
    parser.add_argument("--steps", type=int, default=20, help="slider steps to time")
    parser.add_argument("--out", default="reports/explore/explorer.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vadlab-lab-") as tmp:
        folder = Path(tmp)
        write_notebook(folder / "explorer.ipynb", args.run, args.compare, args.data, args.frame)
        port = free_port()
        lab = start_lab(folder, port)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1300, "height": 300 * (2 if args.compare else 1) + 700})
                page.goto(f"http://127.0.0.1:{port}/lab/tree/explorer.ipynb", wait_until="domcontentloaded")
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                       "&& window.jupyterapp.shell.currentWidget.sessionContext "
                                       "&& window.jupyterapp.shell.currentWidget.sessionContext.session",
                                       timeout=120_000)
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.wait_for_selector(".js-plotly-plot", timeout=300_000)
                status = page.locator(".widget-html-content").last
                page.wait_for_function("document.querySelector('.widget-html-content') && "
                                       "document.querySelectorAll('.widget-html-content')[0].innerText"
                                       ".includes('maps computed')", timeout=300_000)
                page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
                no = page.get_by_role("button", name="No", exact=True)  # JupyterLab's "get news?" toast
                if no.count():
                    no.first.click()
                time.sleep(3)
                # time slider steps: arrow key on the slider handle -> the status line shows the new frame
                handle = page.locator(".widget-slider .noUi-handle").first
                handle.focus()
                start = int(page.evaluate("document.querySelector('.widget-slider .widget-readout').innerText"))
                times = []
                for i in range(1, args.steps + 1):
                    t0 = time.perf_counter()
                    page.keyboard.press("ArrowLeft" if start >= args.steps else "ArrowRight")
                    want = start - i if start >= args.steps else start + i
                    page.wait_for_function(f"document.querySelectorAll('.widget-html-content')[0].innerText"
                                           f".includes('frame {want} (')", timeout=30_000)
                    times.append((time.perf_counter() - t0) * 1000)
                # back to the chosen frame, then the mouse over the frame panel: the weights of that query
                for _ in range(args.steps):
                    page.keyboard.press("ArrowRight" if start >= args.steps else "ArrowLeft")
                page.wait_for_function(f"document.querySelectorAll('.widget-html-content')[0].innerText"
                                       f".includes('frame {start} (')", timeout=30_000)
                time.sleep(1.5)
                box = page.locator("img.vadlab-panel").first.bounding_box()  # the first run's frame
                page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.55)
                time.sleep(2.5)
                page.screenshot(path=str(out), full_page=True)
                print(status.inner_text())
                browser.close()
        finally:
            lab.terminate()
            lab.wait(timeout=30)
    summary = {"steps": len(times), "ms_median": statistics.median(times), "ms_max": max(times),
               "ms_mean": statistics.fmean(times), "screenshot": str(out)}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
