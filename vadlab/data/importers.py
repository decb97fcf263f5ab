"""Importers: convert the official dataset downloads into the common layout (see `vadlab.data.layout`).

Supported sources (`kind`):

- ``"ucsd"``: UCSD Ped1/Ped2. `src` is the ``UCSDpedN`` folder (``Train/TrainNNN/NNN.tif``,
  ``Test/TestNNN/NNN.tif``, pixel masks ``Test/TestNNN_gt/NNN.bmp`` where present, frame truth
  ``Test/UCSDpedN.m``). The parent ``UCSD_Anomaly_Dataset.v1p2`` is accepted too when it holds exactly one
  ``UCSDped*`` folder, or when `name` says which one (``"ped1"``/``"ped2"``, ``"UCSDped2"`` also works).
- ``"avenue"``: CUHK Avenue (``training_videos/NN.avi``, ``testing_videos/NN.avi``,
  ``ground_truth_demo/testing_label_mask/N_label.mat``; the ``testing_label_mask`` folder may also sit
  directly in `src`). Videos are decoded with OpenCV and written as .jpg (OpenCV's default quality, 95).
- ``"shanghaitech"``: ShanghaiTech Campus (``training/videos/*.avi``, ``testing/frames/<vid>/NNN.jpg``,
  ``testing/test_frame_mask/<vid>.npy``, ``testing/test_pixel_mask/<vid>.npy``).
- ``"preprocessed"``: the widely shared frame copy ``<ds>/{training,testing}/frames/<vid>/NNN.jpg`` plus the
  concatenated ``frame_labels_<ds>.npy`` (in `<ds>` or its parent), split over the test videos in
  numeric-aware sorted order.

Frames that are already image files are copied byte for byte; pixel masks are re-written as 0/255 png.
Everything is written through `LayoutWriter`, so a failure leaves no destination and no partial folder.
Every problem is a `DataError` whose message names the file or folder.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from vadlab.data.layout import (
    Layout,
    LayoutWriter,
    frame_number,
    is_junk,
    list_images,
    load_layout,
    natural_key,
    read_image,
)
from vadlab.errors import DataError

__all__ = ["KINDS", "detect_kind", "import_dataset"]

KINDS = ("ucsd", "avenue", "shanghaitech", "preprocessed")

_EXPECTED = {
    "ucsd": "a UCSD Ped1/Ped2 folder (UCSDpedN/ with Train/TrainNNN/, Test/TestNNN/ and Test/UCSDpedN.m)",
    "avenue": "a CUHK Avenue download (training_videos/*.avi, testing_videos/*.avi, "
              "ground_truth_demo/testing_label_mask/N_label.mat)",
    "shanghaitech": "a ShanghaiTech Campus download (training/videos/*.avi, testing/frames/<vid>/, "
                    "testing/test_frame_mask/<vid>.npy)",
    "preprocessed": "a preprocessed frame copy (<ds>/training/frames/<vid>/, <ds>/testing/frames/<vid>/ and "
                    "frame_labels_<ds>.npy next to them or in the parent folder)",
}
_DESCRIBE = {
    "ucsd": "a UCSD Ped1/Ped2 folder",
    "avenue": "a CUHK Avenue download",
    "shanghaitech": "a ShanghaiTech Campus download",
    "preprocessed": "a preprocessed frame copy",
}


# ----------------------------------------------------------------------------------------------- helpers

def _subdirs(folder: Path) -> list[Path]:
    """Non-junk sub-folders, numeric-aware sorted."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and not is_junk(p.name)),
                  key=lambda p: natural_key(p.name))


