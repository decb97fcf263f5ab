"""The glue every method implements around its plain `nn.Module` (anomalib's split): the engine only calls these.

A method is a `Method` subclass registered with `vadlab.registry.register_method`. Four hooks are required
(`build_model`, `training_step`, `score_batch`, `fusion_weights`); every other hook below has a default that fits a
method trained on the normal training videos with one Adam, and the engine calls each of them for every method:

- data: `training_videos(layout)` (default `layout.training`, normal videos only); `extra_inputs(videos, split)`
  (default none; MAAM-Net: optical flow per frame); `train_dataset(layout)` and `test_dataset(videos)` (default a
  `ClipDataset` with labels and extra inputs); `train_batches(dataset, epoch=, seed=, rank=, world_size=,
  batch_size=)` (default None: shuffled batches).
- optimisation: `configure_optimizers()` (default Adam(lr) with cosine annealing over the epochs);
  `on_epoch_start(epoch, context)` (default nothing; staged training sets its phase from `epoch`);
  `training_step(batch)` (required); `after_optimizer_step(outputs)` (default nothing; memory updates, with the
  "_..." outputs gathered over processes).
- test time: `sequential_test`, `begin_scoring(videos)` and `reset_test_state()` (default batched scoring, no
  state); `score_batch(batch)` and `fusion_weights()` (required); `test_statistics()` (default {}; written into
  metrics.json); `fit_scoring(videos)` and `use_scoring_fit(fit)` (default none: label-free scoring constants
  taken from the normal training frames at the end of training, stored in the run as `scoring_fit.json`).
- looking inside: `inspect(batch)`, `memory_spaces(batch)` (default {}).
- ablations: the class attribute `ablations`, name -> config overrides (default {}).

Every hook that takes a `batch` gets a `Batch` (below): its shapes, dtypes and [-1, 1] value range are the contract
between the datasets and the methods, and `check_batch` checks a batch against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Sequence, TypedDict

import numpy as np
import torch
from torch import nn

from vadlab.data.clips import ClipDataset, ClipSpec, clip_at, frame_size
from vadlab.errors import DataError


# --- the batch contract: what the datasets (`vadlab.data.clips.ClipDataset`) produce and the engine feeds the hooks --
class Batch(TypedDict, total=False):
    """One batch as `training_step`, `score_batch`, `inspect` and `memory_spaces` receive it (a dict, collated by
    torch's DataLoader from `ClipDataset` items; `check_batch` checks one against this contract).

    Required fields (B clips, T = `frames_in` input frames, C = `channels`, (H, W) = the method's `frame_size`):

    - `input`: float32 (B, T, C, H, W), values in [-1, 1] (frame / 127.5 - 1): the clip's input frames in order.
    - `target`: float32 (B, C, H, W), values in [-1, 1]: the scored frame (`ClipSpec`: the frame after the inputs
      when `predict`, else frame `target_index` of the inputs).
    - `label`: int64 (B,): 0 normal, 1 anomalous: the scored frame's label (0 in videos without labels, such as
      the normal training videos); the whole clip's label in `PureClipDataset` (DREAM's labelled training clips).
    - `video`: int64 (B,): the clip's video, as a position in the dataset's `videos`.
    - `index`: int64 (B,): the frame the clip scores in that video (0-based).

    Optional fields: one tensor (B, ...) per `Method.extra_inputs` name, the entry of the scored frame, e.g.
    MAAM-Net's `flow` float32 (B, 2, H, W) (the optical flow from frame t to t + 1, in model pixels).
    """

    input: torch.Tensor
    target: torch.Tensor
    label: torch.Tensor
    video: torch.Tensor
    index: torch.Tensor


#: field -> (dims, dtype, (low, high) value range or None); dims name the axes (B, T, C, H, W as above)
BATCH_FIELDS: dict[str, tuple[tuple[str, ...], torch.dtype, tuple[float, float] | None]] = {
    "input": (("B", "T", "C", "H", "W"), torch.float32, (-1.0, 1.0)),
    "target": (("B", "C", "H", "W"), torch.float32, (-1.0, 1.0)),
    "label": (("B",), torch.int64, (0, 1)),
    "video": (("B",), torch.int64, (0, float("inf"))),
    "index": (("B",), torch.int64, (0, float("inf"))),
}


def check_batch(batch: dict, *, frames_in: int | None = None, channels: int | None = None,
                frame_hw: tuple[int, int] | None = None, extras: Sequence[str] = ()) -> None:
    """Check `batch` against the contract (`Batch`): every required field and every name in `extras` present,
    shapes, dtypes and value ranges, one B for all; given `frames_in`, `channels` and `frame_hw` (H, W), those axes
    too. Raises `vadlab.errors.DataError` naming the field and what differs."""
    missing = [k for k in (*BATCH_FIELDS, *extras) if k not in batch]
    if missing:
        raise DataError(f"batch: missing field(s) {missing}; a batch holds {list(BATCH_FIELDS)} (+ extra inputs)")
    expected = {"T": frames_in, "C": channels, "H": frame_hw and frame_hw[0], "W": frame_hw and frame_hw[1],
                "B": len(batch["input"])}
    for name, (dims, dtype, bounds) in BATCH_FIELDS.items():
        value = batch[name]
        if not torch.is_tensor(value):
            raise DataError(f"batch[{name!r}]: a {type(value).__name__}, expected a tensor {dims}")
        if value.dtype != dtype:
            raise DataError(f"batch[{name!r}]: dtype {value.dtype}, expected {dtype}")
        if value.dim() != len(dims):
            raise DataError(f"batch[{name!r}]: shape {tuple(value.shape)}, expected {len(dims)} axes {dims}")
        for axis, size in zip(dims, value.shape):
            if expected.get(axis) is not None and size != expected[axis]:
                raise DataError(f"batch[{name!r}]: shape {tuple(value.shape)}, axis {axis} is {size}, expected "
                                f"{expected[axis]}")
        if bounds is not None and value.numel():
            low, high = float(value.min()), float(value.max())
            if low < bounds[0] or high > bounds[1]:
                raise DataError(f"batch[{name!r}]: values in [{low:g}, {high:g}], expected within "
                                f"[{bounds[0]:g}, {bounds[1]:g}]")
    for name in extras:
        if not torch.is_tensor(batch[name]) or len(batch[name]) != expected["B"]:
            raise DataError(f"batch[{name!r}]: expected a tensor with {expected['B']} rows (one per clip)")


@dataclass
class MemorySpace:
    """One memory space of a method for a batch of clips, in the shape generic analysis and figures use.

    MNAD has one (`memory`), DREAM two (`normality`, `abnormality`), MAAM-Net one, STD its cluster centres."""

    queries: torch.Tensor  # (B, K, C): K queries per clip (the positions of a query map)
    items: torch.Tensor  # (M, C): memory items or cluster centres
    weights: torch.Tensor | None = None  # (B, K, M): matching probabilities (None: nearest item only)
    grid: tuple[int, int] | None = None  # (h, w) of the query map when K = h * w, for maps and row colouring
    routed: torch.Tensor | None = None  # (B,) bool: the clips whose queries this memory's update takes (None: all)

    def nearest(self) -> torch.Tensor:
        """(B, K) index of each query's item: the largest matching weight, else the smallest distance."""
        if self.weights is not None:
            return self.weights.argmax(-1)
        return torch.cdist(self.queries.float(), self.items.float()[None].expand(len(self.queries), -1, -1)).argmin(-1)


