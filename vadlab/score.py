"""`vadlab score RUN VIDEO`: a trained run applied to footage of one's own (a video file OpenCV reads, or a folder
of frames), without labels.

Frames are prepared as the run's data pipeline prepares them (`read_image`'s grey or RGB, `prepare_frame`'s resize,
`to_tensor`, clips as `ClipDataset` cuts them; MAAM-Net's optical flow as `vadlab.data.flow` computes it, one pair at
a time), scored by the method's own `score_batch`, and calibrated against the run's normal training frames
(`vadlab.eval.calibration`: each raw signal's quantile among them, fused with the method's weights). Written into
`--out`: `scores.csv` (one row per frame: raw signals, per-signal quantiles, calibrated score, its quantile, the
flag), `curve.png` (the calibrated score), `overlay.mp4` (each frame with the method's anomaly map over it and the
score curve beside it) and `summary.json`.

Two ways to read the video, with the same scores:
- whole (default): every frame is read first, clips are scored in batches (as `engine.infer` does), and the CSV also
  gets `score_minmax`, the evaluation protocol's per-video min-max fused score (it needs the whole video);
- `stream=True`: frame by frame as frames are read, for a long file (VIDEO is a path; a live camera is not
  accepted yet). Memory is bounded: a ring buffer of
  the clip's frames (`ClipWindow`, never more than `frames_in` + 1), the frames waiting for their clip, and the
  last `CURVE_FRAMES` scores for the curve; CSV rows and video frames are written as they come.

Test-time state: a method with a test-time update (MNAD's memory) starts from the trained state at the start of the
video and updates clip by clip in frame order, as in evaluation; a long stream therefore keeps adapting for as long
as it runs. Outputs are written to temp files and moved into place at the end; Ctrl-C (or SIGTERM) during a stream
stops after the current frame and keeps what was scored (a second Ctrl-C stops at once, keeping nothing).
"""

from __future__ import annotations

import csv
import os
import time
import warnings
from collections import deque
from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np
import torch

from vadlab import engine, guards, runs
from vadlab import threads as cpu_threads
from vadlab.data.clips import ClipSpec, prepare_frame, to_tensor
from vadlab.data.layout import IMAGE_EXTS, list_images, load_layout, read_image
from vadlab.errors import ConfigError, DataError, VadlabError, VadlabWarning
from vadlab.eval.calibration import CALIBRATION, Calibration
from vadlab.eval.scores import fuse
from vadlab.io import atomic_path, write_json
from vadlab.progress import tqdm

DISPLAY_HEIGHT = 240  # pixels: the overlay video's frame height (the width keeps the aspect ratio)
PANEL_WIDTH = 320  # pixels: the score panel beside each frame
CURVE_FRAMES = 300  # the panel shows the calibrated score of the last this many frames
MAP_ALPHA = 0.6  # opacity of the anomaly map where it reaches the training frames' 99.9th percentile
FOLDER_FPS = 25.0  # frame rate of the overlay video made from a folder of frames (a file keeps its own)


# --- reading ------------------------------------------------------------------------------------------------------
class VideoSource:
    """The frames of a video file (anything `cv2.VideoCapture` opens) or of a folder of frames, one at a time:
    (image, grey) uint8 at native size, `image` as `read_image` gives it ((H, W) grey or (H, W, 3) RGB), `grey` the
    (H, W) grey frame (for optical flow). Bad input raises DataError naming the path."""

    def __init__(self, path: str | Path, channels: int):
        self.path = Path(path).expanduser()
        self.channels = channels
        if not self.path.exists():
            raise DataError(f"{self.path}: no such video file or folder of frames")
        if self.path.is_dir():
            self.kind, self.files = "folder", list_images(self.path)  # empty folder, gaps: DataError
            self.count, self.fps = len(self.files), FOLDER_FPS
        else:
            if self.path.suffix.lower() in IMAGE_EXTS:
                raise DataError(f"{self.path}: one image, not a video; give a video file or a folder of frames")
            self.kind, self.files = "file", None
            capture = self._open()
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            self.count = count if count > 0 else None  # a container's count, may be approximate
            fps = capture.get(cv2.CAP_PROP_FPS)
            self.fps = fps if fps and np.isfinite(fps) and fps > 0 else FOLDER_FPS
            ok, _ = capture.read()
            capture.release()
            if not ok:
                raise DataError(f"{self.path}: OpenCV opens it but decodes no frame (empty or unsupported codec)")

    def _open(self):
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise DataError(f"{self.path}: OpenCV cannot read it as a video (not a video file, or an unsupported "
                            "format)")
        return capture

    def __iter__(self):
        first = None
        for i, (image, grey) in enumerate(self._frames()):
            if first is None:
                first = image.shape[:2]
            elif image.shape[:2] != first:
                where = self.files[i] if self.files else f"{self.path} frame {i}"
                raise DataError(f"{where}: size {image.shape[1]}x{image.shape[0]} differs from the video's first "
                                f"frame ({first[1]}x{first[0]})")
            yield image, grey

    def _frames(self):
        if self.files is not None:
            for path in self.files:
                image = read_image(path, self.channels)
                yield image, image if self.channels == 1 else read_image(path, 1)
            return
        capture = self._open()
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
                yield (grey if self.channels == 1 else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), grey
        finally:
            capture.release()


