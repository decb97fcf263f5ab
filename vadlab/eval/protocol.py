"""The evaluation protocol every method is reported with (docs/methods/index.md, "The evaluation protocol").

Raw signals are min-max normalised per video and fused by the method's weights; frames a method cannot score are
NaN, left out and counted; pixel AUC where masks exist, at the model's resolution; the frame-difference baseline
beside every report, on all frames it can score and on only the frames the method scored.
"""

from __future__ import annotations

import numpy as np

from vadlab.data.clips import load_masks
from vadlab.data.layout import Layout
from vadlab.eval.baselines import evaluate_frame_difference
from vadlab.eval.metrics import evaluate, pixel_auc
from vadlab.eval.scores import fuse


def evaluate_signals(signals: dict, weights: dict[str, float], layout: Layout, *, size: int | tuple[int, int],
                     maps: dict | None = None) -> dict:
    """Metrics of a method's signals ({signal: {video: (N,)}}) fused with `weights` on the test split of `layout`,
    with the frame-difference baseline at the method's frame `size` beside them; pixel AUC from `maps`
    ({video: (N, H, W)}) where the videos have masks."""
    report = evaluate(signals, weights, layout.labels(), types=layout.types())
    with_masks = [v for v in layout.testing if v.masks is not None]
    if maps is not None and with_masks:
        # pixel AUC at the model's resolution: masks resized (nearest) to the map size
        report["pixel_auc"] = pixel_auc({v.name: maps[v.name] for v in with_masks},
                                        {v.name: load_masks(v, size) for v in with_masks})
        report["pixel_auc_videos"] = len(with_masks)
    report["baseline_frame_difference"] = evaluate_frame_difference(layout, size=size)
    fused = fuse(signals, weights, mode="video")
    scored = {video: ~np.isnan(score) for video, score in fused.items()}
    same = evaluate_frame_difference(layout, size=size, only=scored)
    report["baseline_frame_difference"]["on_method_frames"] = {  # like for like: only the frames the method scored
        k: same[k] for k in ("micro_auc", "macro_auc", "eer", "frames_scored")}
    return report
