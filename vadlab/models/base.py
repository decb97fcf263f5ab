"""The glue every method implements around its plain `nn.Module` (anomalib's split): the engine only calls these."""

from __future__ import annotations

import torch
from torch import nn

from vadlab.data.clips import ClipSpec, clip_at


class Method:
    """Training and scoring glue around `self.model` (a plain nn.Module holding all learnable and memory state).

    Subclasses set `name` (the registry name, filled in by `register_method`) and implement `build_model`,
    `training_step`, `score_batch` and `fusion_weights`.
    """

    name: str = ""

    def __init__(self, config):
        self.config = config
        self.model: nn.Module = self.build_model()
        self.train_net: nn.Module = self.model  # training_step's forward passes go here (the DDP wrapper under torchrun)

    # --- what the engine calls -------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def clip_spec(self) -> ClipSpec:
        return ClipSpec(self.config.frames_in, self.config.predict, self.config.target_index)

    def clip(self, video, t: int) -> dict:
        """The clip (a batch of 1) that scores frame `t` of `video`, at this method's size and channels."""
        return clip_at(video, t, self.clip_spec(), self.config.image_size, self.config.channels)

    def training_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """Losses of one batch; must hold "loss" (the total that is back-propagated). Runs in train mode.

        Forward passes go through `self.train_net` (so DDP can average gradients); state such as a memory is read
        from `self.model`. Outputs named "_..." reach `after_optimizer_step`, gathered over processes under torchrun."""
        raise NotImplementedError

    def after_optimizer_step(self, batch: dict, outputs: dict) -> None:
        """Hook for non-gradient state updates (e.g. a memory update) after the optimiser step."""

    def reset_test_state(self) -> None:
        """Called before each test video: restore any state a test-time update changes."""

    def score_batch(self, batch: dict) -> dict[str, torch.Tensor]:
        """Raw per-clip signals (B,) oriented higher = more anomalous, in clip order within one video.

        A method with a per-pixel anomaly map adds it under the key "_map" (B, H, W): the engine uses it for
        pixel AUC and error-map figures, not as a frame signal.
        """
        raise NotImplementedError

    def fusion_weights(self) -> dict[str, float]:
        """Weights of the signals in the frame score, applied after per-video min-max normalisation."""
        raise NotImplementedError

    def inspect(self, batch: dict) -> dict[str, torch.Tensor]:
        """Tensors worth looking at in a notebook (predictions, queries, matching weights); default: none."""
        return {}
