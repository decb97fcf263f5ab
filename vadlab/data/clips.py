"""Decoded-frame cache and the clip dataset every method trains and scores on.

Decoding JPEG/TIFF every epoch would dominate a small model's epoch on a CPU, so each video is decoded once,
resized, and stored as a uint8 array `(N, H, W, C)` in a cache folder (`$VADLAB_CACHE`, default
`~/.cache/vadlab`). The cache key covers the frame files (path, size, mtime), the size and the channel count, so a
changed dataset is decoded again and a second epoch, or a second run, decodes nothing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from vadlab.data.layout import Video, read_image
from vadlab.errors import ConfigError, DataError
from vadlab.io import atomic_path


def cache_dir() -> Path:
    return Path(os.environ.get("VADLAB_CACHE", Path.home() / ".cache" / "vadlab")).expanduser()


def frame_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """(H, W) of a size given as one side (square) or as (H, W)."""
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def _cache_key(paths: Sequence[Path], size: int | tuple[int, int], channels: int) -> str:
    size_key = size if isinstance(size, int) else "x".join(str(s) for s in frame_size(size))
    digest = hashlib.sha1(f"{size_key}:{channels}".encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def decode_frames(paths: Sequence[Path], size: int | tuple[int, int], channels: int, *,
                  interpolation=cv2.INTER_AREA) -> np.ndarray:
    """Decode and resize frames to a uint8 array (N, H, W, channels); mixed source sizes raise DataError."""
    height, width = frame_size(size)
    out = np.empty((len(paths), height, width, channels), dtype=np.uint8)  # (N, H, W, C)
    first_shape = None
    for i, path in enumerate(paths):
        image = read_image(path, channels)
        if first_shape is None:
            first_shape = image.shape[:2]
        elif image.shape[:2] != first_shape:
            raise DataError(f"{path}: size {image.shape[1]}x{image.shape[0]} differs from the video's first frame "
                            f"({first_shape[1]}x{first_shape[0]})")
        out[i] = prepare_frame(image, size, channels, interpolation=interpolation)
    return out


def prepare_frame(image: np.ndarray, size: int | tuple[int, int], channels: int, *,
                  interpolation=cv2.INTER_AREA) -> np.ndarray:
    """One decoded uint8 frame ((H, W) grey or (H, W, 3) RGB, as `read_image` gives) resized to the model's size:
    uint8 (h, w, channels). The one resize of the data pipeline (`decode_frames`, `vadlab score`)."""
    height, width = frame_size(size)
    image = cv2.resize(image, (width, height), interpolation=interpolation)
    return image.reshape(height, width, channels)


def load_frames(paths: Sequence[Path], size: int | tuple[int, int], channels: int = 1, *, use_cache: bool = True,
                interpolation=cv2.INTER_AREA) -> np.ndarray:
    """Frames of one video as uint8 (N, H, W, channels), from the cache when it is there."""
    paths = [Path(p) for p in paths]
    if not use_cache:
        return decode_frames(paths, size, channels, interpolation=interpolation)
    key = _cache_key(paths, size, channels)
    if interpolation != cv2.INTER_AREA:
        key += f"-i{interpolation}"
    file = cache_dir() / f"{key}.npy"
    if file.exists():
        try:
            return np.load(file, allow_pickle=False)
        except (OSError, ValueError):
            file.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, never trusted
    frames = decode_frames(paths, size, channels, interpolation=interpolation)
    with atomic_path(file) as tmp:
        np.save(tmp, frames)
    return frames


def load_masks(video: Video, size: int | tuple[int, int] | None = None) -> np.ndarray | None:
    """Pixel masks of a video as bool (N, H, W) at `size` (nearest), or None when the video has none."""
    if video.masks is None:
        return None
    masks = []
    for path in video.masks:
        mask = read_image(path)
        if size is not None:
            height, width = frame_size(size)
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        masks.append(mask > 0)
    return np.stack(masks)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, C) -> float32 (..., C, H, W) scaled to [-1, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).float()
    return tensor.movedim(-1, -3).div_(127.5).sub_(1.0)


@dataclass(frozen=True)
class ClipSpec:
    """Which frames form a clip and which frame it scores."""

    frames_in: int  # T input frames
    predict: bool  # True: inputs t-T..t-1, target t (first T frames unscorable); False: target t is one of the inputs
    target_index: int = -1  # reconstruction only: position of the target among the T inputs (-1: the last, t-T+1..t)

    def __post_init__(self):
        if not self.predict and not -self.frames_in <= self.target_index < self.frames_in:
            raise ConfigError(f"target_index {self.target_index} is not a position among frames_in={self.frames_in} "
                              f"input frames (valid: {-self.frames_in}..{self.frames_in - 1})")

    @property
    def first_scored(self) -> int:
        """Index of the first frame of a video that a clip can score."""
        return self.frames_in if self.predict else self.target_index % self.frames_in

    @property
    def last_unscored(self) -> int:
        """How many frames at the end of a video no clip can score (a reconstruction target inside the window)."""
        return 0 if self.predict else self.frames_in - 1 - self.target_index % self.frames_in

    def scored_range(self, n_frames: int) -> range:
        """The frames of an `n_frames` video that a clip can score."""
        return range(self.first_scored, n_frames - self.last_unscored)

    def start(self, t: int) -> int:
        """First input frame of the clip that scores frame t."""
        return t - self.frames_in if self.predict else t - self.first_scored


class ClipDataset(Dataset):
    """Windows of T frames (+ target) over a list of videos, from the decoded-frame cache.

    Item: dict(input=(T, C, H, W) float in [-1, 1], target=(C, H, W), label=int (the scored frame's 0/1 label; 0
    for videos without labels, such as normal training videos), video=int, index=int), where `index` is the frame
    the clip scores in video `video` (position in `videos`), plus one tensor per entry of `extras`
    ({name: one array (N, ...) per video}, item[name] = array[index], e.g. optical flow). Collated, its items are
    the batches of the contract every method is written for (`vadlab.models.base.Batch`, `check_batch`).
    """

    def __init__(self, videos: Sequence[Video], spec: ClipSpec, size: int | tuple[int, int], channels: int = 1, *,
                 stride: int = 1, use_cache: bool = True, extras: dict[str, Sequence[np.ndarray]] | None = None):
        self.videos = list(videos)
        self.spec = spec
        self.arrays = [load_frames(v.frames, size, channels, use_cache=use_cache) for v in self.videos]
        self.labels = [np.zeros(len(v), np.int64) if v.labels is None else np.asarray(v.labels, np.int64)
                       for v in self.videos]
        self.extras = dict(extras or {})
        for name, arrays in self.extras.items():
            if len(arrays) != len(self.videos):
                raise DataError(f"extra input {name!r}: {len(arrays)} arrays for {len(self.videos)} videos")
            for video, array in zip(self.videos, arrays):
                if len(array) < len(video):
                    raise DataError(f"extra input {name!r} of video {video.name!r}: {len(array)} entries for "
                                    f"{len(video)} frames")
        index = []
        for vi, frames in enumerate(self.arrays):
            for t in spec.scored_range(len(frames))[::stride]:
                index.append((vi, t))
        if not index:
            raise DataError(f"no clip of {spec.frames_in} frames fits in videos "
                            f"{', '.join(v.name for v in self.videos)}")
        self.index = np.asarray(index, dtype=np.int64)  # (n_clips, 2)

    def __len__(self) -> int:
        return len(self.index)

    def clip_indices(self, video: int) -> np.ndarray:
        """Positions in this dataset of the clips of one video, in frame order."""
        return np.nonzero(self.index[:, 0] == video)[0]

    def __getitem__(self, i: int) -> dict:
        vi, t = (int(x) for x in self.index[i])
        frames = self.arrays[vi]
        T = self.spec.frames_in
        start = self.spec.start(t)
        item = {
            "input": to_tensor(frames[start:start + T]),  # (T, C, H, W)
            "target": to_tensor(frames[t]),  # (C, H, W)
            "label": int(self.labels[vi][t]),
            "video": vi,
            "index": t,
        }
        for name, arrays in self.extras.items():
            item[name] = torch.as_tensor(np.asarray(arrays[vi][t]))
        return item


def clip_at(video: Video, t: int, spec: ClipSpec, size: int | tuple[int, int], channels: int = 1, *,
            extras: dict[str, Sequence[np.ndarray]] | None = None) -> dict:
    """The one clip that scores frame `t` of `video`, as a batch of 1 (for looking inside a model)."""
    valid = spec.scored_range(len(video))
    if t not in valid:
        raise DataError(f"video {video.name!r}: frame {t} cannot be scored with {spec.frames_in} input frames "
                        f"(valid: {valid.start}..{valid.stop - 1})")
    item = ClipDataset([video], spec, size, channels, extras=extras)[t - spec.first_scored]
    return torch.utils.data.default_collate([item])