def _files(folder: Path, suffix: str) -> list[Path]:
    """Non-junk files ending in `suffix` (case-insensitive), numeric-aware sorted."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and not is_junk(p.name) and p.name.lower().endswith(suffix)),
                  key=lambda p: natural_key(p.name))


def _frame_files(folder: Path, *, one_based: bool = False) -> list[Path]:
    """`list_images` (junk skipped, gaps rejected), optionally requiring the numbering to start at 1."""
    files = list_images(folder)
    if one_based and frame_number(files[0]) != 1:
        raise DataError(f"{folder}: frame numbering starts at {frame_number(files[0])} ({files[0].name}), "
                        "expected 1 (a missing first frame would shift the labels)")
    return files


def _decode_video(path: Path) -> Iterator[np.ndarray]:
    """Decode a video file with OpenCV, yielding RGB uint8 frames."""
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"{path}: OpenCV cannot open this video")
        n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else frame
        if n == 0:
            raise DataError(f"{path}: no frames could be decoded")
    finally:
        cap.release()


def _expect_count(frames: Iterable[np.ndarray], expected: int, mismatch: Callable[[int], str],
                  shapes: list | None = None) -> Iterator[np.ndarray]:
    """Pass frames through, raising DataError(mismatch(actual_count)) if there are not exactly `expected`.

    The check runs while frames are written, so a long video is decoded only once; on an excess the rest is
    still counted so the message gives the true number. The first frame's (H, W) is appended to `shapes`.
    """
    n = 0
    it = iter(frames)
    for frame in it:
        n += 1
        if n == 1 and shapes is not None:
            shapes.append(np.asarray(frame).shape[:2])
        if n > expected:
            n += sum(1 for _ in it)
            raise DataError(mismatch(n))
        yield frame
    if n != expected:
        raise DataError(mismatch(n))


def _checked_masks(masks: Iterable[np.ndarray], frame_shape: Callable[[], tuple | None], where: str
                   ) -> Iterator[np.ndarray]:
    """Pass 2-D masks through, checking each against the frame size (known once the frames are written)."""
    for i, mask in enumerate(masks):
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise DataError(f"{where}: mask {i} has shape {mask.shape}, expected a 2-D (H, W) array")
        shape = frame_shape()
        if shape is not None and tuple(mask.shape) != tuple(shape):
            raise DataError(f"{where}: mask {i} is {mask.shape[1]}x{mask.shape[0]} but the frames are "
                            f"{shape[1]}x{shape[0]}")
        yield mask


def _binary(labels: np.ndarray, path: Path) -> np.ndarray:
    if labels.dtype.kind not in "biuf":
        raise DataError(f"{path}: labels must be numbers or booleans (0/1), got dtype {labels.dtype}")
    values = np.unique(labels)
    if not np.isin(values, (0, 1)).all():
        raise DataError(f"{path}: labels must be 0 or 1, found values {values[:6].tolist()}")
    return labels.astype(np.uint8)


def _progress(total: int, enabled: bool, desc: str):
    from vadlab.progress import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="video")


# ----------------------------------------------------------------------------------------------- detection

def _ucsd_folders(src: Path) -> list[Path]:
    """UCSDped* folders directly inside `src` (for the UCSD_Anomaly_Dataset.v1p2 parent)."""
    return [p for p in _subdirs(src) if p.name.lower().startswith("ucsdped") and _is_ucsd(p)]


def _is_ucsd(src: Path) -> bool:
    test = src / "Test"
    return (src / "Train").is_dir() and test.is_dir() and any(
        re.fullmatch(r"test\d+", p.name.lower()) for p in _subdirs(test))


def _sniff(src: Path) -> str | None:
    """The kind `src` looks like, or None."""
    if _is_ucsd(src) or _ucsd_folders(src):
        return "ucsd"
    if (src / "training_videos").is_dir() and (src / "testing_videos").is_dir():
        return "avenue"
    if (src / "training" / "videos").is_dir() or (src / "testing" / "test_frame_mask").is_dir():
        return "shanghaitech"
    if (src / "training" / "frames").is_dir() and (src / "testing" / "frames").is_dir():
        if _find_label_file(src) is not None or not (src / "testing" / "labels").is_dir():
            return "preprocessed"
    return None


def detect_kind(src: str | os.PathLike) -> str:
    """Which official layout `src` is (one of `KINDS`); raises DataError if it matches none."""
    src = _existing_dir(src)
    kind = _sniff(src)
    if kind is None:
        extra = ""
        if (src / "testing" / "labels").is_dir() and (src / "training" / "frames").is_dir():
            extra = " (it looks like a dataset already in the vadlab common layout: load it with load_layout)"
        raise DataError(f"{src}: not a known dataset download{extra}; expected one of: "
                        + "; ".join(f"{k}: {_EXPECTED[k]}" for k in KINDS))
    return kind


def _existing_dir(src: str | os.PathLike) -> Path:
    src = Path(src).expanduser()
    if not src.exists():
        raise DataError(f"{src}: source folder does not exist")
    if not src.is_dir():
        raise DataError(f"{src}: source is not a folder")
    return src


def _wrong_layout(src: Path, kind: str, missing: str) -> DataError:
    """The error for an importer pointed at something that is not its layout."""
    msg = f"{src}: expected {_EXPECTED[kind]}, but {missing}"
    seen = _sniff(src)
    if seen is not None and seen != kind:
        msg += f"; it looks like {_DESCRIBE[seen]} instead (use kind={seen!r})"
    return DataError(msg)


# ----------------------------------------------------------------------------------------------- UCSD

# A statement `TestVideoFile{end+1}.gt_frame = [...]` (or `{N}`), not part of a longer name, ending where the statement
# ends (`;`, `,` or the end of the line). Numbers are ASCII digits only, as MATLAB reads them, and at most 9 of them.
_GT_LINE = re.compile(r"(?<![\w.])TestVideoFile\s*\{\s*(end\s*\+\s*1|[0-9]{1,9})\s*\}\s*\.\s*gt_frame\s*=\s*"
                      r"\[([^\]]*)\](?=\s*(?:[;,]|$))")
_GT_CELL = re.compile(r"TestVideoFile\s*\{")
_FRAME_NUMBER = re.compile(r"[0-9]{1,9}")


def parse_ucsd_m(path: Path) -> dict[int, list[tuple[int, int]]]:
    """Parse `UCSDpedN.m` into {test video number (1-based): [(first, last), ...]} (1-based, inclusive).

    Lines look like ``TestVideoFile{end+1}.gt_frame = [61:180];``; Ped1 has several ranges on a line
    (``[5:90, 140:200]``). The i-th ``{end+1}`` entry belongs to Test00i. As in MATLAB, ``%`` starts a comment,
    ``%{`` / ``%}`` alone on their lines enclose a (nestable) block comment, several statements may share a line,
    and ``{end+1}`` after an explicit ``{N}`` is the highest index so far + 1. Anything else that mentions
    ``gt_frame`` or indexes ``TestVideoFile{...}`` is a DataError rather than a guess.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    out: dict[int, list[tuple[int, int]]] = {}
    block = 0  # depth of %{ ... %} block comments
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip() in ("%{", "%}"):
            block = block + 1 if line.strip() == "%{" else max(block - 1, 0)
            continue
        if block:
            continue
        line = line.split("%", 1)[0]  # MATLAB comment
        matches = list(_GT_LINE.finditer(line))
        if len(matches) != line.count("gt_frame") or len(matches) != len(_GT_CELL.findall(line)):
            raise DataError(f"{path}:{lineno}: cannot parse ground-truth line {line.strip()!r} (expected "
                            "`TestVideoFile{end+1}.gt_frame = [first:last, ...];`)")
        for match in matches:
            slot, body = match.groups()
            if slot.startswith("end"):
                index = max(out, default=0) + 1  # MATLAB: numel(TestVideoFile) + 1
            elif int(slot) < 1:
                raise DataError(f"{path}:{lineno}: cell index {{{slot}}} (MATLAB indices start at 1)")
            else:
                index = int(slot)
            ranges = []
            for item in re.split(r"[,;\s]+", body.strip()):
                if not item:
                    continue
                bounds = item.split(":")
                if len(bounds) > 2 or not all(_FRAME_NUMBER.fullmatch(b) for b in bounds):
                    raise DataError(f"{path}:{lineno}: cannot parse frame range {item[:40]!r} (expected first:last, "
                                    "1-based frame numbers)")
                first, last = int(bounds[0]), int(bounds[-1])
                if first < 1 or last < first:
                    raise DataError(f"{path}:{lineno}: invalid frame range {item!r} (1-based, first <= last)")
                ranges.append((first, last))
            out[index] = ranges
    if not out:
        raise DataError(f"{path}: no `TestVideoFile{{end+1}}.gt_frame = [...]` lines found")
    return out


