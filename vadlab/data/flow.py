"""Dense optical flow for MAAM-Net's motion target, without FlowNet2 (its weights cannot be downloaded here).

MAAM-Net (Wang et al., PR 2023, Sec. 3.2.1) predicts the flow F_t from frame I_t to I_{t+1}. The paper uses
FlowNet2; vadlab computes it with OpenCV instead:

- `"dis"`: `cv2.DISOpticalFlow` (Kroeger et al. 2016), preset MEDIUM;
- `"farneback"`: `cv2.calcOpticalFlowFarneback` (Farneback 2003) with the OpenCV documentation's parameters
  (pyramid scale 0.5, 3 levels, window 15, 3 iterations, poly_n 5, poly_sigma 1.2);
- `"files"`: the user's own Middlebury `.flo` files, one per frame but the last, sorted by name, e.g. made with
  FlowNet2 elsewhere: inside the dataset, `ROOT/<split>/flow/<video>/*.flo` beside `ROOT/<split>/frames/<video>/`,
  or under another `flow_root` as `FLOW_ROOT/<split>/<video>/*.flo`.

Convention (that of FlowNet2's .flo files and of both OpenCV calls with prev=I_t, next=I_{t+1}): two channels
(u = dx horizontal, v = dy vertical), float32, in pixels, forward, I_t(y, x) ~ I_{t+1}(y + v, x + u). Frames are
converted to 8-bit grey first (both OpenCV methods need one channel).

Order as in the paper (Sec. 4.3): the flow is computed at the video's native size, then resized bilinearly to the
model's size. The paper does not say whether vectors follow the resize; vadlab scales them (issue 9): u by
W_model / W_native and v by H_model / H_native, so a flow at the model's size is in the model's pixels. No clipping
and no normalisation.

Cache (beside the decoded-frame cache, `$VADLAB_CACHE/flow/`): per video one `.npy` at native size (float16,
(N, H, W, 2), memory-mapped on load) and one per model size (float32, (N, 2, h, w), loaded whole): loading is a
file read, nothing is decoded or recomputed. The last frame of a video has no next frame: its entry is NaN, and
MAAM-Net leaves that frame unscored (it never reads it). The key covers the frame files (path, size, mtime), the
method and `FLOW_VERSION`, so a changed dataset or method is computed again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal, Sequence

import cv2
import numpy as np

from vadlab.data.clips import cache_dir, frame_size
from vadlab.data.layout import Video, read_image
from vadlab.errors import DataError
from vadlab.io import atomic_path
from vadlab.progress import tqdm

__all__ = ["FLOW_METHODS", "FLO_MAGIC", "compute_flow", "flow_pair", "resize_flow", "read_flo", "write_flo",
           "native_flow", "load_flow", "flow_at_size", "flow_for_videos", "flow_to_color"]

FLOW_METHODS = ("dis", "farneback", "files")
FlowMethod = Literal["dis", "farneback", "files"]
FLO_MAGIC = 202021.25  # Middlebury .flo: float32 magic, int32 width, int32 height, H*W*2 float32 (u, v), little-endian
FLOW_VERSION = 1  # bump when a method's parameters change: old cache entries are then not used


# --- one pair, one video ------------------------------------------------------------------------------------------
def _dis():
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def flow_pair(prev: np.ndarray, nxt: np.ndarray, method: str = "dis", *, _dis_obj=None) -> np.ndarray:
    """Forward flow from `prev` to `nxt` (uint8 (H, W) grey) as float32 (H, W, 2) = (u, v) in pixels."""
    if prev.dtype != np.uint8 or prev.ndim != 2 or nxt.shape != prev.shape or nxt.dtype != np.uint8:
        raise DataError(f"flow_pair needs two uint8 grey frames of one size, got {prev.dtype} {prev.shape} and "
                        f"{nxt.dtype} {nxt.shape}")
    if method == "dis":
        return (_dis_obj or _dis()).calc(prev, nxt, None).astype(np.float32, copy=False)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0).astype(np.float32, copy=False)
    raise DataError(f"unknown flow method {method!r}; computed methods: dis, farneback")


def compute_flow(frames: np.ndarray | Sequence[np.ndarray], method: str = "dis", *, progress: bool = False,
                 desc: str = "flow") -> np.ndarray:
    """Flow of every frame to the next: grey uint8 frames (N, H, W) -> float32 (N, H, W, 2), entry N-1 NaN."""
    n = len(frames)
    if n < 2:
        raise DataError(f"optical flow needs at least 2 frames, got {n}")
    height, width = frames[0].shape[:2]
    out = np.empty((n, height, width, 2), np.float32)
    dis = _dis() if method == "dis" else None
    for t in tqdm(range(n - 1), desc=desc, unit="frame", disable=not progress, leave=False):
        out[t] = flow_pair(frames[t], frames[t + 1], method, _dis_obj=dis)
    out[n - 1] = np.nan  # the last frame has no next frame (Sec. 3.2.1): never a target
    return out


def resize_flow(flow: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Flow (..., H, W, 2) resized bilinearly to `size` (H', W'), u scaled by W'/W and v by H'/H: (..., H', W', 2).

    Vectors follow the resize, so the result is in the new size's pixels (a shift of 4 px at 360 wide is 1 px at
    90 wide). NaN entries (a video's last frame) stay NaN."""
    new_h, new_w = frame_size(size)
    height, width = flow.shape[-3:-1]
    lead = flow.shape[:-3]
    flat = flow.reshape(-1, height, width, 2)  # a view (also of a memory-mapped cache entry)
    out = np.empty((len(flat), new_h, new_w, 2), np.float32)
    for i, f in enumerate(flat):  # one frame at a time in float32
        out[i] = cv2.resize(np.asarray(f, np.float32), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= new_w / width  # u: horizontal pixels
    out[..., 1] *= new_h / height  # v: vertical pixels
    return out.reshape(*lead, new_h, new_w, 2)


# --- Middlebury .flo ----------------------------------------------------------------------------------------------
def read_flo(path: str | os.PathLike) -> np.ndarray:
    """A Middlebury `.flo` file as float32 (H, W, 2) = (u, v); a bad magic or size raises DataError naming it."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < 12:
        raise DataError(f"{path}: not a .flo file ({len(raw)} bytes, the header alone is 12)")
    magic = np.frombuffer(raw[:4], "<f4")[0]
    if magic != np.float32(FLO_MAGIC):
        raise DataError(f"{path}: not a .flo file (magic {magic!r}, expected {FLO_MAGIC})")
    width, height = (int(x) for x in np.frombuffer(raw[4:12], "<i4"))
    if width <= 0 or height <= 0 or width * height > 1 << 28:
        raise DataError(f"{path}: bad .flo size {width}x{height}")
    expected = 12 + width * height * 2 * 4
    if len(raw) != expected:
        raise DataError(f"{path}: {len(raw)} bytes, a {width}x{height} .flo file has {expected}")
    return np.frombuffer(raw[12:], "<f4").reshape(height, width, 2).astype(np.float32)


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write float (H, W, 2) = (u, v) as a Middlebury `.flo` file (atomically)."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise DataError(f"{path}: a .flo file holds (H, W, 2) flow, got shape {flow.shape}")
    height, width = flow.shape[:2]
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + np.ascontiguousarray(flow, "<f4").tobytes())


# --- cache --------------------------------------------------------------------------------------------------------
def _key(video: Video, method: str, flow_root: str | None) -> str:
    digest = hashlib.sha1(f"flow{FLOW_VERSION}:{method}".encode())
    paths = video.frames
    if method == "files":
        paths = _flo_files(video, flow_root)
    for path in paths:
        stat = Path(path).stat()
        digest.update(f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _flo_files(video: Video, flow_root: str | None) -> list[Path]:
    """The user's .flo files of a video: FLOW_ROOT/<split>/<video>/, else ROOT/<split>/flow/<video>/ of its dataset."""
    if flow_root:
        folder = Path(flow_root) / video.split / video.name
    else:
        folder = Path(video.frames[0]).parents[2] / "flow" / video.name  # ROOT/<split>/frames/<video>/<frame>
    files = sorted(folder.glob("*.flo"))
    if len(files) != len(video) - 1:
        raise DataError(f"{folder}: {len(files)} .flo files for {len(video)} frames of video {video.name!r} "
                        f"(one per frame but the last expected)")
    return files


def _flow_dir() -> Path:
    return cache_dir() / "flow"


def _load_npy(file: Path, mmap: bool) -> np.ndarray | None:
    if not file.exists():
        return None
    try:
        return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError):
        file.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, never trusted
        return None