# --- clips --------------------------------------------------------------------------------------------------------
def stream_extras(method) -> dict[str, str]:
    """The per-frame extra inputs of `method` that `score` computes frame by frame: {"flow": flow method} for a
    method that reads optical flow (MAAM-Net with its motion branch, `flow_method` in its config), else {}.
    tests/test_score.py checks this against every registered method's `extra_inputs` on a real video."""
    cfg = method.config
    flow_method = getattr(cfg, "flow_method", None)
    if flow_method is None or getattr(cfg, "branches", "both") == "appearance":
        return {}
    if flow_method == "files":
        raise ConfigError(f"{method.name}: flow_method='files' reads .flo files made elsewhere, which new footage does "
                          "not have; score with a run trained on computed flow (dis, farneback)")
    return {"flow": flow_method}


class ClipWindow:
    """Ring buffer of the last frames of a video, giving the clip (an item as `ClipDataset` gives it) of each
    frame it can score as soon as the frames that clip needs have arrived.

    Holds at most `length` = frames_in (+ 1 for prediction, whose target follows the inputs) prepared frames, and
    with flow the last two grey frames and the flows of the frames in the window. `held` is the most frames it has
    held (what the bounded-memory test reads)."""

    def __init__(self, spec: ClipSpec, size, channels: int, flow_method: str | None = None):
        self.spec, self.size, self.channels, self.flow_method = spec, size, channels, flow_method
        self.length = spec.frames_in + (1 if spec.predict else 0)
        self.frames: deque = deque(maxlen=self.length)  # prepared uint8 (h, w, C)
        self.greys: deque = deque(maxlen=2)  # native grey uint8 (H, W), for the flow of the previous frame
        self.flows: dict[int, np.ndarray] = {}  # frame index -> flow (2, h, w) of that frame to the next
        self.count = 0  # frames pushed
        self.held = 0
        self._dis = None
        if flow_method == "dis":
            from vadlab.data.flow import _dis

            self._dis = _dis()

    def push(self, image: np.ndarray, grey: np.ndarray | None = None) -> dict | None:
        """Add the next native frame; returns the clip that scores a frame, or None (not enough frames yet)."""
        self.frames.append(prepare_frame(image, self.size, self.channels))
        index, self.count = self.count, self.count + 1
        if self.flow_method is not None:
            from vadlab.data.flow import flow_at_size

            self.greys.append(grey)
            if len(self.greys) == 2:  # the flow of the previous frame to this one
                self.flows[index - 1] = flow_at_size(self.greys[0], self.greys[1], self.size, self.flow_method,
                                                     _dis_obj=self._dis)
                self.flows.pop(index - 1 - self.length, None)
        self.held = max(self.held, len(self.frames))
        if len(self.frames) < self.length:
            return None
        start = self.count - self.length  # the window's first frame = the clip's first input frame
        t = start + (self.spec.frames_in if self.spec.predict else self.spec.first_scored)
        window = np.stack(self.frames)  # (length, h, w, C)
        item = {"input": to_tensor(window[:self.spec.frames_in]),  # (T, C, h, w), as ClipDataset
                "target": to_tensor(window[t - start]),  # (C, h, w)
                "label": 0, "video": 0, "index": t}
        if self.flow_method is not None:
            if t not in self.flows:
                raise ConfigError(f"frame {t}: its flow needs the next frame, which this clip does not wait for")
            item["flow"] = torch.as_tensor(self.flows[t])  # (2, h, w)
        return item


