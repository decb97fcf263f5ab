"""Screenshot the explorer in a running JupyterLab, and time slider steps there (run by hand; not part of the tests).

Starts JupyterLab on localhost (token off, in a temp folder), writes a notebook that opens
`vadlab.explore.Explorer` on RUN (and COMPARE beside it), runs it in the browser, moves the mouse over the frame (the
matching weights of the query under it update), scrubs the slider with the arrow key and measures each step from the
key press to the frame number in the status line (kernel callback, widget messages and redraw: what a user waits),
then saves a full-page screenshot. `--trace` also records, per step, where its time went (`TRACE_JS`): the key
press, the slider's message to the kernel, the kernel's busy and idle (the dates of its own messages), every
message's arrival in the browser, the status line's change, the next paint and the browser's long tasks.

Needs Playwright for Python (`pip install -e .[screenshots]`) and a system Chromium (Debian: `apt-get install
chromium`); Playwright's own browser download is not used:

    python tools/screenshot_explorer.py --run runs/demo/mnad_pred --compare runs/demo/mnad_recon \
        --out reports/explore/explorer.png
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


# Installed in the page once the explorer is shown (--trace): every kernel message sent and received (the JupyterLab
# kernel connection's anyMessage, with the kernel's own send date), every websocket frame's arrival, key presses,
# each change of the status line and the next animation frame after it, and long tasks (main thread busy > 50 ms).
# Times are epoch milliseconds: the browser and the kernel share this machine's clock.
TRACE_JS = """
() => {
  const T = window.__vadlab = { events: [] };
  const now = () => performance.timeOrigin + performance.now();
  const push = (e) => T.events.push(e);
  document.addEventListener("keydown", (e) => push({ k: "key", t: now(), ev: performance.timeOrigin + e.timeStamp }),
                            true);
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  kernel.anyMessage.connect((_, a) => {
    const m = a.msg, c = m.content || {}, d = c.data || {};
    push({ k: a.direction, t: now(), type: m.header.msg_type, date: Date.parse(m.header.date),
           state: c.execution_state, method: d.method, keys: Object.keys(d.state || {}).join(","),
           bytes: (m.buffers || []).reduce((s, b) => s + (b.byteLength || (b.buffer ? b.buffer.byteLength : 0)), 0)
                  + JSON.stringify(c).length });
  });
  const status = document.querySelectorAll(".widget-html-content")[0];
  new MutationObserver(() => {
    push({ k: "status", t: now(), text: status.innerText.slice(0, 24) });
    requestAnimationFrame(() => { const t = now(); setTimeout(() => push({ k: "paint", t, after: now() }), 0); });
  }).observe(status, { childList: true, subtree: true, characterData: true });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) push({ k: "long", t: performance.timeOrigin + e.startTime, dur: e.duration });
  }).observe({ type: "longtask", buffered: false });
}
"""
WS_JS = """
(() => {
  const Native = window.WebSocket;
  window.__vadlabWs = [];
  window.WebSocket = function (...args) {
    const ws = new Native(...args);
    ws.addEventListener("message", (e) => window.__vadlabWs.push(
      [performance.timeOrigin + performance.now(), e.data.byteLength || e.data.length || 0]));
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
})();
"""


def breakdown(events: list[dict], ws: list[list[float]], steps: list[dict]) -> list[dict]:
    """Per step (from its key press to the next one's): where the time went, in ms from the key press."""
    rows = []
    keys = [e for e in events if e["k"] == "key"]
    for i, step in enumerate(steps):
        if i >= len(keys):
            break
        t0 = keys[i]["ev"]
        t1 = keys[i + 1]["ev"] if i + 1 < len(keys) else float("inf")
        win = [e for e in events if t0 <= e["t"] < t1]
        sent = next((e for e in win if e["k"] == "send" and e["type"] == "comm_msg"), None)
        busy = next((e for e in win if e["k"] == "recv" and e.get("state") == "busy"), None)
        idle = next((e for e in win if e["k"] == "recv" and e.get("state") == "idle"), None)
        status = next((e for e in win if e["k"] == "status" and f"frame {step['frame']} " in e["text"]), None)
        paint = next((e for e in win if e["k"] == "paint" and status and e["t"] >= status["t"]), None)
        comm = [e for e in win if e["k"] == "recv" and e["type"] == "comm_msg"]
        before_status = [e for e in comm if status and e["t"] <= status["t"]]
        frames = [w for w in ws if t0 <= w[0] < t1]

        def ms(t, t0=t0):
            return None if t is None else round(t - t0, 1)

        rows.append({
            "frame": step["frame"], "playwright_ms": round(step["ms"], 1),
            "key_handled": ms(keys[i]["t"]), "slider_sent": ms(sent and sent["t"]),
            "kernel_busy": ms(busy and busy["date"]), "kernel_idle": ms(idle and idle["date"]),
            "kernel_step_ms": step.get("kernel_ms"),
            "first_reply": ms(comm[0]["t"] if comm else None),
            "last_reply_before_status": ms(before_status[-1]["t"] if before_status else None),
            "status": ms(status and status["t"]), "paint": ms(paint and paint["after"]),
            "replies": len(comm), "reply_kb": round(sum(e["bytes"] for e in comm) / 1024, 1),
            "ws_frames": len(frames), "ws_kb": round(sum(w[1] for w in frames) / 1024, 1),
            "long_tasks_ms": round(sum(e["dur"] for e in win if e["k"] == "long"), 1),
            "replies_after_status": [e["keys"] for e in comm if status and e["t"] > status["t"]],
        })
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NODELAY_CONFIG = """
from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

_open = KernelWebsocketHandler.open


async def _open_nodelay(self, *args, **kwargs):
    self.set_nodelay(True)
    return await _open(self, *args, **kwargs)


KernelWebsocketHandler.open = _open_nodelay
"""


def start_lab(folder: Path, port: int, nodelay: bool = False) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1:`port`, token and password off, serving `folder`, app exposed for scripting;
    `nodelay`: the kernel websockets with TCP_NODELAY (a diagnosis: jupyter_server leaves Nagle's algorithm on)."""
    if nodelay:
        (folder / ".cfg").mkdir(parents=True, exist_ok=True)
        (folder / ".cfg" / "jupyter_server_config.py").write_text(NODELAY_CONFIG)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(folder / ".runtime"), "JUPYTER_CONFIG_DIR": str(folder / ".cfg")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={folder}",
           "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=True", "--ServerApp.allow_root=True",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = open(folder / "lab.log", "w")  # noqa: SIM115  (closed with the process)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    for _ in range(480):  # 4 minutes: a loaded machine
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=1)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("JupyterLab did not start:\n" + (folder / "lab.log").read_text()[-3000:])


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
    parser.add_argument("--nodelay", action="store_true",
                        help="JupyterLab's kernel websockets with TCP_NODELAY (a diagnosis of Nagle's delays)")
    parser.add_argument("--trace", action="store_true",
                        help="record where each step's time goes (OUT with .trace.json: every step's timeline)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vadlab-lab-") as tmp:
        folder = Path(tmp)
        write_notebook(folder / "explorer.ipynb", args.run, args.compare, args.data, args.frame)
        port = free_port()
        lab = start_lab(folder, port, args.nodelay)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1300, "height": 300 * (2 if args.compare else 1) + 700})
                if args.trace:
                    page.add_init_script(WS_JS)
                page.goto(f"http://127.0.0.1:{port}/lab/tree/explorer.ipynb", wait_until="domcontentloaded")
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                       "&& window.jupyterapp.shell.currentWidget.sessionContext "
                                       "&& window.jupyterapp.shell.currentWidget.sessionContext.session",
                                       timeout=120_000)
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.wait_for_selector(".js-plotly-plot, .vadlab-curves", timeout=300_000)
                status = page.locator(".widget-html-content").last
                page.wait_for_function("document.querySelector('.widget-html-content') && "
                                       "document.querySelectorAll('.widget-html-content')[0].innerText"
                                       ".includes('maps computed')", timeout=300_000)
                page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
                no = page.get_by_role("button", name="No", exact=True)  # JupyterLab's "get news?" toast
                if no.count():
                    no.first.click()
                time.sleep(3)
                if args.trace:
                    page.evaluate(TRACE_JS)
                # time slider steps: arrow key on the slider handle -> the status line shows the new frame
                handle = page.locator(".widget-slider .noUi-handle").first
                handle.focus()
                start = int(page.evaluate("document.querySelector('.widget-slider .widget-readout').innerText"))
                times, steps = [], []
                for i in range(1, args.steps + 1):
                    t0 = time.perf_counter()
                    page.keyboard.press("ArrowLeft" if start >= args.steps else "ArrowRight")
                    want = start - i if start >= args.steps else start + i
                    page.wait_for_function(f"document.querySelectorAll('.widget-html-content')[0].innerText"
                                           f".includes('frame {want} (')", timeout=30_000)
                    times.append((time.perf_counter() - t0) * 1000)
                    steps.append({"frame": want, "ms": times[-1]})
                    if args.trace:  # the kernel's own time of the step, from the status line
                        found = re.search(r"step ([0-9.]+) ms", page.evaluate(
                            "document.querySelectorAll('.widget-html-content')[0].innerText"))
                        steps[-1]["kernel_ms"] = float(found.group(1)) if found else None
                if args.trace:
                    time.sleep(1.0)
                    events = page.evaluate("window.__vadlab.events")
                    ws = page.evaluate("window.__vadlabWs || []")
                    trace = breakdown(events, ws, steps)
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
            try:
                lab.wait(timeout=30)
            except subprocess.TimeoutExpired:
                lab.kill()
    summary = {"steps": len(times), "ms_median": statistics.median(times), "ms_max": max(times),
               "ms_mean": statistics.fmean(times), "screenshot": str(out)}
    if args.trace:
        summary["trace_median_ms"] = {k: statistics.median(r[k] for r in trace if isinstance(r[k], (int, float)))
                                      for k in trace[0] if k not in ("frame", "replies_after_status")
                                      and any(isinstance(r[k], (int, float)) for r in trace)}
        out.with_suffix(".trace.json").write_text(json.dumps({"steps": trace, "events": events, "ws": ws}) + "\n")
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