def native_flow(video: Video, method: str = "dis", *, flow_root: str | None = None, progress: bool = False,
                use_cache: bool = True) -> np.ndarray:
    """A video's flow at its native size, (N, H, W, 2) float16 (memory-mapped from the cache), last entry NaN.

    Computed from the frames on first use (grey, `method`), or read from the user's `.flo` files (`"files"`)."""
    if method not in FLOW_METHODS:
        raise DataError(f"unknown flow method {method!r}; valid: {', '.join(FLOW_METHODS)}")
    file = _flow_dir() / f"{_key(video, method, flow_root)}.npy"
    if use_cache and (cached := _load_npy(file, mmap=True)) is not None:
        return cached
    if method == "files":
        files = _flo_files(video, flow_root)
        flows = [read_flo(f) for f in files]
        if any(f.shape != flows[0].shape for f in flows):
            raise DataError(f"{files[0].parent}: .flo files of different sizes")
        flow = np.concatenate([np.stack(flows), np.full((1, *flows[0].shape), np.nan, np.float32)])
    else:
        frames = [read_image(Path(p), 1) for p in video.frames]
        flow = compute_flow(frames, method, progress=progress, desc=f"flow {video.name}")
    flow = flow.astype(np.float16)  # (N, H, W, 2); half the disk, ~1e-3 relative precision
    if not use_cache:
        return flow
    with atomic_path(file) as tmp:
        np.save(tmp, flow)
    return np.load(file, mmap_mode="r", allow_pickle=False)


