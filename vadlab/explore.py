"""The interactive explorer (ipywidgets and small anywidget views) and the per-video maps it and the error-map
figures share.

`video_maps(method, video)` runs a trained method once over a test video, in frame order as the evaluation does
(`begin_scoring`, `reset_test_state`, `score_batch`, so a test-time memory update happens as in `vadlab evaluate`),
and keeps what a frame needs: the target frame, the method's prediction or reconstruction (`inspect`), the squared
error, the method's own anomaly map ("_map" of `score_batch`, where it has one), the ground-truth mask, the fused
score (per-video min-max, the protocol's), and for every memory space (`memory_spaces`) the matching weights of every
query (or, for a space without weights, the query's distance to each item). A slider step then only indexes arrays.

`Explorer(run, data, compare=other_run)` shows, for a chosen test video and frame: the frame, the output, the error
map, the anomaly map and the matching weights of the query under the mouse, per run, in rows; below them the score
curve of each run with the ground truth shaded and a line at the frame; clicking the curve jumps to that frame; a
play button steps through the video. Each video's maps are computed once and cached (a few videos are kept).
The image panels, the weights and the score curves are small anywidget views (a PNG each, a few SVG bars, SVG
curves drawn once per video, where a step only moves the frame line). (With every panel a plotly heatmap, a step
recomputed and redrew the whole figure in the browser: about 350 ms of a person's wait for 10-18 ms of kernel time;
with the curves a plotly `FigureWidget`, moving its frame line took 25-40 ms of the browser's main thread and a round
trip of the figure's deltas to the kernel on every step, issue 26.) `Explorer.step_ms` holds the kernel's time of
every slider step (the callback, from the new value to the last widget update sent); the status line shows it as
kernel time. What a person waits is longer: the widget messages and the browser's redraw come on top
(`tools/screenshot_explorer.py` measures a step in the browser, key press to the status line, which the kernel sets
after every panel and the curves' frame line; `--trace` shows where the time goes).
"""

from __future__ import annotations

import io
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from vadlab.data.clips import load_masks
from vadlab.data.layout import Layout, as_layout
from vadlab.errors import ConfigError
from vadlab.eval.scores import fuse

MAX_SIDE = 192  # frames wider or taller than this are shown subsampled (a slider step stays a small message)
PANELS = ("frame", "output", "error", "map")  # the image panels of a run's row, left to right
COLOURS = {"frame": None, "output": None, "error": "Inferno", "map": "Inferno"}  # None: grey
PANEL_PX = 200  # width of an image panel on the page (pixels drawn as blocks when the frame is smaller)


@dataclass
class SpaceMaps:
    """One memory space over a video: per frame and query, the matching weights or the distances to the items."""

    values: np.ndarray  # (N, K, M) float16: matching probability (kind "probability") or distance (kind "distance")
    grid: tuple[int, int] | None  # (h, w) of the K queries over the frame, None when the queries have no place
    kind: str  # "probability" | "distance"


