"""A throwaway fifth method that exists only to test the extension surface (loaded by tests/conftest.py through
`$VADLAB_PLUGINS`): every registry-walking test, the CLI and the generic notebook pick it up without an edit.

It is not a paper's method. It has what DREAM, MAAM-Net and STD need from the pipeline, in miniature:
- two memories (normality, abnormality), each updated only by the queries of its own kind of sample, which needs
  the labels paired with the queries gathered over processes (`after_optimizer_step`);
- a labelled-anomaly training set (the normal training videos plus the `abnormal/` pool) and a batch sampler
  that puts normal and abnormal clips in every batch;
- a staged optimiser: two parameter groups with their own learning rates and step decay; in stage 1 (the first
  `pretrain_epochs` epochs) only the autoencoder trains, at the first epoch of stage 2 the abnormality memory is
  initialised from data (seeded by (seed, epoch)) and the discriminator head joins;
- an ablation (`no_memory`) declared by the method, and two memory spaces for the generic analysis;
- the facts a method registers: its colour in figures, measured seconds per step, its "paper's" reported numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vadlab import memory
from vadlab.config import MethodConfig, Range, check_multiple
from vadlab.data.clips import frame_size
from vadlab.errors import ConfigError, DataError
from vadlab.models.base import MemorySpace, Method
from vadlab.models.ops import psnr
from vadlab.registry import register_method


@dataclass(frozen=True)
class ToyDualConfig(MethodConfig):
    """Cross-field rules (`validate`): each side of the frame a multiple of 4 (two stride-2 convolutions); at least
    2 normal clips beside the abnormal ones in a batch (the triplet's anchor and positive); with a memory, at most
    as many items as one abnormal clip has queries (the abnormality memory is initialised from them)."""

    feature_dim: Annotated[int, Range(1)] = 8  # C: channels of a query and of an item
    memory_items: Annotated[int, Range(1)] = 3  # M: items per memory
    use_memory: bool = True  # False: the decoder reads the queries alone
    pretrain_epochs: Annotated[int, Range(0)] = 1  # stage 1 length: only the autoencoder trains
    lr_head: Annotated[float, Range(0, min_exclusive=True)] = 1e-3  # lr of the discriminator head (its own group)
    lr_decay: Annotated[float, Range(0, 1, min_exclusive=True)] = 0.5  # step decay of both lrs after every epoch
    abnormal_per_batch: Annotated[int, Range(1)] = 1  # labelled anomalous clips in every batch
    triplet_margin: Annotated[float, Range(0)] = 1.0  # margin of the triplet loss on pooled features

    def validate(self) -> None:
        check_multiple(self.image_size, 4, "the toy's encoder (two stride-2 convolutions)")
        if self.batch_size - self.abnormal_per_batch < 2:
            raise ConfigError(f"abnormal_per_batch={self.abnormal_per_batch} with batch_size={self.batch_size}: the "
                              "triplet loss needs 2 normal clips in a batch; use batch_size >= "
                              f"{self.abnormal_per_batch + 2}")
        height, width = frame_size(self.image_size)
        queries = (height // 4) * (width // 4)
        if self.use_memory and self.memory_items > queries:
            raise ConfigError(f"memory_items={self.memory_items}: the abnormality memory is initialised from the "
                              f"{queries} queries of an abnormal clip at image_size={self.image_size}; use "
                              f"memory_items <= {queries}")


class ToyDualNet(nn.Module):
    def __init__(self, cfg: ToyDualConfig):
        super().__init__()
        c = cfg.feature_dim
        self.encoder = nn.Sequential(nn.Conv2d(cfg.channels * cfg.frames_in, c, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.head_normal = nn.Conv2d(c, c, 1)  # query head of the normality memory
        self.head_abnormal = nn.Conv2d(c, c, 1)  # query head of the abnormality memory
        dec_in = 2 * c if cfg.use_memory else c
        self.decoder = nn.Sequential(nn.ConvTranspose2d(dec_in, c, 4, stride=2, padding=1), nn.ReLU(),
                                     nn.ConvTranspose2d(c, cfg.channels, 4, stride=2, padding=1), nn.Tanh())
        self.discriminator = nn.Linear(c, c)  # pooled feature for the triplet loss (stage 2 only)
        self.use_memory = cfg.use_memory
        self.register_buffer("normality", F.normalize(torch.randn(cfg.memory_items, c), dim=1))  # (M, C)
        self.register_buffer("abnormality", F.normalize(torch.randn(cfg.memory_items, c), dim=1))  # (M, C)

    def queries(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """clip (B, T, Ch, H, W) -> normal and abnormal queries (B, K, C) each, and the query grid (h, w)."""
        b, t, ch, h, w = clip.shape
        feats = self.encoder(clip.reshape(b, t * ch, h, w))  # (B, C, h', w')
        qn = F.normalize(self.head_normal(feats), dim=1).flatten(2).transpose(1, 2)  # (B, K, C)
        qa = F.normalize(self.head_abnormal(feats), dim=1).flatten(2).transpose(1, 2)  # (B, K, C)
        return qn, qa, tuple(feats.shape[-2:])

    def forward(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        qn, qa, (h, w) = self.queries(clip)
        if self.use_memory:
            read_n, weights_n = memory.read(qn, self.normality)  # (B, K, C), (B, K, M)
            read_a, _ = memory.read(qa, self.abnormality)
            code = torch.cat([read_n, read_a], dim=-1)  # (B, K, 2C)
        else:
            code, weights_n = qn, None
        grid = code.transpose(1, 2).reshape(len(clip), -1, h, w)
        out = {"output": self.decoder(grid), "queries_normal": qn, "queries_abnormal": qa,
               "pooled": self.discriminator(qn.mean(1))}
        if weights_n is not None:
            out["weights"] = weights_n
        return out


class ToyDual(Method):
    """Toy two-memory method with labelled anomalies (a test fixture, not a paper's method)."""

    ablations = {"no_memory": {"use_memory": False}}

    def build_model(self) -> nn.Module:
        return ToyDualNet(self.config)

    # --- data: normal training videos plus the labelled abnormal pool, both kinds in every batch ----------------
    def training_videos(self, layout):
        if not layout.abnormal:
            raise DataError(f"{layout.root}: {self.name} trains on labelled anomalies; no abnormal/ pool here")
        return tuple(layout.training) + tuple(layout.abnormal)

    def train_batches(self, dataset, *, epoch, seed, rank, world_size, batch_size):
        labels = np.array([dataset.labels[v][t] for v, t in dataset.index])  # (n_clips,)
        normal, abnormal = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
        rng = np.random.default_rng([seed, epoch])
        k = self.config.abnormal_per_batch
        n_batches = len(normal) // max(batch_size - k, 1)
        order = rng.permutation(normal)
        batches = [np.concatenate([order[i * (batch_size - k):(i + 1) * (batch_size - k)],
                                   rng.choice(abnormal, k)]).tolist() for i in range(n_batches)]
        return batches[rank::world_size][:len(batches) // world_size]  # equal count per rank

    # --- optimisation: two groups, step decay, stages from the epoch number ------------------------------------
    def _head(self) -> list[nn.Parameter]:
        return list(self.model.discriminator.parameters())

    def configure_optimizers(self):
        head = {id(p) for p in self._head()}
        rest = [p for p in self.model.parameters() if id(p) not in head]
        optimizer = torch.optim.Adam([{"params": rest, "lr": self.config.lr},
                                      {"params": self._head(), "lr": self.config.lr_head}])
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=self.config.lr_decay)

    def stage(self, epoch: int) -> str:
        return "pretrain" if epoch < self.config.pretrain_epochs else "joint"

    def on_epoch_start(self, epoch, context):
        self._stage = self.stage(epoch)
        for p in self._head():
            p.requires_grad_(self._stage == "joint")
        if epoch == self.config.pretrain_epochs and self.config.use_memory:  # data-dependent init, seeded
            gen = torch.Generator().manual_seed(context.seed * 1000 + epoch)
            abnormal = [i for i, (v, t) in enumerate(context.dataset.index) if context.dataset.labels[v][t]]
            picks = torch.randperm(len(abnormal), generator=gen)[:8].tolist()
            batch = torch.utils.data.default_collate([context.dataset[abnormal[i]] for i in picks])
            with torch.no_grad():
                _, qa, _ = self.model.queries(batch["input"].to(context.device))  # (b, K, C)
                flat = qa.reshape(-1, qa.shape[-1])
                rows = torch.randperm(len(flat), generator=gen)[:self.config.memory_items].to(flat.device)
                self.model.abnormality.copy_(F.normalize(flat[rows], dim=1))

    def training_step(self, batch):
        out = self.train_net(batch["input"])
        normal = batch["label"] == 0  # (B,)
        err = (out["output"] - batch["target"]).pow(2).flatten(1).mean(1)  # (B,)
        losses = {"rec": (err * normal).sum() / normal.sum().clamp_min(1)}  # reconstruction on normal clips only
        total = losses["rec"]
        if self.config.use_memory:
            losses["compact"] = memory.compactness_loss(out["queries_normal"], self.model.normality)
            total = total + 0.1 * losses["compact"]
        if getattr(self, "_stage", "joint") == "joint" and (~normal).any() and normal.sum() >= 2:
            feats = out["pooled"]  # (B, C)
            anchor, positive = feats[normal][0:1], feats[normal][1:2]
            losses["triplet"] = memory.triplet_loss(anchor, positive, feats[~normal][0:1], self.config.triplet_margin)
            total = total + 0.1 * losses["triplet"]
        else:
            total = total + 0.0 * out["pooled"].sum()  # every parameter in the graph (DDP)
        losses["loss"] = total
        losses["_queries_normal"] = out["queries_normal"].detach()
        losses["_queries_abnormal"] = out["queries_abnormal"].detach()
        losses["_labels"] = batch["label"]
        return losses

    def after_optimizer_step(self, outputs):
        if not self.config.use_memory:
            return
        normal = outputs["_labels"] == 0  # (B_global,), paired with the gathered queries
        self.model.normality.copy_(memory.update(outputs["_queries_normal"], self.model.normality, frame_mask=normal))
        if (~normal).any():
            self.model.abnormality.copy_(memory.update(outputs["_queries_abnormal"], self.model.abnormality,
                                                       frame_mask=~normal))

    # --- test time ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def score_batch(self, batch):
        out = self.model(batch["input"])
        pred, target = (out["output"] + 1) / 2, (batch["target"] + 1) / 2
        signals = {"neg_psnr": -psnr(pred, target), "_map": (pred - target).pow(2).sum(1)}
        if self.config.use_memory:
            signals["distance"] = memory.feature_distance(out["queries_normal"], self.model.normality)
        return signals

    def fusion_weights(self):
        return {"neg_psnr": 0.5, "distance": 0.5} if self.config.use_memory else {"neg_psnr": 1.0}

    @torch.no_grad()
    def inspect(self, batch):
        out = self.model(batch["input"])
        return {"output": out["output"], **({"weights": out["weights"]} if "weights" in out else {})}

    @torch.no_grad()
    def memory_spaces(self, batch):
        if not self.config.use_memory:
            return {}
        qn, qa, grid = self.model.queries(batch["input"])
        _, wn = memory.read(qn, self.model.normality)
        _, wa = memory.read(qa, self.model.abnormality)
        return {"normality": MemorySpace(qn, self.model.normality, wn, grid),
                "abnormality": MemorySpace(qa, self.model.abnormality, wa, grid)}


_SMOKE = dict(image_size=(32, 48), channels=1, frames_in=2, predict=True, batch_size=4, epochs=3, lr=1e-3)
PRESETS = {
    "smoke": ToyDualConfig(**_SMOKE),  # non-square frames on purpose
    "cpu": ToyDualConfig(**{**_SMOKE, "epochs": 4}),
    "paper": ToyDualConfig(**{**_SMOKE, "image_size": 64, "feature_dim": 16, "epochs": 10}),  # a toy: no paper
}

# Its facts travel with its registration, as a real method's do (tests/test_methods.py checks that the figures, the
# reproduce estimate and the reported-numbers table use them): a colour of its own, the seconds per step measured
# with benchmarks/bench_steps.py, and "reported" numbers that are placeholders, labelled as such (no paper).
COLOUR = "#ECE133"
STEP_SECONDS = {"smoke": (0.43, "benchmarks/bench_steps.py, tiny synthetic preset: 6.4 s for 15 steps, 2 threads, "
                                "2026-12-06, not quiet (other jobs ran)")}
REPORTED = {"source": "test fixture: placeholder numbers, toy_dual is no paper's method", "ped2": 0.5}

register_method("toy_dual", config_cls=ToyDualConfig, presets=PRESETS,
                description="test fixture: two memories, labelled anomalies, staged optimiser", colour=COLOUR,
                step_seconds=STEP_SECONDS, reported=REPORTED)(ToyDual)