def load_flow(video: Video, size: int | tuple[int, int], method: str = "dis", *, flow_root: str | None = None,
              progress: bool = False, use_cache: bool = True) -> np.ndarray:
    """A video's flow at the model's `size` (h, w): float32 (N, 2, h, w), vectors in the model's pixels, last NaN."""
    height, width = frame_size(size)
    file = _flow_dir() / f"{_key(video, method, flow_root)}-{height}x{width}.npy"
    if use_cache and (cached := _load_npy(file, mmap=False)) is not None:
        return cached
    native = native_flow(video, method, flow_root=flow_root, progress=progress, use_cache=use_cache)
    flow = np.ascontiguousarray(resize_flow(native, size).transpose(0, 3, 1, 2))  # (N, 2, h, w)
    if use_cache:
        with atomic_path(file) as tmp:
            np.save(tmp, flow)
    return flow


def flow_at_size(prev: np.ndarray, nxt: np.ndarray, size: int | tuple[int, int], method: str = "dis", *,
                 _dis_obj=None) -> np.ndarray:
    """The flow of one pair of native grey uint8 frames as `load_flow` gives it for frame `prev`: computed at native
    size, stored as float16 (as the cache stores it), resized to `size` with scaled vectors: float32 (2, h, w).
    For footage scored frame by frame (`vadlab score --stream`), where there is no video folder to cache."""
    if method not in ("dis", "farneback"):
        raise DataError(f"flow method {method!r} cannot be computed from frames; computed methods: dis, farneback")
    native = flow_pair(prev, nxt, method, _dis_obj=_dis_obj).astype(np.float16)  # (H, W, 2), as the cache holds it
    return np.ascontiguousarray(resize_flow(native, size).transpose(2, 0, 1))  # (2, h, w)


def flow_for_videos(videos: Sequence[Video], size: int | tuple[int, int] | None = None, method: str = "dis", *,
                    flow_root: str | None = None, progress: bool = True) -> list[np.ndarray]:
    """Flow of every video (computed and cached on first use, with a progress bar): at `size` (float32
    (N, 2, h, w) each), or at native size (float16 (N, H, W, 2)) when `size` is None."""
    out = []
    for video in tqdm(videos, desc=f"optical flow ({method})", unit="video", disable=not progress or not videos,
                      leave=False):
        if size is None:
            out.append(native_flow(video, method, flow_root=flow_root, progress=progress))
        else:
            out.append(load_flow(video, size, method, flow_root=flow_root, progress=progress))
    return out


# --- looking at it ------------------------------------------------------------------------------------------------
def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Flow (H, W, 2) or (2, H, W) -> uint8 RGB (H, W, 3) on the colour wheel: hue = direction, saturation =
    magnitude / `max_magnitude` (default: the largest finite magnitude), value 1. NaN -> black."""
    flow = np.asarray(flow, np.float32)
    if flow.ndim == 3 and flow.shape[0] == 2 and flow.shape[-1] != 2:
        flow = flow.transpose(1, 2, 0)
    u, v = flow[..., 0], flow[..., 1]
    bad = ~(np.isfinite(u) & np.isfinite(v))
    u, v = np.where(bad, 0, u), np.where(bad, 0, v)
    mag = np.hypot(u, v)
    top = max_magnitude if max_magnitude else max(float(mag.max()), 1e-6)
    hsv = np.zeros((*u.shape, 3), np.uint8)
    hsv[..., 0] = ((np.degrees(np.arctan2(-v, -u)) + 180.0) / 2.0).astype(np.uint8) % 180  # OpenCV hue 0..179
    hsv[..., 1] = np.clip(mag / top * 255.0, 0, 255).astype(np.uint8)
    hsv[..., 2] = np.where(bad, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
