"""The interactive explorer (ipywidgets + plotly `FigureWidget`) and the per-video maps it and the error-map
figures share.

`video_maps(method, video)` runs a trained method once over a test video, in frame order as the evaluation does
(`begin_scoring`, `reset_test_state`, `score_batch`, so a test-time memory update happens as in `vadlab evaluate`),
and keeps what a frame needs: the target frame, the method's prediction or reconstruction (`inspect`), the squared
error, the method's own anomaly map ("_map" of `score_batch`, where it has one), the ground-truth mask, the fused
score (per-video min-max, the protocol's), and for every memory space (`memory_spaces`) the matching weights of every
query (or, for a space without weights, the query's distance to each item). A slider step then only indexes arrays.

`Explorer(run, data, compare=other_run)` shows, for a chosen test video and frame: the frame, the output, the error
map, the anomaly map and the matching weights of the query under the mouse, per run, in rows; below them the score
curve of each run with the ground truth shaded and a marker at the frame; clicking the curve jumps to that frame; a
play button steps through the video. Each video's maps are computed once and cached (a few videos are kept).
`Explorer.step_ms` holds the kernel's time of every slider step (the callback, from the new value to the updated
figure model); the status line shows it as kernel time. What a person waits is longer: the widget messages and the
browser's redraw come on top (`tools/screenshot_explorer.py` measures a step in the browser, key press to status).
"""

from __future__ import annotations

import base64
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