@dataclass
class EpochContext:
    """What `on_epoch_start` may use: the training data, the optimiser and where the run lives."""

    dataset: Any  # the training dataset (`train_dataset`)
    optimizer: torch.optim.Optimizer
    device: torch.device
    seed: int  # the run's seed: derive any randomness from (seed, epoch) so a resumed run repeats it
    world_size: int = 1
    extra: dict = field(default_factory=dict)


class Method:
    """Training and scoring glue around `self.model` (a plain nn.Module holding all learnable and memory state).

    Subclasses set `name` (filled in by `register_method`) and implement `build_model`, `training_step`,
    `score_batch` and `fusion_weights`; the other hooks (module docstring) have defaults.
    """

    name: str = ""
    # named ablations: name -> config overrides, e.g. {"no_memory": {"use_memory": False}} (`--ablation NAME`)
    ablations: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config):
        self.config = config
        self._model: nn.Module | None = None  # built on first use (`model`)
        self._train_net: nn.Module | None = None

    @property
    def model(self) -> nn.Module:
        """The network (`build_model()`), built once, on first use: `engine.fit` first uses it right after seeding
        the run, so a run's initial weights and memory items follow from its seed alone."""
        if self._model is None:
            self._model = self.build_model()
        return self._model

    @model.setter
    def model(self, value: nn.Module) -> None:
        self._model = value

    @property
    def model_built(self) -> bool:
        """Whether `model` has been built (used) already."""
        return self._model is not None

    @property
    def train_net(self) -> nn.Module:
        """What training_step's forward passes go through: the model, or its DDP wrapper under torchrun."""
        return self.model if self._train_net is None else self._train_net

    @train_net.setter
    def train_net(self, value: nn.Module) -> None:
        self._train_net = value

    # --- the model and its clips ---------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def clip_spec(self) -> ClipSpec:
        return ClipSpec(self.config.frames_in, self.config.predict, self.config.target_index)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(H, W) of the frames the model sees (`image_size` may be one side or (H, W))."""
        return frame_size(self.config.image_size)

    def clip(self, video, t: int) -> dict:
        """The clip (a batch of 1) that scores frame `t` of `video`, at this method's size and channels."""
        return clip_at(video, t, self.clip_spec(), self.config.image_size, self.config.channels,
                       extras=self.extra_inputs([video], video.split))

    # --- data ------------------------------------------------------------------------------------------------------
    def training_videos(self, layout) -> Sequence:
        """The videos a method trains on; default the normal training videos (DREAM adds labelled anomalies)."""
        return layout.training

    def extra_inputs(self, videos: Sequence, split: str) -> dict[str, list[np.ndarray]]:
        """Per-frame tensors beside the frames, {name: one array (N, ...) per video}; item[name] = array[t] of the
        scored frame t (e.g. MAAM-Net's optical flow target). Default: none."""
        return {}

    def train_dataset(self, layout):
        """The training dataset; its items are dicts with `input`, `target`, `label`, `video`, `index` (+ extras)."""
        videos = self.training_videos(layout)
        return ClipDataset(videos, self.clip_spec(), self.config.image_size, self.config.channels,
                           extras=self.extra_inputs(videos, "training"))

    def test_dataset(self, videos: Sequence):
        """The dataset `engine.infer` scores, clip by clip in frame order per video."""
        split = videos[0].split if videos else "testing"
        return ClipDataset(videos, self.clip_spec(), self.config.image_size, self.config.channels,
                           extras=self.extra_inputs(videos, split))

    def train_batches(self, dataset, *, epoch: int, seed: int, rank: int, world_size: int,
                      batch_size: int) -> Iterable[list[int]] | None:
        """A batch sampler (lists of dataset indices) for this process in `epoch`, or None for the engine's
        shuffled batches. Depend only on (seed, epoch, rank) so a resumed run sees the same batches; under
        torchrun return this rank's share of the global batches (e.g. a batch with normal and abnormal clips)."""
        return None

    # --- optimisation ------------------------------------------------------------------------------------------------
    def configure_optimizers(self) -> tuple[torch.optim.Optimizer, Any]:
        """The optimiser (parameter groups with their own learning rates allowed) and a scheduler stepped once per
        epoch, or None. Called after the model is on its device. Default: Adam(lr), cosine annealing if set."""
        cfg = self.config
        optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        scheduler = None
        if getattr(cfg, "cosine_schedule", False):
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1))
        return optimizer, scheduler

    def on_epoch_start(self, epoch: int, context: EpochContext) -> None:
        """Called before every epoch (0-based), also on resume. Staged training sets its phase here from `epoch`
        alone (freeze or unfreeze, initialise cluster centres at a stage's first epoch), so resume is bit-exact."""

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Losses of one batch; must hold "loss" (the total that is back-propagated). Runs in train mode.

        Forward passes go through `self.train_net` (so DDP can average gradients); state such as a memory is read
        from `self.model`. Outputs named "_..." reach `after_optimizer_step`, gathered over processes under
        torchrun (put the labels a memory update needs there too, e.g. "_labels", so they stay paired)."""
        raise NotImplementedError

    def after_optimizer_step(self, outputs: dict) -> None:
        """Non-gradient state updates (e.g. a memory update) after the optimiser step, from the "_..." outputs of
        `training_step`, concatenated over all processes in rank order under torchrun."""

    # --- test time ---------------------------------------------------------------------------------------------------
    @property
    def sequential_test(self) -> bool:
        """True: a clip's score depends on the clips before it (a test-time update); score one clip at a time."""
        return False

    def begin_scoring(self, videos: list[str]) -> None:
        """Called once before a scoring pass over `videos` (names, in scoring order): reset per-pass counters."""

    def reset_test_state(self) -> None:
        """Called before each test video: restore any state a test-time update changes."""

    def score_batch(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Raw per-clip signals (B,) oriented higher = more anomalous, in clip order within one video.

        A method with a per-pixel anomaly map adds it under the key "_map" (B, H, W): the engine uses it for
        pixel AUC and error-map figures, not as a frame signal.
        """
        raise NotImplementedError

    def fusion_weights(self) -> dict[str, float]:
        """Weights of the signals in the frame score, applied after per-video min-max normalisation."""
        raise NotImplementedError

    def test_statistics(self) -> dict[str, Any]:
        """Numbers about the last scoring pass for the report (e.g. how often a test-time update fired)."""
        return {}

    def fit_scoring(self, videos, *, progress: bool = True) -> dict | None:
        """Label-free constants the scoring needs from the trained model on normal training `videos` (the engine
        passes the videos its calibration scores, `engine.calibration_videos`), e.g. MAAM-Net's per-branch error
        scales, as a JSON-able dict; None (default) or {}: none needed. The engine calls it at the end of training,
        before the calibration, and when a run's `scoring_fit.json` is missing or does not fit the config
        (`engine.ensure_scoring_fit`)."""
        return None

    def use_scoring_fit(self, fit: dict) -> bool:
        """Take a stored `fit_scoring` result; False when it does not fit this config (it is then computed
        again). Default: nothing to take."""
        return False

    # --- looking inside ----------------------------------------------------------------------------------------------
    def inspect(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Tensors worth looking at in a notebook (`output`: prediction or reconstruction (B, Ch, H, W), ...)."""
        return {}

    def memory_spaces(self, batch: Batch) -> dict[str, MemorySpace]:
        """{name: MemorySpace} of a batch, for the generic memory analysis and figures; {} without a memory."""
        return {}
