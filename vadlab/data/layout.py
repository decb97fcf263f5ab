"""The common frame layout every method reads, its reader with validation, and an atomic writer.

```
ROOT/training/frames/<video>/<frame>.{jpg,png,tif}     normal training videos
ROOT/testing/frames/<video>/<frame>.{...}
ROOT/testing/labels/<video>.npy                          per-frame 0/1, one entry per frame file
ROOT/testing/masks/<video>/<frame>.png                   optional pixel masks (0 normal, >0 anomalous)
ROOT/testing/types/<video>.npy                           optional per-frame anomaly type (str; "normal")
ROOT/abnormal/frames|labels|masks|types/...              optional labelled anomalies (DREAM's few-anomaly pool)
ROOT/meta.json                                           optional provenance (source, generator, seed)
```
Frames are sorted by the last run of digits in their name; junk (`.DS_Store`, `._*`, any dot file) is skipped.
A gap in the numbering, a folder without frames, or a label file whose length differs from the frame count
raises `DataError` naming the file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from vadlab.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
SPLITS = ("training", "testing", "abnormal")
_DIGITS = re.compile(r"(\d+)(?!.*\d)")


def is_junk(name: str) -> bool:
    """Files the real downloads carry that are not data: dot files, macOS resource forks, thumbs."""
    return name.startswith(".") or name.lower() in {"thumbs.db", "desktop.ini"}


def frame_number(path: Path) -> int:
    """The frame index written in a file name (the last run of digits), e.g. `Train001/012.tif` -> 12."""
    match = _DIGITS.search(path.stem)
    if match is None:
        raise DataError(f"{path}: frame file name has no frame number")
    return int(match.group(1))


def list_images(folder: Path, *, exts: Sequence[str] = IMAGE_EXTS, check_gaps: bool = True) -> list[Path]:
    """Image files in `folder`, junk skipped, sorted numerically; raises on an empty folder or a gap."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files = [p for p in folder.iterdir() if p.is_file() and not is_junk(p.name) and p.suffix.lower() in exts]
    if not files:
        raise DataError(f"{folder}: no frames (expected files ending in {', '.join(exts)})")
    files.sort(key=frame_number)
    numbers = [frame_number(p) for p in files]
    if check_gaps:
        for prev, (num, path) in zip(numbers, zip(numbers[1:], files[1:])):
            if num == prev:
                raise DataError(f"{path}: duplicate frame number {num} in {folder}")
            if num != prev + 1:
                raise DataError(f"{folder}: gap in frame numbering, {prev} is followed by {num} ({path.name})")
    return files


def read_image(path: Path, channels: int = 1) -> np.ndarray:
    """Decode one image as uint8, (H, W) for grayscale or (H, W, 3) RGB; raises DataError if unreadable."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    image = cv2.imread(str(path), flag)
    if image is None:
        raise DataError(f"{path}: cannot decode image")
    if channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


@dataclass(frozen=True)
class Video:
    """One video of the common layout: sorted frame files and, for test videos, its annotations."""

    name: str
    split: str  # "training" | "testing" | "abnormal"
    frames: tuple[Path, ...]
    labels: np.ndarray | None = field(default=None, repr=False)  # (N,) uint8 0/1, one per frame
    masks: tuple[Path, ...] | None = field(default=None, repr=False)  # one per frame, or None
    types: np.ndarray | None = field(default=None, repr=False)  # (N,) str, "normal" or the anomaly type

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def n_anomalous(self) -> int:
        return int(self.labels.sum()) if self.labels is not None else 0


@dataclass(frozen=True)
class Layout:
    """A dataset root in the common layout."""

    root: Path
    training: tuple[Video, ...]
    testing: tuple[Video, ...]
    abnormal: tuple[Video, ...] = ()
    meta: dict = field(default_factory=dict, repr=False)

    def split(self, name: str) -> tuple[Video, ...]:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        return getattr(self, name)

    def video(self, name: str, split: str = "testing") -> Video:
        """A video of `split` by name."""
        for video in self.split(split):
            if video.name == name:
                return video
        names = ", ".join(v.name for v in self.split(split))
        raise DataError(f"{self.root}: no {split} video {name!r}; videos: {names}")

    def labels(self, split: str = "testing") -> dict[str, np.ndarray]:
        """{video: per-frame 0/1 labels} of a split, what `vadlab.eval.metrics` takes."""
        return {v.name: v.labels for v in self.split(split)}

    def types(self, split: str = "testing") -> dict[str, np.ndarray] | None:
        """{video: per-frame anomaly type} of a split, or None when the dataset records no types."""
        return {v.name: v.types for v in self.split(split) if v.types is not None} or None

    def summary(self) -> dict:
        """Videos, frames and anomalous frames per split (what `vadlab data check` prints)."""
        out = {}
        for split in SPLITS:
            videos = self.split(split)
            if split == "abnormal" and not videos:
                continue
            out[split] = {
                "videos": len(videos),
                "frames": sum(len(v) for v in videos),
                "anomalous_frames": sum(v.n_anomalous for v in videos),
                "videos_with_masks": sum(v.masks is not None for v in videos),
            }
        return out


def _video_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    folders = (p for p in folder.iterdir() if p.is_dir() and not is_junk(p.name))
    return sorted(folders, key=lambda p: natural_key(p.name))


def natural_key(name: str) -> list:
    """Sort key that orders `2` before `10`."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _load_labels(path: Path, n_frames: int) -> np.ndarray:
    try:
        labels = np.load(path, allow_pickle=False)
    except Exception as exc:  # corrupt npy
        raise DataError(f"{path}: cannot read labels ({exc})") from exc
    if not isinstance(labels, np.ndarray):  # np.load opened an .npz archive
        labels.close()
        raise DataError(f"{path}: cannot read labels (an .npz archive, expected a .npy array)")
    if labels.dtype.kind not in "biuf":
        raise DataError(f"{path}: labels must be numbers or booleans (0/1), got dtype {labels.dtype}")
    if sum(d > 1 for d in labels.shape) > 1:
        raise DataError(f"{path}: labels have shape {labels.shape}, expected one label per frame (N,)")
    labels = labels.reshape(-1)
    if labels.shape[0] != n_frames:
        raise DataError(f"{path}: {labels.shape[0]} labels but {n_frames} frames in the video")
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"{path}: labels must be 0 or 1, found {sorted(set(np.unique(labels).tolist()))[:5]}")
    return labels.astype(np.uint8)