def _panel(a: np.ndarray, step: int, scale: float, colorscale: str | None = None) -> str:
    """What a panel is sent: a PNG data URI of the panel at 256 levels of its colour scale (grey when
    `colorscale` is None, else that plotly colour scale). A slider step sends four small PNGs (a few kB each at
    128x128) that the browser shows as they are, where a heatmap's values went as JSON numbers and plotly.js
    redrew (and PNG-encoded) every heatmap of the figure in the browser on every step."""
    from PIL import Image

    levels = _levels(a, step, scale)
    image = Image.fromarray(levels if colorscale is None else _lut(colorscale)[levels])
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def decode_panel(uri: str) -> np.ndarray:
    """The pixels of a panel's data URI (`_panel`): (h, w) uint8 grey or (h, w, 3) uint8 RGB."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


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
        self._shown_shape: dict[int, tuple[int, int]] = {}  # (h, w) of the panels shown, per run (hover -> query)
        self.query: tuple[int, int] = (0, 0)  # (row, column) of the query under the mouse, as a fraction grid cell
        self._query_frac = (0.5, 0.5)  # the mouse position as a fraction of the frame (y, x)
        names = [v.name for v in self.layout.testing]
        first = video or max(self.layout.testing, key=lambda v: v.n_anomalous).name
        self.video = widgets.Dropdown(options=names, value=first, description="video")
        self.frame = widgets.IntSlider(value=0, min=0, max=1, description="frame", continuous_update=True,
                                       layout=widgets.Layout(width="520px"))
        self.play = widgets.Play(value=0, min=0, max=1, step=1, interval=150, description="play")
        widgets.link((self.play, "value"), (self.frame, "value"))
        space_names = sorted({s for _, m in self.runs for s in self._space_names(m)})
        self.space = widgets.Dropdown(options=space_names or ["(no memory)"], description="memory",
                                      disabled=not space_names)
        self.status = widgets.HTML()
        self.figure = self._build_figure()
        self.video.observe(lambda change: self.show_video(change["new"]), names="value")
        self.frame.observe(lambda change: self.show_frame(change["new"]), names="value")
        self.space.observe(lambda change: self.show_frame(self.frame.value), names="value")
        controls = widgets.HBox([self.video, self.play, self.frame, self.space])
        self.widget = widgets.VBox([controls, self.figure, self.status])
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

    # --- figure --------------------------------------------------------------------------------------------------
    def _build_figure(self):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        from vadlab.viz import GT_COLOUR, method_colour

        n = len(self.runs)
        titles = []
        for label, _ in self.runs:
            titles += [f"{label}: frame", "prediction / reconstruction", "squared error", "anomaly map",
                       "query under the mouse"]
        titles.append("anomaly score (per-video min-max); click to jump to a frame")
        specs = [[{}, {}, {}, {}, {}] for _ in range(n)] + [[{"colspan": 5}, None, None, None, None]]
        fig = make_subplots(rows=n + 1, cols=5, specs=specs, subplot_titles=titles, horizontal_spacing=0.03,
                            vertical_spacing=0.1, row_heights=[1.0] * n + [0.8])
        self._traces: list[dict[str, int]] = []
        for r in range(n):
            idx = {}
            for c, name in enumerate(PANELS):
                fig.add_trace(go.Image(source=_panel(np.zeros((1, 1)), 1, 1.0), name=name,
                                       hovertemplate="x %{x}, y %{y}<extra>" + name + "</extra>"),
                              row=r + 1, col=c + 1)
                idx[name] = len(fig.data) - 1
                fig.update_yaxes(autorange="reversed", scaleanchor=f"x{(r * 5 + c + 1) if r or c else ''}",
                                 showticklabels=False, row=r + 1, col=c + 1)
                fig.update_xaxes(showticklabels=False, row=r + 1, col=c + 1)
            fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", name="query", showlegend=False, hoverinfo="skip",
                                     marker={"symbol": "square-open", "size": 12, "color": "#00E5FF",
                                             "line": {"width": 2}}), row=r + 1, col=1)
            idx["query"] = len(fig.data) - 1
            fig.add_trace(go.Bar(x=[0], y=[0], name="weights", showlegend=False,
                                 hovertemplate="item %{x}: %{y:.3f}<extra></extra>"), row=r + 1, col=5)
            idx["weights"] = len(fig.data) - 1
            fig.update_xaxes(title_text="memory item", title_font_size=10, row=r + 1, col=5)
            fig.update_yaxes(title_text="matching weight", title_font_size=10, title_standoff=2, row=r + 1, col=5)
            self._traces.append(idx)
        # the score curves, the ground truth and the frame marker
        fig.add_trace(go.Scatter(x=[0], y=[0], fill="tozeroy", mode="lines", line={"width": 0, "shape": "hvh"},
                                 fillcolor=GT_COLOUR, opacity=0.55, name="ground truth anomaly", hoverinfo="skip"),
                      row=n + 1, col=1)
        self._gt_trace = len(fig.data) - 1
        self._curve_traces = []
        for label, _ in self.runs:
            fig.add_trace(go.Scatter(x=[0], y=[0], mode="lines+markers", name=label,
                                     line={"color": method_colour(label), "width": 1.6}, marker={"size": 3},
                                     hovertemplate="frame %{x}: %{y:.3f}<extra>" + label + "</extra>"),
                          row=n + 1, col=1)
            self._curve_traces.append(len(fig.data) - 1)
        fig.add_trace(go.Scatter(x=[0] * n, y=[0] * n, mode="markers", name="this frame", hoverinfo="skip",
                                 marker={"size": 11, "color": "black", "symbol": "diamond"}), row=n + 1, col=1)
        self._marker_trace = len(fig.data) - 1
        fig.update_xaxes(title_text="frame (index in the video)", row=n + 1, col=1)
        fig.update_yaxes(title_text="score (0-1)", range=[-0.05, 1.05], row=n + 1, col=1)
        fig.update_layout(height=300 * n + 280, width=1100, margin={"l": 40, "r": 20, "t": 50, "b": 40},
                          legend={"orientation": "h", "y": -0.12}, hovermode="closest", font={"size": 11})
        widget = go.FigureWidget(fig)
        for r, idx in enumerate(self._traces):
            for name in ("frame", "error", "output", "map"):
                widget.data[idx[name]].on_hover(self._on_hover(r))
        for t in self._curve_traces + [self._gt_trace]:
            widget.data[t].on_click(self._on_curve_click)
        return widget

    def _on_hover(self, run_index: int):
        def callback(trace, points, state) -> None:
            if not points.xs:
                return
            h, w = self._shown_shape.get(run_index, (1, 1))
            self.hover_at((float(points.ys[0]) + 0.5) / max(h, 1), (float(points.xs[0]) + 0.5) / max(w, 1))

        return callback

    def _on_curve_click(self, trace, points, state) -> None:
        if points.xs:
            self.frame.value = int(round(float(points.xs[0])))

    # --- updates -------------------------------------------------------------------------------------------------
    def show_video(self, name: str) -> None:
        """Switch to a test video: precompute (or take from the cache) every run's maps, redraw the curves."""
        t0 = time.perf_counter()
        maps = [self.maps(r, name) for r in range(len(self.runs))]
        n = len(maps[0].frames)
        labels = maps[0].labels.astype(float)
        with self.figure.batch_update():
            gt = self.figure.data[self._gt_trace]
            gt.x, gt.y = np.arange(n), labels * 1.05
            for t, m in zip(self._curve_traces, maps):
                self.figure.data[t].x, self.figure.data[t].y = np.arange(n), np.nan_to_num(m.score, nan=np.nan)
            self.figure.layout[f"xaxis{len(self.runs) * 5 + 1}"].range = [-0.5, n - 0.5]
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
        """Show frame `t` of the current video in every panel (the slider's callback)."""
        t0 = time.perf_counter()
        video = self.video.value
        maps = [self.maps(r, video) for r in range(len(self.runs))]
        t = int(min(max(t, 0), len(maps[0].frames) - 1))
        with self.figure.batch_update():
            for r, (m, idx) in enumerate(zip(maps, self._traces)):
                h, w = m.frames.shape[1:]
                step = max(1, int(np.ceil(max(h, w) / MAX_SIDE)))
                if not weights_only:
                    d = self.figure.data
                    scale = {"frame": 1.0, "output": 1.0, **self._scales[r]}
                    panels = {"frame": m.frames[t], "output": m.output[t], "error": m.error[t],
                              "map": m.anomaly_map[t] if m.anomaly_map is not None else np.zeros((1, 1))}
                    for name, a in panels.items():
                        own = name != "map" or m.anomaly_map is not None  # else the 1x1 placeholder
                        d[idx[name]].source = _panel(a, step if own else 1, scale[name], COLOURS[name])
                    self._shown_shape[r] = tuple(_sub(m.frames[t], step).shape)
                self._show_weights(r, m, t, step)
            marker = self.figure.data[self._marker_trace]
            marker.x = [t] * len(maps)
            marker.y = [float(m.score[t]) if np.isfinite(m.score[t]) else 0.0 for m in maps]
        ms = (time.perf_counter() - t0) * 1000
        if not weights_only:
            self.step_ms.append(ms)
        labels = maps[0].labels
        scores = ", ".join(f"{label} {m.score[t]:.3f}" for (label, _), m in zip(self.runs, maps))
        self.status.value = (f"<b>frame {t}</b> ({'anomalous' if labels[t] else 'normal'} in the ground truth); "
                             f"score: {scores}; kernel time of this step {ms:.1f} ms (the browser's redraw adds to "
                             f"it)<br>{getattr(self, '_video_note', '')}")

    def _show_weights(self, r: int, m: VideoMaps, t: int, step: int) -> None:
        bars = self.figure.data[self._traces[r]["weights"]]
        query = self.figure.data[self._traces[r]["query"]]
        # the chosen space, or this run's first when it has no space of that name (two methods side by side)
        space = m.spaces.get(self.space.value) or next(iter(m.spaces.values()), None)
        if space is None:
            bars.update(x=[], y=[])
            query.update(x=[], y=[])
            return
        k, cell = self._query_index(space)
        values = space.values[t, k].astype(np.float32)  # (M,)
        colours = _palette(len(values))
        bars.update(x=np.arange(len(values)), y=np.nan_to_num(values, nan=0.0), marker={"color": colours})
        if cell is None:  # queries without a place in the frame: no marker
            query.update(x=[], y=[])
        else:
            h, w = m.frames.shape[1:]
            gh, gw = space.grid or (int(round(space.values.shape[1] ** 0.5)),) * 2
            query.update(x=[((cell[1] + 0.5) * w / gw - 0.5) / step], y=[((cell[0] + 0.5) * h / gh - 0.5) / step],
                         marker={"size": max(6, int(300 / gw))})
        axis = self.figure.layout[f"yaxis{(r * 5 + 5)}"]
        axis.title.text = "matching probability" if space.kind == "probability" else "distance to the item"
        if space.kind == "probability":
            axis.range = [0, 1]

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