@dataclass
class VideoMaps:
    """What every frame of one test video needs, precomputed once (`video_maps`). NaN where a frame is not scored."""

    video: str
    method: str
    frames: np.ndarray  # (N, H, W) float32 in [0, 1]: the frame each clip scores, at the model's size (grey)
    output: np.ndarray  # (N, H, W) float32 in [0, 1]: prediction or reconstruction (NaN: unscored)
    error: np.ndarray  # (N, H, W) float32: squared error, mean over channels, intensities in [0, 1]
    anomaly_map: np.ndarray | None  # (N, H, W) float32: the method's "_map", None when it has none
    masks: np.ndarray | None  # (N, H, W) bool ground-truth masks at the model's size, None without masks
    score: np.ndarray  # (N,) float64 fused score, per-video min-max (NaN: unscored)
    labels: np.ndarray  # (N,) uint8
    spaces: dict[str, SpaceMaps] = field(default_factory=dict)
    seconds: float = 0.0  # time the precomputation took

    @property
    def scored(self) -> np.ndarray:
        return ~np.isnan(self.score)

    def extremes(self, k: int = 1, gap: int | None = None) -> tuple[list[int], list[int]]:
        """The `k` most and the `k` least anomalous scored frames (by the fused score), spread out so that a figure
        of them shows different moments: taken greedily by score, no two within `gap` frames of each other (default:
        a tenth of the video, at least 5; our choice) and, while the video has other ground-truth events to take
        them from, no two most anomalous frames from the same event. Where the video is too short for that, the
        closest ones fill in."""
        idx = np.flatnonzero(self.scored)
        order = idx[np.argsort(self.score[idx], kind="stable")]
        gap = max(5, len(self.score) // 10) if gap is None else gap
        labels = np.asarray(self.labels).astype(bool)
        events = np.cumsum(np.diff(labels.astype(int), prepend=0) == 1) * labels  # 0: normal, 1..: each event

        def spread(candidates, taken=()) -> list[int]:
            chosen: list[int] = []
            for rule in ("event and gap", "gap", "any"):
                for i in (int(c) for c in candidates):
                    if len(chosen) == k:
                        return chosen
                    if i in chosen or i in taken:
                        continue
                    if rule != "any" and any(abs(i - j) < gap for j in chosen):
                        continue
                    if rule == "event and gap" and events[i] and any(events[i] == events[j] for j in chosen):
                        continue
                    chosen.append(i)
            return chosen

        most = spread(order[::-1])
        return most, spread(order, taken=most)


def _grey01(x: torch.Tensor) -> np.ndarray:
    """(B, Ch, H, W) in [-1, 1] -> (B, H, W) float32 in [0, 1]."""
    return ((x.float().mean(1) + 1) / 2).clamp(0, 1).cpu().numpy()


@torch.no_grad()
def video_maps(method, video, *, batch_size: int = 16) -> VideoMaps:
    """Run a trained `method` over one test `video` (a `Video` of the layout) and keep every frame's maps."""
    t0 = time.perf_counter()
    device = next(method.model.parameters()).device
    method.model.eval()
    data = method.test_dataset([video])
    n = len(video)
    h, w = data.arrays[0].shape[1:3]
    frames = data.arrays[0].astype(np.float32).mean(-1) / 255.0  # (N, H, W): every frame, scored or not
    output = np.full((n, h, w), np.nan, np.float32)
    error = np.full((n, h, w), np.nan, np.float32)
    amap = None
    signals: dict[str, np.ndarray] = {}
    spaces: dict[str, SpaceMaps] = {}
    method.begin_scoring([video.name])
    method.reset_test_state()
    loader = DataLoader(data, batch_size=1 if method.sequential_test else batch_size, shuffle=False)
    for batch in loader:
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        idx = batch["index"].cpu().numpy()  # (B,) frame indices
        inspected = method.inspect(batch)  # before score_batch: the state the score of this clip sees
        for name, space in method.memory_spaces(batch).items():
            if space.weights is not None:
                values, kind = space.weights.float(), "probability"  # (B, K, M)
            else:
                items = space.items.float()[None].expand(len(space.queries), -1, -1)
                values, kind = torch.cdist(space.queries.float(), items), "distance"  # (B, K, M)
            if name not in spaces:
                k, m = values.shape[1:]
                spaces[name] = SpaceMaps(np.full((n, k, m), np.nan, np.float16), space.grid, kind)
            spaces[name].values[idx] = values.cpu().numpy().astype(np.float16)
        scores = method.score_batch(batch)
        target = _grey01(batch["target"])  # (B, H, W)
        if "output" in inspected:
            out = inspected["output"]  # (B, Ch, H, W)
            output[idx] = _grey01(out)
            error[idx] = (((out.float() - batch["target"].float()) / 2) ** 2).mean(1).cpu().numpy()
        frames[idx] = target
        for name, value in scores.items():
            if name == "_map":
                if amap is None:
                    amap = np.full((n, *value.shape[1:]), np.nan, np.float32)
                amap[idx] = value.float().cpu().numpy()
            else:
                signals.setdefault(name, np.full(n, np.nan))[idx] = value.float().cpu().numpy()
    score = fuse({k: {video.name: v} for k, v in signals.items()}, method.fusion_weights(), "video")[video.name]
    masks = load_masks(video, (h, w)) if video.masks is not None else None
    return VideoMaps(video=video.name, method=method.name, frames=frames, output=output, error=error,
                     anomaly_map=amap, masks=masks, score=score, labels=np.asarray(video.labels, np.uint8),
                     spaces=spaces, seconds=time.perf_counter() - t0)


def plot_video_error_maps(maps: VideoMaps, *, k: int = 2, path=None):
    """The error-map figure of a video (`viz.plot_error_maps`): its `k` most and `k` least anomalous frames, each
    with the frame, the output, the squared error, the method's anomaly map and the mask outline."""
    from vadlab import viz

    most, least = maps.extremes(k)
    rows = most + least
    titles = [f"frame {t}, score {maps.score[t]:.2f}\n{'most' if t in most else 'least'} anomalous"
              + (" (GT anomaly)" if maps.labels[t] else "") for t in rows]
    return viz.plot_error_maps(maps.frames[rows], maps.output[rows], maps.error[rows],
                               maps.masks[rows] if maps.masks is not None else None,
                               anomaly_maps=maps.anomaly_map[rows] if maps.anomaly_map is not None else None,
                               titles=titles, output_name="prediction / reconstruction", path=path)


def _load(run, device: str):
    """(label, method) of a run folder or an already built method."""
    from vadlab import engine

    if hasattr(run, "score_batch"):
        return run.name, run
    method = engine.load_run(run, device)
    return method.name, method


def _data_of(run) -> str | None:
    """The dataset a run was trained on (run.json); a relative path is looked up from here, then from the folders
    above the run (a notebook elsewhere opening a run made from the repository root)."""
    if isinstance(run, (str, os.PathLike)) and (Path(run) / "run.json").exists():
        import json

        data = Path(json.loads((Path(run) / "run.json").read_text())["data"])
        if data.is_absolute() or data.exists():
            return str(data)
        for parent in Path(run).resolve().parents:
            if (parent / data).is_dir():
                return str(parent / data)
        return str(data)
    return None


@lru_cache(maxsize=8)
def _palette(n: int) -> tuple[str, ...]:
    from vadlab.viz import palette

    return tuple(palette(n))


def _sub(a: np.ndarray | None, step: int) -> np.ndarray | None:
    return None if a is None else a[..., ::step, ::step]


@lru_cache(maxsize=4)
def _lut(colorscale: str) -> np.ndarray:
    """(256, 3) uint8: plotly's named colour scale sampled at 256 levels (what a heatmap of it would show)."""
    from plotly.colors import sample_colorscale, unlabel_rgb

    return np.array([unlabel_rgb(c) for c in sample_colorscale(colorscale, np.linspace(0, 1, 256))],
                    dtype=np.float64).round().astype(np.uint8)


def _levels(a: np.ndarray, step: int, scale: float) -> np.ndarray:
    """(h, w) uint8: a panel subsampled by `step`, divided by its colour `scale`, clipped to [0, 1] and quantised to
    256 levels (NaN, an unscored frame, as 0)."""
    v = np.nan_to_num(_sub(a, step).astype(np.float32) / np.float32(max(scale, 1e-12)), nan=0.0)
    return np.round(np.clip(v, 0.0, 1.0) * 255).astype(np.uint8)


def _png(a: np.ndarray, step: int, scale: float, colorscale: str | None = None) -> bytes:
    """What a panel is sent: the PNG of the panel at 256 levels of its colour scale (grey when `colorscale` is None,
    else that plotly colour scale), a few kB at 128x128, sent as a binary message that the browser shows as it is.
    (Heatmap traces sent their values as JSON numbers, and plotly.js recomputed and redrew the whole figure in the
    browser on every step: most of a step's time.)"""
    from PIL import Image

    levels = _levels(a, step, scale)
    buf = io.BytesIO()
    Image.fromarray(levels if colorscale is None else _lut(colorscale)[levels]).save(buf, format="PNG",
                                                                                     compress_level=1)
    return buf.getvalue()


def decode_panel(png: bytes) -> np.ndarray:
    """The pixels of a panel (`_png`): (h, w) uint8 grey or (h, w, 3) uint8 RGB."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)))


# The browser side of the explorer's panels (anywidget modules): an image panel that shows PNG bytes, outlines the
# query under the mouse and reports the mouse position, and a bar chart of one query's matching weights. A slider
# step swaps an <img> source and a few SVG bars, where a plotly figure would be recomputed and redrawn whole.
_PANEL_JS = """
function render({ model, el }) {
  const caption = document.createElement("div");
  caption.className = "vadlab-caption";
  const box = document.createElement("div");
  box.style.position = "relative";
  const img = document.createElement("img");
  img.className = "vadlab-panel";
  img.style.imageRendering = "pixelated";
  img.style.display = "block";
  const mark = document.createElement("div");
  mark.style.cssText = "position:absolute;border:2px solid #00E5FF;pointer-events:none;box-sizing:border-box";
  box.append(img, mark);
  el.append(caption, box);
  let url = null;
  const show = () => {
    const v = model.get("value");
    if (!v || !v.byteLength) return;
    const old = url;
    url = URL.createObjectURL(new Blob([v], { type: "image/png" }));
    img.src = url;
    if (old) URL.revokeObjectURL(old);
  };
  const size = () => { img.style.width = model.get("width") + "px"; };
  const title = () => { caption.textContent = model.get("title"); };
  const query = () => {
    const b = model.get("box");
    mark.style.display = b.length === 4 ? "block" : "none";
    if (b.length === 4) {
      mark.style.top = 100 * b[0] + "%"; mark.style.left = 100 * b[1] + "%";
      mark.style.height = 100 * (b[2] - b[0]) + "%"; mark.style.width = 100 * (b[3] - b[1]) + "%";
    }
  };
  let last = 0, timer = null, pending = null;
  const send = () => {
    timer = null; last = performance.now();
    model.set("hover", pending); model.save_changes();
  };
  img.addEventListener("mousemove", (e) => {
    const r = img.getBoundingClientRect();
    pending = [(e.clientY - r.top) / r.height, (e.clientX - r.left) / r.width];
    if (timer === null) timer = setTimeout(send, Math.max(0, 40 - (performance.now() - last)));
  });
  model.on("change:value", show); model.on("change:width", size); model.on("change:title", title);
  model.on("change:box", query);
  show(); size(); title(); query();
}
export default { render };
"""

_BARS_JS = """
function render({ model, el }) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 230, H = 200, L = 40, R = 6, T = 20, B = 30;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H);
  svg.style.font = "11px sans-serif";
  el.append(svg);
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  const draw = () => {
    svg.replaceChildren();
    const values = model.get("values"), colours = model.get("colours"), top = model.get("ymax") || 1;
    const pw = W - L - R, ph = H - T - B, n = Math.max(values.length, 1), bw = pw / n;
    add("text", { x: L, y: 13 }, model.get("title"));
    values.forEach((v, i) => {
      const h = Math.max(0, Math.min(1, v / top)) * ph;
      const bar = add("rect", { x: L + i * bw + 0.1 * bw, y: T + ph - h, width: Math.max(0.8 * bw, 1), height: h,
                                fill: colours[i % colours.length] || "#0173B2" });
      const tip = document.createElementNS(NS, "title");
      tip.textContent = "item " + i + ": " + Number(v).toFixed(3);
      bar.append(tip);
    });
    add("line", { x1: L, y1: T + ph, x2: L + pw, y2: T + ph, stroke: "#444" });
    add("line", { x1: L, y1: T, x2: L, y2: T + ph, stroke: "#444" });
    for (const f of [0, 0.5, 1]) {
      add("text", { x: L - 3, y: T + ph - f * ph + 4, "text-anchor": "end" }, (f * top).toPrecision(2));
    }
    add("text", { x: L + pw / 2, y: H - 6, "text-anchor": "middle" }, "memory item (" + values.length + ")");
    add("text", { x: 10, y: T + ph / 2, "text-anchor": "middle",
                  transform: "rotate(-90 10 " + (T + ph / 2) + ")" }, model.get("label"));
  };
  for (const k of ["values", "colours", "ymax", "label", "title"]) model.on("change:" + k, draw);
  draw();
}
export default { render };
"""

_CURVES_JS = """
function render({ model, el }) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.style.font = "11px sans-serif";
  svg.style.cursor = "crosshair";
  svg.classList.add("vadlab-curves");
  el.append(svg);
  const L = 50, R = 20, T = 30, B = 62;
  let W = 0, H = 0, n = 1, line = null, hover = null, readout = null;
  const add = (tag, attrs, parent, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    (parent || svg).append(node);
    return node;
  };
  const x = (i) => L + (i + 0.5) / n * (W - L - R);  // the x range is [-0.5, n - 0.5]
  const y = (v) => T + (1.05 - v) / 1.1 * (H - T - B);  // the y range is [-0.05, 1.05]
  const frameAt = (e) => {
    const r = svg.getBoundingClientRect();
    const i = Math.round((e.clientX - r.left - L) / (W - L - R) * n - 0.5);
    return i >= 0 && i < n ? i : null;
  };
  const draw = () => {
    W = model.get("width"); H = model.get("height");
    svg.setAttribute("width", W); svg.setAttribute("height", H);
    svg.replaceChildren();
    const curves = model.get("curves"), truth = model.get("truth");
    n = Math.max(truth.length, ...curves.map((c) => c.y.length), 1);
    const y0 = y(-0.05), y1 = y(1.05), ph = y0 - y1;
    add("text", { x: L, y: 14, "font-size": 12 }, undefined, model.get("title"));
    let s = null;  // the ground truth: a shade over every run of anomalous frames
    for (let i = 0; i <= truth.length; i++) {
      if (i < truth.length && truth[i]) { if (s === null) s = i; continue; }
      if (s !== null) {
        add("rect", { x: x(s - 0.5), y: y(1.05), width: x(i - 0.5) - x(s - 0.5), height: ph,
                      fill: model.get("truth_colour"), opacity: 0.55 });
        s = null;
      }
    }
    const step = Math.pow(10, Math.floor(Math.log10(Math.max(n / 6, 1))));
    const tick = [1, 2, 5, 10].map((f) => f * step).find((d) => n / d <= 8);
    for (let i = 0; i < n; i += tick) {
      add("line", { x1: x(i), x2: x(i), y1: y0, y2: y0 + 4, stroke: "#444" });
      add("text", { x: x(i), y: y0 + 16, "text-anchor": "middle" }, undefined, String(i));
    }
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      add("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eee" });
      add("text", { x: L - 5, y: y(v) + 4, "text-anchor": "end" }, undefined, v.toFixed(2));
    }
    add("rect", { x: L, y: y1, width: W - L - R, height: ph, fill: "none", stroke: "#444" });
    add("text", { x: L + (W - L - R) / 2, y: y0 + 32, "text-anchor": "middle" }, undefined,
        "frame (index in the video)");
    add("text", { x: 12, y: y1 + ph / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${y1 + ph / 2})` },
        undefined, "score (0-1)");
    for (const c of curves) {  // a polyline per scored stretch (an unscored frame is null)
      let pts = [];
      const flush = () => {
        if (pts.length) add("polyline", { points: pts.join(" "), fill: "none", stroke: c.colour, "stroke-width": 1.6 });
        pts = [];
      };
      c.y.forEach((v, i) => { if (v === null) flush(); else pts.push(x(i).toFixed(1) + "," + y(v).toFixed(1)); });
      flush();
    }
    let lx = L;  // the legend, under the axis
    const legend = [[model.get("truth_colour"), "ground truth anomaly", 8],
                    ...curves.map((c) => [c.colour, c.label, 2])];
    for (const [colour, label, h] of legend) {
      add("rect", { x: lx, y: H - 14 - h / 2, width: 18, height: h, fill: colour });
      add("text", { x: lx + 24, y: H - 10 }, undefined, label);
      lx += 40 + 6.5 * label.length;  // about 6.5 px a character at 11 px (the view may not be on the page yet)
    }
    line = add("line", { y1: y1, y2: y0, stroke: "black", "stroke-width": 1.5, "stroke-dasharray": "3,3" });
    hover = add("line", { y1: y1, y2: y0, stroke: "#888", "stroke-width": 1, visibility: "hidden" });
    readout = add("text", { x: W - R, y: 14, "text-anchor": "end" }, undefined, "");
    move();
  };
  const move = () => {
    const px = x(model.get("frame"));
    line.setAttribute("x1", px); line.setAttribute("x2", px);
  };
  svg.addEventListener("mousemove", (e) => {
    const i = frameAt(e);
    hover.setAttribute("visibility", i === null ? "hidden" : "visible");
    if (i === null) { readout.textContent = ""; return; }
    hover.setAttribute("x1", x(i)); hover.setAttribute("x2", x(i));
    readout.textContent = `frame ${i}: ` + model.get("curves").map(
      (c) => `${c.label} ${c.y[i] === null || c.y[i] === undefined ? "-" : c.y[i].toFixed(3)}`).join(", ")
      + " (click: show it)";
  });
  svg.addEventListener("mouseleave", () => { hover.setAttribute("visibility", "hidden"); readout.textContent = ""; });
  svg.addEventListener("click", (e) => { const i = frameAt(e); if (i !== null) model.send({ jump: i }); });
  for (const k of ["curves", "truth", "title", "width", "height"]) model.on("change:" + k, draw);
  model.on("change:frame", move);
  draw();
}
export default { render };
"""


@lru_cache(maxsize=1)
def _widget_classes():
    """(Panel, Bars, Curves): the anywidget classes of the explorer's panels (made on first use: anywidget and traitlets
    are imported only by an explorer)."""
    import anywidget
    import traitlets

    class Panel(anywidget.AnyWidget):
        """An image panel: `value` PNG bytes, `title` above it, `width` in px, `box` the query outline [y0, x0, y1,
        x1] as fractions of the image ([] for none); `hover` [y, x] is where the mouse is, set by the browser."""

        _esm = _PANEL_JS
        value = traitlets.Bytes(b"").tag(sync=True)
        title = traitlets.Unicode("").tag(sync=True)
        width = traitlets.Int(200).tag(sync=True)
        box = traitlets.List([]).tag(sync=True)
        hover = traitlets.List([]).tag(sync=True)

    class Bars(anywidget.AnyWidget):
        """A bar chart of one query's matching weights (or distances): `values`, `colours` per item, `ymax`."""

        _esm = _BARS_JS
        values = traitlets.List([]).tag(sync=True)
        colours = traitlets.List([]).tag(sync=True)
        ymax = traitlets.Float(1.0).tag(sync=True)
        label = traitlets.Unicode("matching probability").tag(sync=True)
        title = traitlets.Unicode("query under the mouse").tag(sync=True)

    class Curves(anywidget.AnyWidget):
        """The score curves of a video (SVG): `curves` [{"label", "colour", "y": per frame, None where unscored}],
        `truth` the ground-truth label per frame (shaded), `frame` the frame line. A click on the plot sends
        {"jump": frame} (`on_msg`); the mouse over it reads every curve's score at that frame."""

        _esm = _CURVES_JS
        curves = traitlets.List([]).tag(sync=True)
        truth = traitlets.List([]).tag(sync=True)
        frame = traitlets.Int(0).tag(sync=True)
        title = traitlets.Unicode("").tag(sync=True)
        truth_colour = traitlets.Unicode("#D9D9D9").tag(sync=True)
        width = traitlets.Int(1100).tag(sync=True)
        height = traitlets.Int(300).tag(sync=True)

    return Panel, Bars, Curves


class Explorer:
    """An explorer over one or two trained runs on one dataset (see the module docstring).

    `run` and `compare`: run folders (or methods from `engine.load_run`); `data`: the dataset (default: the first
    run's). `display(explorer)` or `explorer.widget` shows it; `explorer.frame.value = t` and
    `explorer.video.value = name` drive it from code (the tests do)."""

    def __init__(self, run, data=None, *, compare=None, device: str = "cpu", video: str | None = None,
                 cache_videos: int = 4, batch_size: int = 16):
        import ipywidgets as widgets

        data = data if data is not None else _data_of(run)
        if data is None:
            raise ConfigError("Explorer: give `data` (the dataset root or Layout) when `run` is not a run folder")
        self.layout: Layout = as_layout(data)
        self.runs = [_load(r, device) for r in ([run] + ([compare] if compare is not None else []))]
        if len(self.runs) == 2 and self.runs[0][0] == self.runs[1][0]:
            self.runs = [(f"{label} ({i + 1})", m) for i, (label, m) in enumerate(self.runs)]
        self.batch_size = batch_size
        self._cache: OrderedDict[tuple[int, str], VideoMaps] = OrderedDict()
        self._cache_size = cache_videos
        self.step_ms: list[float] = []  # time of every frame update, ms
        self.query: tuple[int, int] = (0, 0)  # (row, column) of the query under the mouse, as a fraction grid cell
        self._query_frac = (0.5, 0.5)  # the mouse position as a fraction of the frame (y, x)
        names = [v.name for v in self.layout.testing]
        first = video or max(self.layout.testing, key=lambda v: v.n_anomalous).name
        self.video = widgets.Dropdown(options=names, value=first, description="video")
        self.frame = widgets.IntSlider(value=0, min=0, max=1, description="frame", continuous_update=True,
                                       layout=widgets.Layout(width="520px"))
        self.play = widgets.Play(value=0, min=0, max=1, step=1, interval=150, description="play")
        self._play_link = widgets.jslink((self.play, "value"), (self.frame, "value"))  # in the browser: no kernel trip
        space_names = sorted({s for _, m in self.runs for s in self._space_names(m)})
        self.space = widgets.Dropdown(options=space_names or ["(no memory)"], description="memory",
                                      disabled=not space_names)
        self.status = widgets.HTML()
        Panel, Bars, Curves = _widget_classes()
        self.curves = self._build_curves(Curves)
        self.panels: list[dict[str, object]] = []  # per run: {"frame", "output", "error", "map": Panel}
        self.bars: list[object] = []  # per run: the Bars of the query under the mouse
        rows = []
        for label, _ in self.runs:
            titles = {"frame": f"{label}: frame", "output": "prediction / reconstruction",
                      "error": "squared error", "map": "anomaly map"}
            panels = {name: Panel(title=titles[name], width=PANEL_PX) for name in PANELS}
            for panel in panels.values():
                panel.observe(lambda change: self.hover_at(*change["new"]) if len(change["new"]) == 2 else None,
                              names="hover")
            self.panels.append(panels)
            self.bars.append(Bars())
            rows.append(widgets.HBox([*panels.values(), self.bars[-1]]))
        self.video.observe(lambda change: self.show_video(change["new"]), names="value")
        self.frame.observe(lambda change: self.show_frame(change["new"]), names="value")
        self.space.observe(lambda change: self.show_frame(self.frame.value), names="value")
        controls = widgets.HBox([self.video, self.play, self.frame, self.space])
        self.widget = widgets.VBox([controls, *rows, self.curves, self.status])
        self.show_video(first)

    # --- data ----------------------------------------------------------------------------------------------------
    def _space_names(self, method) -> list[str]:
        from vadlab.analysis import memory_space_names

        return memory_space_names(method, self.layout.testing[:1])

    def maps(self, run_index: int, video: str) -> VideoMaps:
        """The precomputed maps of one run on one video (computed on first use, then cached)."""
        key = (run_index, video)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        maps = video_maps(self.runs[run_index][1], self.layout.video(video), batch_size=self.batch_size)
        self._cache[key] = maps
        while len(self._cache) > self._cache_size * len(self.runs):
            self._cache.popitem(last=False)
        return maps

    # --- score curves --------------------------------------------------------------------------------------------
    def _build_curves(self, Curves):
        """The score curves of every run (an SVG view: the mouse reads the scores, a click jumps), drawn once per
        video; a slider step moves the frame line alone. (As a plotly `FigureWidget`, every step's line was a
        Plotly.update, 25-40 ms of the browser's main thread before the next paint, and a round trip of the figure's
        deltas back to the kernel: about half of a step's time in the browser, issue 26.)"""
        from vadlab.viz import GT_COLOUR

        curves = Curves(title="anomaly score (per-video min-max); dotted line: the frame shown; click the plot to "
                              "jump to a frame", truth_colour=GT_COLOUR)
        curves.on_msg(self._on_curve_msg)
        return curves

    def _on_curve_msg(self, widget, content, buffers) -> None:
        if isinstance(content, dict) and "jump" in content:
            self.frame.value = int(content["jump"])

    # --- updates -------------------------------------------------------------------------------------------------
    def show_video(self, name: str) -> None:
        """Switch to a test video: precompute (or take from the cache) every run's maps, redraw the curves."""
        t0 = time.perf_counter()
        maps = [self.maps(r, name) for r in range(len(self.runs))]
        n = len(maps[0].frames)
        from vadlab.viz import method_colour

        with self.curves.hold_sync():
            self.curves.truth = [int(v) for v in maps[0].labels]
            self.curves.curves = [{"label": label, "colour": method_colour(label),
                                   "y": [None if np.isnan(v) else round(float(v), 4) for v in m.score]}
                                  for (label, _), m in zip(self.runs, maps)]
        self._scales = []
        for m in maps:  # one colour scale per video and map, fixed while scrubbing
            scale = {}
            for panel, arr in (("error", m.error), ("map", m.anomaly_map)):
                finite = arr[np.isfinite(arr)] if arr is not None else np.zeros(0)
                scale[panel] = float(np.percentile(finite, 99.5)) if finite.size else 1.0
            self._scales.append(scale)
        seconds = sum(m.seconds for m in maps)
        self._video_note = f"video {name}: {n} frames, maps computed in {seconds:.1f} s " \
                           f"(curves drawn {time.perf_counter() - t0:.1f} s after the choice)"
        self.frame.max = self.play.max = n - 1
        start = int(np.flatnonzero(maps[0].scored)[0]) if maps[0].scored.any() else 0
        changed = self.frame.value != start
        self.frame.value = start  # triggers show_frame
        if not changed:
            self.show_frame(start)

    def hover_at(self, y_frac: float, x_frac: float) -> None:
        """The mouse is at (y, x) as fractions of the frame: show the matching weights of the query there."""
        self._query_frac = (min(max(y_frac, 0.0), 0.999), min(max(x_frac, 0.0), 0.999))
        self.show_frame(self.frame.value, weights_only=True)

    def _query_index(self, space: SpaceMaps) -> tuple[int, tuple[int, int] | None]:
        k = space.values.shape[1]
        grid = space.grid or ((int(round(k ** 0.5)),) * 2 if int(round(k ** 0.5)) ** 2 == k else None)
        if grid is None:  # queries without a place in the frame: the first
            return 0, None
        gy, gx = int(self._query_frac[0] * grid[0]), int(self._query_frac[1] * grid[1])
        return gy * grid[1] + gx, (gy, gx)

    def show_frame(self, t: int, *, weights_only: bool = False) -> None:
        """Show frame `t` of the current video in every panel (the slider's callback). The status line is set last,
        after every panel, bar chart and the frame line on the score curves was sent."""
        t0 = time.perf_counter()
        video = self.video.value
        maps = [self.maps(r, video) for r in range(len(self.runs))]
        t = int(min(max(t, 0), len(maps[0].frames) - 1))
        for r, m in enumerate(maps):
            h, w = m.frames.shape[1:]
            step = max(1, int(np.ceil(max(h, w) / MAX_SIDE)))
            if not weights_only:
                scale = {"frame": 1.0, "output": 1.0, **self._scales[r]}
                shown = {"frame": m.frames[t], "output": m.output[t], "error": m.error[t],
                         "map": m.anomaly_map[t] if m.anomaly_map is not None else np.zeros((1, 1))}
                for name, a in shown.items():
                    own = name != "map" or m.anomaly_map is not None  # else the 1x1 placeholder
                    self.panels[r][name].value = _png(a, step if own else 1, scale[name], COLOURS[name])
            self._show_weights(r, m, t)
        if not weights_only:
            self.curves.frame = t
        ms = (time.perf_counter() - t0) * 1000
        if not weights_only:
            self.step_ms.append(ms)
        labels = maps[0].labels
        scores = ", ".join(f"{label} {m.score[t]:.3f}" for (label, _), m in zip(self.runs, maps))
        self.status.value = (f"<b>frame {t}</b> ({'anomalous' if labels[t] else 'normal'} in the ground truth); "
                             f"score: {scores}; kernel time of this step {ms:.1f} ms (the browser's redraw adds to "
                             f"it)<br>{getattr(self, '_video_note', '')}")

    def _show_weights(self, r: int, m: VideoMaps, t: int) -> None:
        bars, frame = self.bars[r], self.panels[r]["frame"]
        # the chosen space, or this run's first when it has no space of that name (two methods side by side)
        space = m.spaces.get(self.space.value) or next(iter(m.spaces.values()), None)
        if space is None:
            bars.values, frame.box = [], []
            return
        k, cell = self._query_index(space)
        values = np.nan_to_num(space.values[t, k].astype(np.float32), nan=0.0)  # (M,)
        probability = space.kind == "probability"
        with bars.hold_sync():
            bars.values = values.tolist()
            bars.colours = list(_palette(len(values)))
            bars.ymax = 1.0 if probability else float(max(values.max(initial=0.0), 1e-12))
            bars.label = "matching probability" if probability else "distance to the item"
        if cell is None:  # queries without a place in the frame: no outline
            frame.box = []
        else:
            gh, gw = space.grid or (int(round(space.values.shape[1] ** 0.5)),) * 2
            frame.box = [cell[0] / gh, cell[1] / gw, (cell[0] + 1) / gh, (cell[1] + 1) / gw]

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def benchmark_steps(explorer: Explorer, steps: int | None = None) -> dict:
    """Time `steps` slider steps over the current video (each through the widget, as a user's drag sends them)
    after its maps are cached: {"steps", "ms_median", "ms_p90", "ms_max", "precompute_s", "frames"}."""
    maps = explorer.maps(0, explorer.video.value)
    n = len(maps.frames)
    before = len(explorer.step_ms)
    for _ in range(min(steps or n, n)):
        explorer.frame.value = (explorer.frame.value + 1) % n
    times = np.asarray(explorer.step_ms[before:])
    return {"steps": int(len(times)), "ms_median": float(np.median(times)), "ms_p90": float(np.percentile(times, 90)),
            "ms_max": float(times.max()), "precompute_s": float(sum(explorer.maps(r, explorer.video.value).seconds
                                                                    for r in range(len(explorer.runs)))),
            "frames": n}
