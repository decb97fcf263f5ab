"""Calibrated frame scores for new footage: each raw signal mapped to its quantile among the normal training frames.

The evaluation protocol (`vadlab.eval.scores.fuse`) min-max normalises each signal per test video, which needs the
whole video and only ranks frames inside it. New footage has neither, so `vadlab score` uses a fixed reference
instead: the run's scores on its own normal training frames (`Calibration`, stored by training as
`calibration.npz`).

- Per signal: q_k(x) = the share of training frames whose raw signal k is <= x (the empirical CDF). A frame more
  anomalous than every training frame gets 1, one below every training frame 0; q_k is non-decreasing in x.
- Calibrated score: sum_k w_k q_k / sum_k w_k over the signals the method fuses (weight > 0, `fusion_weights`):
  the quantiles take the place of the per-video min-max, so the score is in [0, 1] frame by frame.
- Quantile of a frame: the share of training frames whose calibrated score is <= the frame's. A frame is flagged
  when its calibrated score is above `level(threshold)`, the `threshold` quantile of the training frames' calibrated
  scores (0.99: about 1 % of normal training frames are above it).

The reference is optimistic: the model was fitted to these very frames, so unseen normal footage scores somewhat
higher than they did, and more than 1 - threshold of it is flagged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from vadlab.errors import DataError
from vadlab.io import atomic_path

CALIBRATION = "calibration.npz"  # the file in a run folder
FORMAT = 1  # bump when the file's content changes: an older file is computed again


def cdf(reference: np.ndarray, values) -> np.ndarray:
    """Empirical CDF of sorted `reference` (finite, ascending) at `values`: share of reference <= value, NaN kept."""
    values = np.asarray(values, np.float64)
    out = np.searchsorted(reference, values, side="right") / max(len(reference), 1)
    return np.where(np.isnan(values), np.nan, out)


@dataclass
class Calibration:
    """The distribution of a run's raw signals on its normal training frames, and the method's fusion weights."""

    frames: dict[str, np.ndarray]  # signal -> raw value per training frame (N,), aligned across signals, NaN unscored
    weights: dict[str, float]  # the method's fusion weights (`Method.fusion_weights`)
    map_scale: float | None = None  # 99.9th percentile of the anomaly map's pixels on training frames (display)
    meta: dict = field(default_factory=dict)  # videos, seconds, epochs_trained, ...
    signals: dict[str, np.ndarray] = field(init=False, repr=False)  # signal -> sorted finite values (the reference)
    fused: np.ndarray = field(init=False, repr=False)  # sorted finite calibrated scores of the training frames

    def __post_init__(self):
        missing = sorted(k for k, w in self.weights.items() if w > 0 and k not in self.frames)
        if missing:
            raise DataError(f"calibration: no training distribution for fused signal(s) {missing}")
        if not any(w > 0 for w in self.weights.values()):
            raise DataError(f"calibration: all fusion weights are 0: {self.weights}")
        self.frames = {k: np.asarray(v, np.float64).reshape(-1) for k, v in self.frames.items()}
        if len({len(v) for v in self.frames.values()}) > 1:
            raise DataError("calibration: signals of different lengths "
                            f"{ {k: len(v) for k, v in self.frames.items()} }")
        self.signals = {k: np.sort(v[np.isfinite(v)]) for k, v in self.frames.items()}
        empty = sorted(k for k, w in self.weights.items() if w > 0 and len(self.signals[k]) == 0)
        if empty:
            raise DataError(f"calibration: no training frame was scored for signal(s) {empty}")
        fused = self._fuse(self.quantiles(self.frames))  # (N,) the training frames' own calibrated scores
        self.fused = np.sort(fused[np.isfinite(fused)])

    def quantiles(self, raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-signal quantiles q_k (N,) in [0, 1] of raw signals {name: (N,)} (NaN stays NaN)."""
        return {name: cdf(self.signals[name], values) for name, values in raw.items() if name in self.signals}

    def _fuse(self, quantiles: Mapping[str, np.ndarray]) -> np.ndarray:
        """sum_k w_k q_k / sum_k w_k over the signals with a weight > 0: (N,) in [0, 1]; NaN where any is NaN."""
        used = {k: float(w) for k, w in self.weights.items() if w > 0}
        return sum(w * np.asarray(quantiles[k], np.float64) for k, w in used.items()) / sum(used.values())

    def score(self, raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Calibrated scores of raw signals {name: (N,)}: {"q_<signal>": per-signal quantile, "calibrated": the
        weighted mean of the fused signals' quantiles, "quantile": its share among the training frames} (N,) each."""
        quantiles = self.quantiles(raw)
        calibrated = self._fuse(quantiles)
        out = {f"q_{k}": v for k, v in quantiles.items()}
        out["calibrated"] = calibrated
        out["quantile"] = cdf(self.fused, calibrated)
        return out

    def level(self, threshold: float) -> float:
        """The calibrated score above which a frame is flagged: the `threshold` quantile of the training frames'."""
        if not 0.0 <= threshold <= 1.0:
            raise DataError(f"threshold {threshold!r}: a quantile, between 0 and 1 (e.g. 0.99)")
        return float(np.quantile(self.fused, threshold))

    # --- the file ------------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write as one `.npz` (atomically): `signal/<name>` arrays, the rest as JSON in `meta`."""
        meta = {"format": FORMAT, "weights": self.weights, "map_scale": self.map_scale, **self.meta}
        arrays = {f"signal/{k}": v for k, v in self.frames.items()}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta, sort_keys=True, default=str)), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        """Read a file `save` wrote; a damaged or older-format file raises DataError naming it."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                frames = {k.partition("/")[2]: npz[k] for k in npz.files if k.startswith("signal/")}
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: cannot read the calibration ({exc})") from None
        if meta.get("format") != FORMAT:
            raise DataError(f"{path}: calibration format {meta.get('format')!r}, this version writes {FORMAT}")
        weights = meta.pop("weights")
        map_scale = meta.pop("map_scale")
        return cls(frames, weights, map_scale, meta)