def _resolve_ucsd(src: Path, name: str | None) -> Path:
    if _is_ucsd(src):
        return src
    candidates = _ucsd_folders(src)
    if not candidates:
        raise _wrong_layout(src, "ucsd", "Train/ and Test/TestNNN/ are missing")
    if name is not None:
        want = name.lower().removeprefix("ucsd")
        chosen = [p for p in candidates if p.name.lower().removeprefix("ucsd") == want]
        if len(chosen) == 1:
            return chosen[0]
    if len(candidates) == 1 and name is None:
        return candidates[0]
    raise DataError(f"{src}: holds {', '.join(p.name for p in candidates)}; point at one of them or pass "
                    f"name='ped1' / name='ped2' (got name={name!r})")


def _import_ucsd(src: Path, w: LayoutWriter, progress: bool) -> dict:
    train = sorted((p for p in _subdirs(src / "Train") if re.fullmatch(r"train\d+", p.name.lower())),
                   key=lambda p: natural_key(p.name))
    test_dir = src / "Test"
    test = [p for p in _subdirs(test_dir) if re.fullmatch(r"test\d+", p.name.lower())]
    if not train:
        raise DataError(f"{src / 'Train'}: no TrainNNN video folders")
    m_files = _files(test_dir, ".m")
    preferred = [p for p in m_files if p.stem.lower() == src.name.lower()]
    if preferred:
        m_file = preferred[0]
    elif len(m_files) == 1:
        m_file = m_files[0]
    else:
        raise DataError(f"{test_dir}: expected the frame-level ground truth {src.name}.m here"
                        + (f" (found several .m files: {', '.join(p.name for p in m_files)})" if m_files else ""))
    truth = parse_ucsd_m(m_file)

    bar = _progress(len(train) + len(test), progress, f"import {src.name}")
    with bar:
        for folder in train:
            w.copy_frames("training", folder.name, _frame_files(folder))
            bar.update()
        for folder in test:
            frames = _frame_files(folder, one_based=True)
            n = len(frames)
            number = int(re.search(r"\d+", folder.name).group())
            if number not in truth:
                raise DataError(f"{m_file}: no gt_frame line for {folder.name} (the file has {len(truth)} "
                                f"entries, the i-th belongs to Test00i)")
            labels = np.zeros(n, dtype=np.uint8)
            for first, last in truth[number]:
                if last > n:
                    raise DataError(f"{m_file}: {folder.name} range {first}:{last} goes beyond the {n} frames "
                                    f"in {folder}")
                labels[first - 1:last] = 1  # 1-based inclusive -> 0-based slice
            masks = None
            gt = test_dir / f"{folder.name}_gt"
            if gt.is_dir():
                mask_files = _frame_files(gt, one_based=True)
                if len(mask_files) != n:
                    raise DataError(f"{gt}: {len(mask_files)} masks but {n} frames in {folder}")
                frame_shape = read_image(frames[0]).shape[:2]
                masks = _checked_masks((read_image(p) for p in mask_files), lambda s=frame_shape: s, str(gt))
            w.copy_frames("testing", folder.name, frames, labels=labels, masks=masks)
            bar.update()
    return {"ground_truth": str(m_file)}


