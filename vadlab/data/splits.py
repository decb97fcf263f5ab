"""Few-anomaly protocols as data tools any method can use: each writes a derived dataset in the common layout (so a
run's `run.json` names a root that evaluation reads again), atomically, with its provenance in `meta.json`.

- `kfold_split` (DREAM Sec. IV-C, `vadlab data split kfold`): the abnormal test data cut into K folds; fold I joins
  training (as the `abnormal/` pool), the rest stays in test. `unit="segment"` (default, vadlab's): a unit is a whole
  anomalous segment (a contiguous run of anomalous frames of one test video); the frames of a moved segment leave
  the test set together with `margin` frames on each side, and what remains of that test video is kept as pieces
  (`<video>_f<first>-<last>`, source frame numbers), each a video of its own (clips never bridge a gap).
  `unit="video"` (the paper's, following MLEP's code): a unit is a whole test video holding anomalies; fold I's
  videos move to `abnormal/` with their labels (normal frames included), the others stay in test. Units are in
  (video, start) order and cut into K consecutive groups (`np.array_split`, as MLEP does with its sorted videos).
- `rate_split` (Sec. IV-E, `vadlab data split rate`): the anomalous segments shuffled (seed); half are kept for test,
  the other half is the pool (it leaves the test set with its margins); training gets a draw from the pool of
  round(R N / (1 - R)) anomalous frames, N the normal training frames, so that abnormal / (normal + abnormal) = R
  to one frame (whole segments in the drawn order, the last one cut to a contiguous run). An infeasible R stops with
  the highest feasible one.
- `pool_split` (`vadlab data split pool`): the dataset with its `abnormal/` pool restricted to some anomaly types
  (synthetic data: train on some types, test on all, the unseen-type experiment of Sec. III-E).

`meta.json` of a derived root: `derived_from` (source root), `protocol`, its arguments, `units` moved to training,
and `videos`: for every derived video its source video and source frame range, which tests use to check that no
test frame lies within the margin of a training frame of the same video.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vadlab.data.layout import Layout, LayoutWriter, Video, load_layout, read_image
from vadlab.errors import DataError

__all__ = ["Segment", "segments", "kfold_split", "rate_split", "pool_split", "derived_meta", "source_timeline"]


@dataclass(frozen=True)
class Segment:
    """A contiguous run of anomalous frames [start, stop) of one test video."""

    video: str
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def segments(videos: Sequence[Video]) -> list[Segment]:
    """The anomalous segments of `videos`, in (video order, start) order."""
    out = []
    for video in videos:
        labels = np.asarray(video.labels, dtype=np.int8)
        edges = np.diff(np.concatenate([[0], labels, [0]]))  # +1 at a start, -1 after an end
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            out.append(Segment(video.name, int(start), int(stop)))
    return out


def _pieces(n: int, removed: list[tuple[int, int]], min_frames: int) -> list[tuple[int, int]]:
    """The runs [a, b) of 0..n-1 outside every removed [a, b), at least `min_frames` long."""
    keep = np.ones(n, dtype=bool)
    for a, b in removed:
        keep[max(a, 0):min(b, n)] = False
    edges = np.diff(np.concatenate([[0], keep.astype(np.int8), [0]]))
    runs = zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))
    return [(int(a), int(b)) for a, b in runs if b - a >= min_frames]


def _copy(writer: LayoutWriter, split: str, name: str, video: Video, a: int, b: int) -> None:
    """Frames [a, b) of `video` with their labels, masks and types as video `name` of `split`."""
    labels = None if video.labels is None else video.labels[a:b]
    if split == "abnormal" and labels is None:
        labels = np.zeros(b - a, np.uint8)
    masks = None if video.masks is None else [read_image(p) for p in video.masks[a:b]]
    types = None if video.types is None else video.types[a:b]
    writer.copy_frames(split, name, video.frames[a:b], labels=labels, masks=masks, types=types)


def _piece_name(video: Video, a: int, b: int) -> str:
    return video.name if (a, b) == (0, len(video)) else f"{video.name}_f{a:04d}-{b - 1:04d}"


def _write(layout: Layout, out, *, train_units: list[tuple[Video, int, int]], removed: dict[str, list],
           meta: dict, min_frames: int, overwrite: bool) -> Layout:
    """Training videos copied; `train_units` (video, a, b) into abnormal/; test videos minus `removed` as pieces."""
    videos_meta = {}
    with LayoutWriter(out, overwrite=overwrite) as writer:
        for video in layout.training:
            _copy(writer, "training", video.name, video, 0, len(video))
            videos_meta[f"training/{video.name}"] = {"source": f"training/{video.name}", "frames": [0, len(video)]}
        for video, a, b in train_units:
            name = _piece_name(video, a, b)
            _copy(writer, "abnormal", name, video, a, b)
            videos_meta[f"abnormal/{name}"] = {"source": f"{video.split}/{video.name}", "frames": [a, b]}
        dropped = 0
        for video in layout.testing:
            pieces = _pieces(len(video), removed.get(video.name, []), min_frames)
            kept = sum(b - a for a, b in pieces)
            dropped += len(video) - kept
            for a, b in pieces:
                name = _piece_name(video, a, b)
                _copy(writer, "testing", name, video, a, b)
                videos_meta[f"testing/{name}"] = {"source": f"testing/{video.name}", "frames": [a, b]}
        if not any(k.startswith("testing/") for k in videos_meta):
            raise DataError(f"{layout.root}: nothing is left for the test set with {meta['protocol']} {meta['args']}")
        meta = {**meta, "derived_from": str(layout.root.resolve()), "source_meta": layout.meta.get("generator"),
                "test_frames_removed": dropped, "videos": videos_meta}
        writer.write_meta(meta)
    return load_layout(out)


def kfold_split(root, out, *, k: int, fold: int, unit: str = "segment", margin: int = 5, min_frames: int = 8,
                overwrite: bool = False) -> Layout:
    """Sec. IV-C: fold `fold` (0-based) of `k` joins training, the rest stays in test (module docstring)."""
    layout = load_layout(root)
    if k < 2:
        raise DataError(f"--k {k}: needs at least 2 folds")
    if not 0 <= fold < k:
        raise DataError(f"--fold {fold}: must be in 0..{k - 1} for --k {k}")
    if margin < 0:
        raise DataError(f"--margin {margin}: must be >= 0")
    by_name = {v.name: v for v in layout.testing}
    if unit == "segment":
        units = segments(layout.testing)
        kind = "anomalous segments"
    elif unit == "video":
        units = [Segment(v.name, 0, len(v)) for v in layout.testing if v.n_anomalous]
        kind = "test videos with anomalies"
    else:
        raise DataError(f"--unit {unit!r}: must be 'segment' or 'video'")
    if len(units) < k:
        raise DataError(f"{layout.root}: {len(units)} {kind}, fewer than --k {k} folds; use --k <= {len(units)}"
                        + (" or --unit segment" if unit == "video" else ""))
    groups = np.array_split(np.arange(len(units)), k)
    moved = [units[i] for i in groups[fold]]
    removed: dict[str, list] = {}
    for seg in moved:
        removed.setdefault(seg.video, []).append((seg.start - margin, seg.stop + margin))
    meta = {"protocol": "kfold", "args": {"k": k, "fold": fold, "unit": unit, "margin": margin,
                                          "min_frames": min_frames},
            "units": [[s.video, s.start, s.stop] for s in moved], "units_total": len(units)}
    return _write(layout, out, train_units=[(by_name[s.video], s.start, s.stop) for s in moved], removed=removed,
                  meta=meta, min_frames=min_frames, overwrite=overwrite)


def rate_split(root, out, *, rate: float, seed: int = 0, margin: int = 5, min_frames: int = 8,
               overwrite: bool = False) -> Layout:
    """Sec. IV-E: half the anomalous segments kept for test, the other half the pool, training gets a draw of
    abnormal / (normal + abnormal) = `rate` anomalous frames from the pool (module docstring)."""
    layout = load_layout(root)
    if not 0 < rate < 1:
        raise DataError(f"--rate {rate}: must be in (0, 1) (the paper: 0.01 to 0.25)")
    units = segments(layout.testing)
    if len(units) < 2:
        raise DataError(f"{layout.root}: {len(units)} anomalous segment(s); the rate protocol needs 2 or more")
    order = np.random.default_rng(seed).permutation(len(units))
    pool = [units[i] for i in order[:len(units) // 2]]  # the held half goes to the pool, the rest stays in test
    n_normal = sum(len(v) for v in layout.training)
    need = int(round(rate * n_normal / (1 - rate)))
    available = sum(len(s) for s in pool)
    if need > available:
        raise DataError(f"{layout.root}: --rate {rate} needs {need} anomalous training frames beside {n_normal} "
                        f"normal ones, the pool (half the anomalous test segments, seed {seed}) holds {available}; "
                        f"the highest feasible rate is {available / (n_normal + available):.4f}")
    by_name = {v.name: v for v in layout.testing}
    train_units, taken = [], 0
    for seg in pool:
        if taken >= need:
            break
        n = min(len(seg), need - taken)
        train_units.append((by_name[seg.video], seg.start, seg.start + n))
        taken += n
    removed: dict[str, list] = {}
    for seg in pool:
        removed.setdefault(seg.video, []).append((seg.start - margin, seg.stop + margin))
    meta = {"protocol": "rate", "args": {"rate": rate, "seed": seed, "margin": margin, "min_frames": min_frames},
            "units": [[v.name, a, b] for v, a, b in train_units], "pool": [[s.video, s.start, s.stop] for s in pool],
            "abnormal_frames": taken, "normal_frames": n_normal, "rate_actual": taken / (n_normal + taken)}
    return _write(layout, out, train_units=train_units, removed=removed, meta=meta, min_frames=min_frames,
                  overwrite=overwrite)


def pool_split(root, out, *, types: Sequence[str], overwrite: bool = False) -> Layout:
    """The dataset with its `abnormal/` pool restricted to videos whose anomalous frames are all of `types`."""
    layout = load_layout(root)
    if not layout.abnormal:
        raise DataError(f"{layout.root}: no abnormal/ pool to filter")
    wanted = set(types)
    known = {str(t) for v in layout.abnormal if v.types is not None for t in np.unique(v.types)} - {"normal"}
    unknown = sorted(wanted - known)
    if unknown:
        raise DataError(f"{layout.root}: --types {','.join(unknown)} not in the abnormal/ pool; its types: "
                        f"{', '.join(sorted(known))}")

    def pool_types(v: Video) -> set[str]:
        return {str(t) for t in np.unique(np.asarray(v.types)[np.asarray(v.labels) == 1])}

    keep = [v for v in layout.abnormal if v.types is not None and pool_types(v) <= wanted]
    videos_meta = {}
    with LayoutWriter(out, overwrite=overwrite) as writer:
        for split, videos in (("training", layout.training), ("testing", layout.testing), ("abnormal", keep)):
            for video in videos:
                _copy(writer, split, video.name, video, 0, len(video))
                videos_meta[f"{split}/{video.name}"] = {"source": f"{split}/{video.name}", "frames": [0, len(video)]}
        writer.write_meta({"protocol": "pool", "args": {"types": sorted(wanted)}, "derived_from": str(layout.root),
                           "pool_videos": [v.name for v in keep], "videos": videos_meta})
    return load_layout(out)


def derived_meta(root: str | os.PathLike) -> dict:
    """`meta.json` of a derived root (DataError when `root` is not one)."""
    file = Path(root) / "meta.json"
    meta = json.loads(file.read_text()) if file.exists() else {}
    if "derived_from" not in meta:
        raise DataError(f"{root}: not a dataset written by `vadlab data split`")
    return meta


def source_timeline(root, values: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Per-frame `values` ({derived test video: (n,)}, e.g. scores) of the pieces of one source test video put back
    on its source frame numbers: `values` (N,) NaN where no piece lies, `test` (N,) bool the frames in test,
    `training` (N,) bool the frames moved to training (abnormal/). N = the last source frame listed + 1."""
    videos = derived_meta(root)["videos"]
    mine = {k: v for k, v in videos.items() if v["source"].endswith("/" + source)}
    if not mine:
        raise DataError(f"{root}: no derived video comes from {source!r}")
    n = max(v["frames"][1] for v in mine.values())
    out = {"values": np.full(n, np.nan), "test": np.zeros(n, bool), "training": np.zeros(n, bool)}
    for name, info in mine.items():
        split, video = name.split("/", 1)
        a, b = info["frames"]
        if split == "testing":
            out["test"][a:b] = True
            if video in values:
                out["values"][a:b] = values[video]
        elif split == "abnormal":
            out["training"][a:b] = True
    return out
