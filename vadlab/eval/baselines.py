"""Baselines every report shows beside a method: frame-difference energy.

Frame difference: frames as grayscale in [0, 1] at `size` x `size` (INTER_AREA); the raw score of frame t >= 1 is
the mean squared difference between frame t and t-1, higher = more anomalous. Frame 0 of every video has no
predecessor: it is left unscored (NaN) and counted as left out, never filled in.
"""

from __future__ import annotations

import numpy as np

from vadlab.data.clips import load_frames
from vadlab.data.layout import Layout, Video
from vadlab.eval.metrics import evaluate


def frame_difference(frames: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> float64 (N,) mean squared frame difference, NaN for frame 0."""
    x = frames.astype(np.float64) / 255.0  # (N, H, W, C)
    scores = np.full(len(x), np.nan)
    scores[1:] = ((x[1:] - x[:-1]) ** 2).mean(axis=(1, 2, 3))
    return scores


def frame_difference_scores(videos: list[Video] | tuple[Video, ...], size: int = 64) -> dict[str, np.ndarray]:
    """Raw frame-difference scores per video name (NaN where unscorable)."""
    return {v.name: frame_difference(load_frames(v.frames, size, 1)) for v in videos}


def evaluate_frame_difference(layout: Layout, size: int = 64, only: dict[str, np.ndarray] | None = None) -> dict:
    """The evaluation report (`vadlab.eval.metrics.evaluate`) of the frame-difference baseline on the test split.

    `only` ({video: (N,) bool}) restricts it to the frames a method scored, for a like-for-like comparison with a
    method that leaves more frames out (per-video min-max then runs over those frames too)."""
    scores = frame_difference_scores(layout.testing, size)
    if only is not None:
        scores = {v: np.where(only[v], s, np.nan) for v, s in scores.items()}
    return evaluate({"frame_diff": scores}, {"frame_diff": 1.0}, layout.labels(), types=layout.types())