@torch.no_grad()
def _score_items(method, items: list[dict], device) -> tuple[list[int], dict[str, np.ndarray], np.ndarray | None]:
    """Score a batch of clips as `engine.infer` does: frame indices, {signal: (B,)}, map (B, h, w) or None."""
    scores = engine.score_clips(method, torch.utils.data.default_collate(items), device)
    amap = scores.pop("_map", None)
    signals = {k: v.float().cpu().numpy().astype(np.float64) for k, v in scores.items()}
    return [item["index"] for item in items], signals, None if amap is None else amap.float().cpu().numpy()


# --- calibration of a run -----------------------------------------------------------------------------------------
def ensure_calibration(run: str | Path, method, data=None, *, progress: bool = True) -> Calibration:
    """The run's `calibration.npz`, computed once from its training data (`data`, else the data run.json names) and
    stored when the run predates it, is damaged, or belongs to another checkpoint epoch (in a folder this process
    cannot write to, computed for this call only, with a warning)."""
    run = Path(run)
    file = run / CALIBRATION
    if file.exists():
        try:
            calibration = Calibration.load(file)
            if (calibration.meta.get("epochs_trained") == method.epochs_trained
                    and calibration.weights == method.fusion_weights()
                    and calibration.meta.get("scoring") == engine.scoring_fingerprint(method)):
                return calibration  # made by this model with this scoring (config and fit_scoring constants)
        except DataError:
            pass  # damaged or an older format: computed again below
    if data is None:
        info = engine.run_info(run)
        data = info["data"]
    try:
        layout = load_layout(data)
    except DataError as exc:
        raise DataError(f"{run}: no usable {CALIBRATION}, and the run's training data cannot be read to make one "
                        f"({exc}); pass the training data with --data") from None
    engine.ensure_scoring_fit(method, run, layout, progress=progress)  # what the scores use (MAAM-Net's scales)
    if not os.access(run, os.W_OK):  # someone else's run: calibrate for this call only
        warnings.warn(f"{run}: not writable, so the calibration is computed for this call and not stored",
                      VadlabWarning, stacklevel=2)
        return engine.calibrate(method, layout, progress=progress)
    with runs.lock(run, "calibration"):
        calibration = engine.calibrate(method, layout, progress=progress)
        calibration.save(file)
    return calibration


# --- drawing ------------------------------------------------------------------------------------------------------
def _display_size(height: int, width: int) -> tuple[int, int]:
    w = int(round(width * DISPLAY_HEIGHT / height))
    return DISPLAY_HEIGHT, w + (w % 2)  # even sides: what common MP4 codecs need


def overlay(image: np.ndarray, amap: np.ndarray | None, scale: float | None) -> np.ndarray:
    """A native frame (grey or RGB) at the display size, BGR uint8 (DISPLAY_HEIGHT, w, 3), with the anomaly map
    (h, w) over it: inferno colours, opacity rising with map / `scale` (the training frames' 99.9th percentile)."""
    height, width = _display_size(*image.shape[:2])
    frame = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR if frame.ndim == 2 else cv2.COLOR_RGB2BGR)
    if amap is None:
        return frame
    level = np.clip(cv2.resize(np.nan_to_num(amap.astype(np.float32)), (width, height),
                               interpolation=cv2.INTER_LINEAR) / max(scale or 1e-12, 1e-12), 0.0, 1.0)  # (H, W)
    colour = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)  # (H, W, 3) BGR
    alpha = (MAP_ALPHA * level)[..., None]
    return (frame * (1.0 - alpha) + colour * alpha).astype(np.uint8)