def _load_video(root: Path, split: str, folder: Path) -> Video:
    frames = tuple(list_images(folder))
    name = folder.name
    labels = masks = types = None
    label_file = root / split / "labels" / f"{name}.npy"
    if label_file.exists():
        labels = _load_labels(label_file, len(frames))
    elif split != "training":
        raise DataError(f"{label_file}: missing label file for {split} video {name!r}")
    mask_dir = root / split / "masks" / name
    if mask_dir.is_dir():
        masks = tuple(list_images(mask_dir))
        if len(masks) != len(frames):
            raise DataError(f"{mask_dir}: {len(masks)} masks but {len(frames)} frames in {folder}")
    type_file = root / split / "types" / f"{name}.npy"
    if type_file.exists():
        types = np.load(type_file, allow_pickle=False).reshape(-1)
        if types.shape[0] != len(frames):
            raise DataError(f"{type_file}: {types.shape[0]} entries but {len(frames)} frames in the video")
    return Video(name=name, split=split, frames=frames, labels=labels, masks=masks, types=types)


def load_layout(root: str | os.PathLike) -> Layout:
    """Read a dataset root in the common layout; raises DataError naming what is wrong."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: dataset root does not exist")
    missing = [s for s in ("training", "testing") if not (root / s / "frames").is_dir()]
    if missing:
        raise DataError(
            f"{root}: not a vadlab dataset root, missing {', '.join(f'{s}/frames/' for s in missing)} "
            "(import an official download with `vadlab data import`)"
        )
    videos = {}
    for split in SPLITS:
        dirs = _video_dirs(root / split / "frames")
        if split in ("training", "testing") and not dirs:
            raise DataError(f"{root / split / 'frames'}: no video folders")
        videos[split] = tuple(_load_video(root, split, d) for d in dirs)
    meta = {}
    if (root / "meta.json").exists():
        meta = json.loads((root / "meta.json").read_text())
    return Layout(root=root, training=videos["training"], testing=videos["testing"],
                  abnormal=videos["abnormal"], meta=meta)


def as_layout(data: "Layout | str | os.PathLike") -> Layout:
    """`data` itself if it is a Layout already, else `load_layout(data)`."""
    return data if isinstance(data, Layout) else load_layout(data)


def check_layout(root: str | os.PathLike, *, decode: bool = True) -> Layout:
    """`load_layout` plus a decode of every frame and mask: unreadable files and mixed sizes raise DataError."""
    layout = load_layout(root)
    for split in SPLITS:
        for video in layout.split(split):
            shape = None
            for path in video.frames + (video.masks or ()):
                if not decode:
                    if path.stat().st_size == 0:
                        raise DataError(f"{path}: empty file (0 bytes)")
                    continue
                hw = read_image(path, channels=1).shape[:2]
                if shape is None:
                    shape, first = hw, path
                elif hw != shape:
                    raise DataError(f"{path}: size {hw[1]}x{hw[0]} differs from {first.name} ({shape[1]}x{shape[0]})")
    return layout


class LayoutWriter:
    """Write a dataset in the common layout atomically: everything goes to a sibling temp folder and is
    moved into place by `os.replace` only when the `with` block ends without error.

    >>> with LayoutWriter("data/mine") as w:
    ...     w.add_frames("training", "v01", frames)          # iterable of uint8 (H, W) or (H, W, 3) RGB
    ...     w.add_frames("testing", "t01", frames, labels=labels, masks=masks, types=types)
    """

    def __init__(self, root: str | os.PathLike, *, overwrite: bool = False, ext: str = ".png"):
        self.root = Path(root).expanduser()
        self.overwrite = overwrite
        self.ext = ext
        if self.root.exists() and not overwrite:
            raise DataError(f"{self.root}: already exists (pass overwrite=True / --overwrite to replace it)")
        self.tmp = self.root.with_name(f"{self.root.name}.partial-{os.getpid()}")

    def __enter__(self) -> "LayoutWriter":
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = None
        if self.root.exists() and not self.overwrite:  # someone else wrote it meanwhile: keep theirs
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise DataError(f"{self.root}: appeared while writing; left as it is")
        if self.root.exists():
            old = self.root.with_name(f"{self.root.name}.old-{os.getpid()}")
            os.replace(self.root, old)
        os.replace(self.tmp, self.root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def _write_image(path: Path, image: np.ndarray) -> None:
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix.lower() in (".jpg", ".jpeg") else []
        if not cv2.imwrite(str(path), image, params):
            raise DataError(f"{path}: could not write image")

    def add_frames(self, split: str, video: str, frames: Iterable[np.ndarray], *, labels=None, masks=None,
                   types=None, ext: str | None = None) -> int:
        """Write decoded uint8 frames (RGB order for colour) as `00000.png`...; returns the frame count."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        folder = self.tmp / split / "frames" / video
        folder.mkdir(parents=True, exist_ok=False)
        n = 0
        for n, frame in enumerate(frames, start=1):
            self._write_image(folder / f"{n - 1:05d}{ext or self.ext}", np.asarray(frame))
        if n == 0:
            raise DataError(f"video {video!r} ({split}): no frames to write")
        self._annotations(split, video, n, labels, masks, types)
        return n

    def copy_frames(self, split: str, video: str, sources: Sequence[Path], *, labels=None, masks=None,
                    types=None) -> int:
        """Copy already-encoded frame files byte for byte (keeps their extension), renumbered from 0."""
        folder = self.tmp / split / "frames" / video
        folder.mkdir(parents=True, exist_ok=False)
        for i, src in enumerate(sources):
            if Path(src).stat().st_size == 0:
                raise DataError(f"{src}: empty file (0 bytes)")
            shutil.copyfile(src, folder / f"{i:05d}{Path(src).suffix.lower()}")
        self._annotations(split, video, len(sources), labels, masks, types)
        return len(sources)

    def _annotations(self, split, video, n, labels, masks, types) -> None:
        if labels is not None:
            labels = np.asarray(labels).reshape(-1).astype(np.uint8)
            if labels.shape[0] != n:
                raise DataError(f"video {video!r}: {labels.shape[0]} labels for {n} frames")
            (self.tmp / split / "labels").mkdir(parents=True, exist_ok=True)
            np.save(self.tmp / split / "labels" / f"{video}.npy", labels)
        if types is not None:
            types = np.asarray(types, dtype=str).reshape(-1)
            if types.shape[0] != n:
                raise DataError(f"video {video!r}: {types.shape[0]} type entries for {n} frames")
            (self.tmp / split / "types").mkdir(parents=True, exist_ok=True)
            np.save(self.tmp / split / "types" / f"{video}.npy", types)
        if masks is not None:
            folder = self.tmp / split / "masks" / video
            folder.mkdir(parents=True, exist_ok=False)
            count = 0
            for count, mask in enumerate(masks, start=1):
                self._write_image(folder / f"{count - 1:05d}.png", (np.asarray(mask) > 0).astype(np.uint8) * 255)
            if count != n:
                raise DataError(f"video {video!r}: {count} masks for {n} frames")

    def write_meta(self, meta: dict) -> None:
        (self.tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