# ----------------------------------------------------------------------------------------------- Avenue

def _avenue_mask_dir(src: Path) -> Path:
    for cand in (src / "ground_truth_demo" / "testing_label_mask", src / "testing_label_mask"):
        if cand.is_dir():
            return cand
    raise DataError(f"{src}: missing ground_truth_demo/testing_label_mask/ (the N_label.mat pixel masks from "
                    "the Avenue ground_truth_demo archive)")


# scipy's MAT v5 reader (1.17) looks up the dtype of each numeric or char data element in a 20-slot C table by the
# type code read from the file, unchecked: one corrupted byte can then crash the interpreter with a segfault instead
# of raising (unfixed as of scipy 1.17: scipy/scipy#25829 is open, #25349 was closed unmerged). `_check_mat_codes`
# reads volLabel's tags the way scipy does before scipy sees the file, and turns such a code into a DataError.
_MI_CODES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 16, 17, 18})  # the data-type codes scipy has a dtype for
_MX_NUMERIC = range(6, 16)  # mxDOUBLE_CLASS ... mxUINT64_CLASS (logical masks are mxUINT8 with a flag)


class _MatTags:
    """Sequential reader of MAT v5 tags over raw bytes, or over one zlib-compressed element (decompressed lazily,
    so skipping a large mask does not hold it in memory)."""

    def __init__(self, data: bytes, order: str, pos: int = 0, compressed: bool = False):
        self.order, self.pos = order, pos
        self._zlib = zlib.decompressobj() if compressed else None
        self._pending, self._data = (data, b"") if compressed else (b"", data)

    def read(self, n: int) -> bytes:
        while self._zlib is not None and len(self._data) - self.pos < n and self._pending:
            self._data, self.pos = self._data[self.pos:], 0
            self._data += self._zlib.decompress(self._pending, max(n - len(self._data), 1 << 16))
            self._pending = self._zlib.unconsumed_tail
        if len(self._data) - self.pos < n:
            raise ValueError("unexpected end of data")
        self.pos += n
        return self._data[self.pos - n:self.pos]

    def skip(self, n: int) -> None:
        if self._zlib is None:
            if len(self._data) - self.pos < n:
                raise ValueError("unexpected end of data")
            self.pos += n
        while self._zlib is not None and n > 0:
            step = min(n, 1 << 20)
            self.read(step)
            n -= step

    def u4s(self) -> tuple[int, int]:
        return struct.unpack(self.order + "2I", self.read(8))

    def element(self, keep: int = 0) -> tuple[int, bytes]:
        """One data element (type code, data if at most `keep` bytes); small elements live in their tag."""
        tag = self.read(8)
        code, count = struct.unpack(self.order + "2I", tag)
        if code >> 16:
            if code >> 16 > 4:
                raise ValueError("malformed small data element")
            return code & 0xFFFF, tag[4:4 + (code >> 16)]
        if count <= keep:
            data = self.read(count)
        else:
            data = b""
            self.skip(count)
        try:
            self.skip(-count % 8)  # padding to 8 bytes (scipy seeks past it)
        except ValueError:
            pass
        return code, data

    def header(self) -> tuple[int, int, tuple[int, ...], bytes]:
        """(class, flags, dims, name) of a matrix whose miMATRIX tag was just read."""
        self.read(8)  # the array-flags tag
        flags, _ = self.u4s()
        if flags & 0xFF == 17:  # mxOPAQUE_CLASS: a name only
            return 17, flags, (), self.element(keep=64)[1]
        code, dims = self.element(keep=128)
        if code not in (5, 6):
            raise ValueError("dimensions are not int32")
        _, name = self.element(keep=64)
        return flags & 0xFF, flags, struct.unpack(f"{self.order}{len(dims) // 4}i", dims[:len(dims) // 4 * 4]), name


def _check_mat_codes(path: Path, raw: bytes) -> None:
    """Walk the volLabel variable of a MAT v5 file the way scipy's reader will; raise DataError where scipy would
    crash (a data-type code it has no dtype for) or allocate room for cells the file does not hold (it sizes the cell
    array from the declared dimensions first). Trouble before volLabel is left to scipy, which raises for it."""
    if len(raw) < 128 or 0 in raw[:4] or raw[125 if raw[126:127] == b"I" else 124] != 1:
        return  # MAT v4 (read in Python), v7.3, or not a MAT file at all: scipy's own version test
    top = _MatTags(raw, "<" if raw[126:128] == b"IM" else ">", pos=128)
    try:
        while True:
            if top.pos >= len(raw):
                return  # no volLabel: _load_vol_label says so
            code, count = top.u4s()
            start = top.pos
            var = _MatTags(raw[start:start + count], top.order, compressed=True) if code == 15 else top
            if count == 0 or (var.u4s()[0] if code == 15 else code) != 14:
                return
            mclass, _, dims, name = var.header()
            if name == b"volLabel":
                break
            top.pos = start + count
    except (ValueError, struct.error, zlib.error):
        return
    if mclass != 1:
        raise DataError(f"{path}: 'volLabel' should be a cell array of masks, got MATLAB class {mclass}")
    if min(dims, default=0) < 0:
        raise DataError(f"{path}: corrupted .mat file: 'volLabel' has dimensions {dims}")
    try:
        for i in range(math.prod(dims)):
            code, count = var.u4s()
            if code != 14:
                raise ValueError(f"cell {i + 1} is not a matrix")
            if count == 0:
                continue
            mclass, flags, _, _ = var.header()
            if mclass not in _MX_NUMERIC:
                raise DataError(f"{path}: 'volLabel' cell {i + 1} is not a numeric or logical mask "
                                f"(MATLAB class {mclass})")
            for _ in range(2 if flags & 0x800 else 1):  # real part, and the imaginary one if complex
                code, _ = var.element()
                if code not in _MI_CODES:
                    raise DataError(f"{path}: corrupted .mat file: 'volLabel' cell {i + 1} has data type code "
                                    f"{code}, which is not a MATLAB data type")
    except DataError:
        raise
    except (ValueError, struct.error, zlib.error) as exc:
        raise DataError(f"{path}: cannot read .mat file ('volLabel' is truncated or corrupted: {exc})") from exc


def _load_vol_label(path: Path) -> list[np.ndarray]:
    """The `volLabel` cell array (1 x n_frames, each an HxW mask) of an Avenue N_label.mat."""
    from scipy.io import loadmat

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if not raw:
        raise DataError(f"{path}: empty file (0 bytes)")
    _check_mat_codes(path, raw)
    try:
        data = loadmat(io.BytesIO(raw), variable_names=["volLabel"])
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5) files
        raise DataError(f"{path}: MATLAB v7.3 file, re-save it with -v7 ({exc})") from exc
    except Exception as exc:
        raise DataError(f"{path}: cannot read .mat file ({exc})") from exc
    if "volLabel" not in data:
        raise DataError(f"{path}: no variable 'volLabel' in the .mat file")
    cells = np.asarray(data["volLabel"])
    if cells.dtype != object:
        raise DataError(f"{path}: 'volLabel' should be a cell array of masks, got a {cells.dtype} array "
                        f"of shape {cells.shape}")
    masks = [np.asarray(c) for c in cells.reshape(-1)]
    if not masks:
        raise DataError(f"{path}: 'volLabel' is empty")
    for i, mask in enumerate(masks):
        # labels are np.any(mask) and written masks mask > 0: values must be >= 0 (no NaN) for the two to agree
        if mask.ndim != 2 or mask.size == 0 or mask.dtype.kind not in "biuf" or not (mask >= 0).all():
            raise DataError(f"{path}: 'volLabel' cell {i + 1} is a {mask.dtype} array of shape {mask.shape}, "
                            "expected a non-empty 2-D numeric or logical mask with values >= 0")
    return masks


def _import_avenue(src: Path, w: LayoutWriter, progress: bool) -> dict:
    train = _files(src / "training_videos", ".avi")
    test = _files(src / "testing_videos", ".avi")
    if not train:
        raise DataError(f"{src / 'training_videos'}: no .avi videos")
    if not test:
        raise DataError(f"{src / 'testing_videos'}: no .avi videos")
    mask_dir = _avenue_mask_dir(src)
    mats = {}
    for p in _files(mask_dir, ".mat"):
        m = re.fullmatch(r"(\d+)_label\.mat", p.name, flags=re.IGNORECASE)
        if m:
            mats[int(m.group(1))] = p  # "1_label.mat" belongs to "01.avi" (no zero padding)
    plan = []
    for video in test:
        if not video.stem.isdigit() or int(video.stem) not in mats:
            raise DataError(f"{video}: no matching mask file {mask_dir / (video.stem.lstrip('0') + '_label.mat')}")
        plan.append((video, mats[int(video.stem)]))

    bar = _progress(len(train) + len(test), progress, "import avenue")
    with bar:
        for video in train:
            w.add_frames("training", video.stem, _decode_video(video), ext=".jpg")
            bar.update()
        for video, mat in plan:
            masks = _load_vol_label(mat)
            n = len(masks)
            labels = np.array([bool(np.any(m)) for m in masks], dtype=np.uint8)
            shapes: list = []
            frames = _expect_count(
                _decode_video(video), n, shapes=shapes,
                mismatch=lambda k, v=video, f=mat, n=n: f"{v}: {k} frames decoded but {f} has {n} masks")
            w.add_frames("testing", video.stem, frames, labels=labels, ext=".jpg",
                         masks=_checked_masks(masks, lambda s=shapes: s[0] if s else None, str(mat)))
            del masks
            bar.update()
    return {"masks": str(mask_dir)}


# ----------------------------------------------------------------------------------------------- ShanghaiTech

def _load_npy(path: Path, **kwargs) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        array = np.load(path, allow_pickle=False, **kwargs)
    except Exception as exc:
        raise DataError(f"{path}: cannot read .npy file ({exc})") from exc
    if not isinstance(array, np.ndarray):  # np.load opened an .npz archive
        array.close()
        raise DataError(f"{path}: cannot read .npy file (an .npz archive, expected a .npy array)")
    return array


def _import_shanghaitech(src: Path, w: LayoutWriter, progress: bool) -> dict:
    train = _files(src / "training" / "videos", ".avi")
    if not train:
        raise DataError(f"{src / 'training' / 'videos'}: no .avi videos")
    frames_dir = src / "testing" / "frames"
    test = _subdirs(frames_dir)
    if not test:
        raise DataError(f"{frames_dir}: no test video folders")
    label_dir = src / "testing" / "test_frame_mask"
    pixel_dir = src / "testing" / "test_pixel_mask"
    if not label_dir.is_dir():
        raise DataError(f"{label_dir}: missing (per-frame test labels <vid>.npy)")

    bar = _progress(len(train) + len(test), progress, "import shanghaitech")
    with bar:
        for video in train:
            w.add_frames("training", video.stem, _decode_video(video), ext=".jpg")
            bar.update()
        for folder in test:
            frames = _frame_files(folder)
            n = len(frames)
            label_file = label_dir / f"{folder.name}.npy"
            labels = _load_npy(label_file)
            if labels.ndim != 1 or labels.shape[0] != n:
                raise DataError(f"{label_file}: {labels.shape[0] if labels.ndim else 0} labels (shape "
                                f"{labels.shape}) but {n} frames in {folder}")
            labels = _binary(labels, label_file)
            masks = None
            if pixel_dir.is_dir():  # official download: one (N, H, W) 0/1 array per test video
                pixel_file = pixel_dir / f"{folder.name}.npy"
                vol = _load_npy(pixel_file, mmap_mode="r")  # can be hundreds of MB: stream it
                if vol.ndim != 3 or vol.shape[0] != n:
                    raise DataError(f"{pixel_file}: shape {vol.shape}, expected ({n}, H, W) for the {n} frames "
                                    f"in {folder}")
                frame_shape = read_image(frames[0]).shape[:2]
                masks = _checked_masks(vol, lambda s=frame_shape: s, str(pixel_file))
            w.copy_frames("testing", folder.name, frames, labels=labels, masks=masks)
            bar.update()
    return {}


# ----------------------------------------------------------------------------------------------- preprocessed

def _find_label_file(src: Path) -> Path | None:
    """`frame_labels_<ds>.npy` in `src` (any single one, else the one named after `src`) or in its parent
    (only the one named after `src`, since the parent usually holds the label files of several datasets)."""
    own = f"frame_labels_{src.name}.npy".lower()
    inside = [p for p in _files(src, ".npy") if p.name.lower().startswith("frame_labels_")]
    for p in inside:
        if p.name.lower() == own:
            return p
    if len(inside) == 1:
        return inside[0]
    for p in _files(src.parent, ".npy"):
        if p.name.lower() == own:
            return p
    return None


def _import_preprocessed(src: Path, w: LayoutWriter, progress: bool) -> dict:
    train = _subdirs(src / "training" / "frames")
    test = _subdirs(src / "testing" / "frames")  # numeric-aware order = order of the concatenated labels
    if not train:
        raise DataError(f"{src / 'training' / 'frames'}: no video folders")
    if not test:
        raise DataError(f"{src / 'testing' / 'frames'}: no video folders")
    label_file = _find_label_file(src)
    if label_file is None:
        raise DataError(f"{src}: no frame_labels_{src.name}.npy in {src} or {src.parent} (the concatenated "
                        "frame labels of the preprocessed copy)")
    labels = _load_npy(label_file)
    # (1, N) for ped2/avenue, (N,) for shanghai
    if not (labels.ndim == 1 or (labels.ndim == 2 and labels.shape[0] == 1)):
        raise DataError(f"{label_file}: shape {labels.shape}, expected (N,) or (1, N)")
    labels = _binary(labels.reshape(-1), label_file)
    test_frames = [_frame_files(folder) for folder in test]
    total = sum(len(f) for f in test_frames)
    if labels.shape[0] != total:
        raise DataError(f"{label_file}: {labels.shape[0]} labels but {total} test frames in "
                        f"{len(test)} videos under {src / 'testing' / 'frames'}")

    bar = _progress(len(train) + len(test), progress, f"import {src.name}")
    with bar:
        for folder in train:
            w.copy_frames("training", folder.name, _frame_files(folder))
            bar.update()
        start = 0
        for folder, frames in zip(test, test_frames):
            w.copy_frames("testing", folder.name, frames, labels=labels[start:start + len(frames)])
            start += len(frames)
            bar.update()
    return {"label_file": str(label_file)}


# ----------------------------------------------------------------------------------------------- entry point

_IMPORTERS = {
    "ucsd": _import_ucsd,
    "avenue": _import_avenue,
    "shanghaitech": _import_shanghaitech,
    "preprocessed": _import_preprocessed,
}


def _check_layout_of(src: Path, kind: str) -> None:
    """Reject a source that is not `kind`'s layout before anything is written."""
    if kind == "avenue" and not ((src / "training_videos").is_dir() and (src / "testing_videos").is_dir()):
        raise _wrong_layout(src, kind, "training_videos/ or testing_videos/ is missing")
    if kind == "shanghaitech" and not ((src / "training" / "videos").is_dir()
                                       and (src / "testing" / "frames").is_dir()):
        raise _wrong_layout(src, kind, "training/videos/ or testing/frames/ is missing")
    if kind == "preprocessed":
        if not ((src / "training" / "frames").is_dir() and (src / "testing" / "frames").is_dir()):
            raise _wrong_layout(src, kind, "training/frames/ or testing/frames/ is missing")
        if (src / "testing" / "test_frame_mask").is_dir():
            raise _wrong_layout(src, kind, "it has testing/test_frame_mask/")


def import_dataset(kind: str, src: str | os.PathLike, dst: str | os.PathLike, *, overwrite: bool = False,
                   name: str | None = None, progress: bool = True) -> Layout:
    """Convert the official download at `src` into the common layout at `dst`; returns `load_layout(dst)`.

    `kind` is one of `KINDS` or ``"auto"`` (uses `detect_kind`). `name` is the dataset name recorded in
    meta.json (default: ped1/ped2, avenue, shanghaitech, or the folder name for preprocessed); for UCSD it also
    picks UCSDped1/UCSDped2 when `src` is their parent. The write is atomic: on any error `dst` is left as it
    was and no partial folder remains. Raises DataError naming the offending file or folder.
    """
    if kind == "auto":
        kind = detect_kind(src)
    if kind not in KINDS:
        raise DataError(f"unknown dataset kind {kind!r}; valid: {', '.join(KINDS)} (or 'auto')")
    src = _existing_dir(src)
    if kind == "ucsd":
        src = _resolve_ucsd(src, name)
        name = name or src.name.lower().removeprefix("ucsd")
    else:
        _check_layout_of(src, kind)
        name = name or {"avenue": "avenue", "shanghaitech": "shanghaitech"}.get(kind, src.name)
    dst = Path(dst).expanduser()
    src_abs, dst_abs = src.resolve(), dst.resolve()
    if dst_abs == src_abs or dst_abs in src_abs.parents:
        raise DataError(f"{dst}: the destination must not be the source or contain it ({src})")

    with LayoutWriter(dst, overwrite=overwrite) as writer:
        details = _IMPORTERS[kind](src, writer, progress)
        writer.write_meta({"source_kind": kind, "source": str(src_abs), "dataset": name,
                           "importer": "vadlab.data.importers", **details})
        load_layout(writer.tmp)  # validate before the atomic move: never commit something unreadable
    return load_layout(dst)