def score_panel(history, t: int, level: float, row: dict, span: int = CURVE_FRAMES) -> np.ndarray:
    """The panel beside a frame, BGR uint8 (DISPLAY_HEIGHT, PANEL_WIDTH, 3): the calibrated score of the last
    `span` frames (`history`, the last ending at frame `t`; gaps where unscorable) on an x axis of `span` frames
    from max(0, t - span + 1), the flag level dashed, the current frame's numbers."""
    panel = np.full((DISPLAY_HEIGHT, PANEL_WIDTH, 3), 255, np.uint8)
    left, right, top, bottom = 34, PANEL_WIDTH - 8, 40, DISPLAY_HEIGHT - 22
    cv2.rectangle(panel, (left, top), (right, bottom), (160, 160, 160), 1)

    def y_of(value: float) -> int:
        return int(round(bottom - value * (bottom - top)))

    for tick in (0.0, 0.5, 1.0):
        cv2.putText(panel, f"{tick:.1f}", (4, y_of(tick) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (90, 90, 90), 1)
    y = y_of(level)
    for x in range(left, right, 8):  # dashed flag level
        cv2.line(panel, (x, y), (min(x + 4, right), y), (40, 40, 220), 1)
    values = list(history)[-span:]
    step = (right - left) / max(span - 1, 1)
    first, start = t - len(values) + 1, max(0, t - span + 1)  # frame of values[0], frame at the left edge
    points = []
    for i, value in enumerate(values):
        if np.isfinite(value):
            points.append((int(round(left + (first + i - start) * step)), y_of(value)))
        elif points:
            cv2.polylines(panel, [np.array(points, np.int32)], False, (178, 115, 1), 1, cv2.LINE_AA)
            points = []
    if points:
        cv2.polylines(panel, [np.array(points, np.int32)], False, (178, 115, 1), 1, cv2.LINE_AA)
    cv2.putText(panel, f"frame {t}", (left, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1)
    if np.isfinite(row["calibrated"]):
        text = f"score {row['calibrated']:.3f}  q {row['quantile']:.3f}"
        colour = (30, 30, 200) if row["flag"] else (0, 0, 0)
        cv2.putText(panel, text + ("  FLAG" if row["flag"] else ""), (left, 31), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    colour, 1)
    else:
        cv2.putText(panel, "not scorable", (left, 31), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (120, 120, 120), 1)
    cv2.putText(panel, f"frames {start}-{start + span - 1}; dashed: flag level", (left, DISPLAY_HEIGHT - 7),
                cv2.FONT_HERSHEY_SIMPLEX, 0.33, (90, 90, 90), 1)
    return panel


# --- writing ------------------------------------------------------------------------------------------------------
class _Outputs:
    """CSV rows and overlay frames, written as they come into temp files that `finish` moves into place."""

    def __init__(self, out: Path, signals: list[str], calibration: Calibration, threshold: float, *,
                 write_video: bool, fps: float, minmax: bool, stack: ExitStack, span: int | None = None):
        self.calibration, self.threshold = calibration, threshold
        self.level = calibration.level(threshold)
        self.signals = signals
        self.columns = (["frame"] + signals + [f"q_{k}" for k in signals if k in calibration.signals]
                        + ["calibrated", "quantile", "flag"] + (["score_minmax"] if minmax else []))
        self.csv_path = stack.enter_context(atomic_path(out / "scores.csv"))
        self.csv_file = stack.enter_context(open(self.csv_path, "w", newline=""))
        self.csv = csv.writer(self.csv_file)
        self.csv.writerow(self.columns)
        self.video_path = stack.enter_context(atomic_path(out / "overlay.mp4")) if write_video else None
        self.writer, self.fps = None, fps
        self.span = min(span, CURVE_FRAMES) if span else CURVE_FRAMES  # frames on the panel's x axis
        self.history: deque = deque(maxlen=CURVE_FRAMES)  # the curve of the panel
        self.calibrated: list[float] = []  # (N,) for curve.png: 8 bytes a frame
        self.flags = 0
        self.frames = 0

    def add(self, t: int, image: np.ndarray, raw: dict[str, float] | None, amap: np.ndarray | None,
            minmax: float | None = None) -> None:
        raw = raw or {}
        values = {k: np.array([raw.get(k, np.nan)], np.float64) for k in self.signals}
        scored = self.calibration.score(values)
        row = {"frame": t, **{k: v[0] for k, v in values.items()}, **{k: v[0] for k, v in scored.items()}}
        row["flag"] = bool(row["calibrated"] > self.level) if np.isfinite(row["calibrated"]) else None
        row["score_minmax"] = minmax
        self.flags += bool(row["flag"])
        self.frames += 1
        self.csv.writerow([_cell(row[c], c) for c in self.columns])
        self.csv_file.flush()
        self.history.append(row["calibrated"])
        self.calibrated.append(row["calibrated"])
        if self.video_path is not None:
            picture = np.concatenate([overlay(image, amap, self.calibration.map_scale),
                                      score_panel(self.history, t, self.level, row, self.span)], axis=1)
            if self.writer is None:
                height, width = picture.shape[:2]
                self.writer = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                              (width, height))
                if not self.writer.isOpened():
                    raise VadlabError(f"{self.video_path}: OpenCV cannot write an MP4 (mp4v) video here")
            self.writer.write(picture)

    def close(self) -> None:
        self.csv_file.flush()
        if self.writer is not None:
            self.writer.release()


def _cell(value, column: str):
    if value is None:  # a flag (or min-max score) of a frame no clip scores
        return ""
    if column in ("frame", "flag"):
        return int(value)
    if not np.isfinite(value):
        return ""
    return f"{float(value):.6g}"


# --- the command --------------------------------------------------------------------------------------------------
def score_video(run: str | Path, video: str | Path, out: str | Path | None = None, *, threshold: float = 0.99,
                stream: bool = False, write_video: bool = True, data=None, device: str = "auto",
                threads: int | None = None, progress: bool = True) -> dict:
    """Score every frame of `video` with the trained `run`; write scores.csv, curve.png, overlay.mp4 (unless
    `write_video=False`) and summary.json into `out` (default RUN/score/<video name>/). Returns the summary: frames,
    frames scored and flagged, the flag level, seconds and frames per second of reading, scoring and writing."""
    from vadlab import viz

    run = Path(run)
    if not 0.0 <= threshold <= 1.0:
        raise DataError(f"--threshold {threshold!r}: a quantile between 0 and 1 (e.g. 0.99)")
    cpu_threads.configure(threads)
    method = engine.load_run(run, device)  # no checkpoint: DataError naming it
    source = VideoSource(video, method.config.channels)
    out = Path(out) if out is not None else run / "score" / source.path.stem
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: a file; --out names a folder")
    calibration = ensure_calibration(run, method, data, progress=progress)
    dev = next(method.model.parameters()).device
    spec = method.clip_spec()
    flow_method = stream_extras(method).get("flow")
    window = ClipWindow(spec, method.config.image_size, method.config.channels, flow_method)
    signals = sorted(calibration.frames)
    method.begin_scoring([source.path.stem])
    method.reset_test_state()  # the trained state at the video's start; test-time updates follow frame order

    t0 = time.perf_counter()
    stopped = None
    bar = tqdm(total=source.count, desc=f"scoring {source.path.name}", unit="frame", disable=not progress,
               leave=False)
    with ExitStack() as stack:
        outputs = _Outputs(out, signals, calibration, threshold, write_video=write_video, fps=source.fps,
                           minmax=not stream, stack=stack, span=source.count)
        if stream:
            buffered, stopped = _score_stream(method, source, window, outputs, dev, bar)
        else:
            buffered = _score_whole(method, source, window, outputs, dev, bar, progress)
        bar.close()
        _check_length(source, window.count, window)  # a stream learns its length only here
        outputs.close()
    short = None if stopped else guards.short_video(source.path, source.count, window.count)
    seconds = time.perf_counter() - t0

    calibrated = np.array(outputs.calibrated)
    figure = viz.plot_calibrated_curve(calibrated, outputs.level, threshold=threshold, method=method.name,
                                       title=f"{method.name} on {source.path.name}", path=out / "curve.png")
    viz.plt.close(figure)
    scored = int(np.isfinite(calibrated).sum())
    summary = {
        "run": str(run), "out": str(out), "method": method.name, "video": str(source.path), "source": source.kind,
        "stream": stream, "frames": outputs.frames, "frames_scored": scored, "flagged": outputs.flags,
        "threshold": threshold, "level": outputs.level, "seconds": seconds,
        "fps": outputs.frames / seconds if seconds > 0 else None, "overlay_video": write_video,
        "frames_buffered": buffered, "signals": signals, "weights": calibration.weights,
        "calibration": {k: calibration.meta.get(k) for k in ("frames", "videos", "epochs_trained", "seconds")},
        "image_size": method.config.image_size, "channels": method.config.channels, "threads": torch.get_num_threads(),
        "stopped": stopped, "frames_in_header": source.count, "short": short,
        "outputs": sorted(p.name for p in out.iterdir() if not p.name.startswith(".")),
    }
    write_json(out / "summary.json", summary)
    return summary


def _score_stream(method, source: VideoSource, window: ClipWindow, outputs: _Outputs, dev, bar) -> tuple[dict, str]:
    """Frame by frame: each clip scored (a batch of 1) as soon as its frames are read, each frame written as soon as
    it is scored or known to be unscorable. Returns the most frames held ({"window", "pending"}) and why it stopped
    early (None: the video ended)."""
    spec, stopped = method.clip_spec(), None
    pending: deque = deque()  # (t, native frame) read, waiting for the clip that scores it
    held = 0
    with runs.Interrupts() as interrupts:  # Ctrl-C / SIGTERM: stop after the current frame
        for image, grey in source:
            item = window.push(image, grey)
            pending.append((window.count - 1, image))
            held = max(held, len(pending))
            scored = {}
            if item is not None:
                indices, values, maps = _score_items(method, [item], dev)
                scored[indices[0]] = ({k: v[0] for k, v in values.items()}, None if maps is None else maps[0])
            while pending and (pending[0][0] < spec.first_scored or pending[0][0] in scored):
                t, frame = pending.popleft()
                raw, amap = scored.get(t, (None, None))
                outputs.add(t, frame, raw, amap)
            bar.update(1)
            if interrupts.requested:
                stopped = (f"stopped by signal {interrupts.signum} after frame {window.count - 1}: the outputs hold "
                           "the frames read until then")
                break
    while pending:  # the last frames no clip scores
        t, frame = pending.popleft()
        outputs.add(t, frame, None, None)
    return {"window": window.held, "pending": held}, stopped


def _score_whole(method, source: VideoSource, window: ClipWindow, outputs: _Outputs, dev, bar,
                 progress: bool) -> dict:
    """Every frame read first, clips scored in batches as `engine.infer` scores them, then the rows written with
    the per-video min-max score beside them. Returns the most frames held."""
    frames = []
    for image, grey in source:
        frames.append((image, grey))
        bar.update(1)
    _check_length(source, len(frames), window)
    calibration = outputs.calibration
    raw = {k: np.full(len(frames), np.nan) for k in outputs.signals}
    maps: dict[int, np.ndarray] = {}
    batch_size = engine.scoring_batch_size(method)
    items = []
    for image, grey in tqdm(frames, desc="scoring clips", unit="frame", disable=not progress, leave=False):
        item = window.push(image, grey)
        if item is not None:
            items.append(item)
        if items and (len(items) == batch_size or window.count == len(frames)):
            indices, values, batch_maps = _score_items(method, items, dev)
            for name, v in values.items():
                raw.setdefault(name, np.full(len(frames), np.nan))[indices] = v
            if batch_maps is not None:
                maps.update(zip(indices, batch_maps))
            items = []
    minmax = fuse({k: {"video": v} for k, v in raw.items() if k in calibration.weights}, dict(calibration.weights),
                  mode="video")["video"]  # the evaluation protocol's score (Eq. 16-17), needs the whole video
    for t, (image, _) in enumerate(frames):
        outputs.add(t, image, {k: v[t] for k, v in raw.items()}, maps.get(t), minmax[t])
    return {"window": window.held, "pending": len(frames)}


def _check_length(source: VideoSource, n: int, window: ClipWindow) -> None:
    if n < window.length:
        raise DataError(f"{source.path}: {n} frame(s); this run's clips need at least {window.length} to score one")


def read_scores(path: str | Path) -> dict[str, np.ndarray]:
    """A `scores.csv` of `score_video` as {column: (N,) float64}, NaN where empty."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return {c: np.array([float(r[i]) if r[i] != "" else np.nan for r in body]) for i, c in enumerate(header)}


def describe(summary: dict) -> str:
    """One line about a `score_video` summary (what the CLI prints)."""
    return (f"{summary['method']}: {summary['frames']} frames ({summary['frames_scored']} scored), "
            f"{summary['flagged']} flagged above the {summary['threshold']:g} quantile of the training frames "
            f"(calibrated score > {summary['level']:.3f}); {summary['fps']:.1f} frames/s")


__all__ = ["VideoSource", "ClipWindow", "stream_extras", "ensure_calibration", "overlay", "score_panel",
           "score_video", "read_scores", "describe"]
