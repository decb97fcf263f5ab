"""Training with a few labelled anomalies, for any method: clips labelled as a whole, and batches that always hold
both kinds (a triplet loss needs an anchor, a positive and a negative in every batch).

- `PureClipDataset`: a `ClipDataset` whose item `label` is the clip's label: 0 when every frame of the clip (its
  inputs and its target) is normal, 1 when every frame is anomalous; clips that mix both are left out (DREAM's
  choice, where the paper is silent; MLEP's public code calls a clip abnormal only if all its frames are).
- `mixed_batches`: a batch sampler with `abnormal_per_batch` abnormal clips in every batch (drawn with
  replacement: the pool is small) and the rest normal (one pass over the normal clips per epoch). It depends only
  on (seed, epoch, rank, world_size); under torchrun every rank gets its own batches of `batch_size` clips (the
  per-process batch), each holding both kinds, and all ranks the same number of batches.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vadlab.data.clips import ClipDataset, ClipSpec
from vadlab.data.layout import Video
from vadlab.errors import ConfigError, DataError

__all__ = ["PureClipDataset", "clip_labels", "mixed_batches"]


def clip_labels(labels: np.ndarray, spec: ClipSpec, t: int) -> int:
    """-1 for a mixed clip, else the common label (0/1) of every frame the clip that scores frame `t` touches."""
    start = spec.start(t)
    window = labels[min(start, t):max(start + spec.frames_in, t + 1)]  # inputs and target
    if window.min() == window.max():
        return int(window[0])
    return -1


class PureClipDataset(ClipDataset):
    """`ClipDataset` over normal and labelled abnormal videos whose item `label` is the whole clip's label; mixed
    clips are dropped. `clip_label` (n_clips,) holds the labels in dataset order, for samplers."""

    def __init__(self, videos: Sequence[Video], spec: ClipSpec, size, channels: int = 1, **kwargs):
        super().__init__(videos, spec, size, channels, **kwargs)
        labels = np.array([clip_labels(self.labels[v], spec, t) for v, t in self.index], dtype=np.int64)
        keep = labels >= 0
        self.index, self.clip_label = self.index[keep], labels[keep]  # (n_clips, 2), (n_clips,)
        self.mixed_dropped = int((~keep).sum())
        if not len(self.index):
            raise DataError("every clip mixes normal and anomalous frames: no clip to train on")

    def __getitem__(self, i: int) -> dict:
        item = super().__getitem__(i)
        item["label"] = int(self.clip_label[i])
        return item


def mixed_batches(labels: np.ndarray, *, batch_size: int, abnormal_per_batch: int, epoch: int, seed: int,
                  rank: int = 0, world_size: int = 1, min_normal: int = 2) -> list[list[int]]:
    """This rank's batches of one epoch: each `batch_size` clips, `abnormal_per_batch` of them abnormal (label 1,
    drawn with replacement), the others normal (label 0, a permutation of all normal clips, each at most once per
    epoch). Raises ConfigError when a batch cannot hold `min_normal` normal clips, DataError without clips of a kind.
    """
    n_normal_per = batch_size - abnormal_per_batch
    if abnormal_per_batch < 1 or n_normal_per < min_normal:
        raise ConfigError(f"batch_size={batch_size} with abnormal_per_batch={abnormal_per_batch}: a batch needs "
                          f"{min_normal} normal clips and at least 1 abnormal clip; use batch_size >= "
                          f"{max(abnormal_per_batch, 1) + min_normal}")
    labels = np.asarray(labels)
    normal, abnormal = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    if len(abnormal) == 0:
        raise DataError("no abnormal training clip (every frame of a clip labelled 1): mixed batches need some")
    n_global = len(normal) // (n_normal_per * world_size)  # steps per epoch, the same on every rank
    if n_global == 0:
        raise DataError(f"{len(normal)} normal training clips cannot fill one batch of {n_normal_per} normal clips "
                        f"on each of {world_size} processes")
    rng = np.random.default_rng([seed, epoch])  # the same on every rank: ranks take disjoint slices
    order = rng.permutation(normal)
    picks = rng.choice(abnormal, size=(n_global * world_size, abnormal_per_batch), replace=True)
    batches = []
    for step in range(n_global):
        b = step * world_size + rank  # this rank's share of global step `step`
        chunk = order[b * n_normal_per:(b + 1) * n_normal_per]
        batches.append(np.concatenate([chunk, picks[b]]).tolist())
    return batches
