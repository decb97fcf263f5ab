"""Evaluation: what every method's scores go through, the same for all methods.

- `vadlab.eval.scores`: per-video min-max normalisation (MNAD Eq. 17) and fusion of signals (Eq. 16):
  `minmax`, `normalise`, `fuse`, `NORMALISE_MODES` (a method's own scoring, e.g. MAAM-Net's PSCD, lives in its
  method file).
- `vadlab.eval.metrics`: the protocol on per-frame scores: `frame_auc` (micro), `video_aucs`, `macro_auc`,
  `per_type_auc`, `eer`, `pixel_auc`, `evaluate` (the report every method writes) and `MetricsError`.
- `vadlab.eval.baselines`: the frame-difference baseline every report shows beside a method.
- `vadlab.eval.protocol`: `evaluate_signals`, a method's full report on a layout: `evaluate`, pixel AUC where masks
  exist, the frame-difference baseline beside it.

Model-side ops (PSNR) live in `vadlab.models.ops`. Every public name of the submodules is re-exported here.
"""

from vadlab.eval.baselines import evaluate_frame_difference, frame_difference, frame_difference_scores
from vadlab.eval.metrics import MetricsError, eer, evaluate, frame_auc, macro_auc, per_type_auc, pixel_auc, video_aucs
from vadlab.eval.protocol import evaluate_signals
from vadlab.eval.scores import NORMALISE_MODES, fuse, minmax, normalise

__all__ = [
    "NORMALISE_MODES", "minmax", "normalise", "fuse",
    "MetricsError", "eer", "frame_auc", "video_aucs", "macro_auc", "per_type_auc", "pixel_auc", "evaluate",
    "frame_difference", "frame_difference_scores", "evaluate_frame_difference",
    "evaluate_signals",
]
