"""MNAD: Park, Noh, Ham, "Learning Memory-guided Normality for Anomaly Detection", CVPR 2020 (arXiv:2003.13228).

Registered as `mnad_pred` (MNAD-P: 4 frames in, predict the
5th, U-Net with skips) and `mnad_recon` (MNAD-R: reconstruct the input frame, skips removed, Sec. 3.1.1).

Choices where the paper is silent or ambiguous (each tested in tests/test_mnad.py). Where the authors' public code
(cvlab-yonsei/MNAD) decides what the paper leaves open, the config names both and says which is the default:
- Decoder (`decoder`): "reference" (default) is the public code's: a 2C->C block of two 3x3 conv-BN-ReLU at the
  bottleneck that mixes query and read before upsampling, and 3x3 stride-2 transposed convs (see
  vadlab.models.blocks.UNetDecoder). "lite" is vadlab's decoder before the parity work (no such block, 2x2 transposed
  convs), kept as an option for comparison.
- Loss scale (`loss_form`): "paper" follows Eq. 8-12 literally: per frame an unsquared L2 norm of the image error
  (Eq. 9) and *sums* over the K queries of the memory losses (Eq. 10, 12), averaged over the frames of a batch.
  "reference" is the public code's scaling: mean squared pixel error, compactness as `MSELoss` between a query and
  its nearest item (squared distance averaged over the C channels and the queries) and separateness as
  `TripletMarginLoss(margin=alpha)` averaged over the queries. The lambdas of Sec. 4.1 were grid-searched with that
  code. "mean" is neither: mean squared pixel error with the paper's unsquared memory losses averaged over queries.
- Test-time gate (`gate_error`, Eq. 6-7): "squared" (default) weighs per-element *squared* errors of [0, 1] images,
  e = (I_hat - I)^2 per pixel and channel, w = 1 - exp(-e), score = sum(w e) / sum(w), as the public code's
  `point_score` does: the paper's gamma (0.01 / 0.015) was tuned on that score. "norm" is Eq. 6-7 read literally
  (the unsquared L2 norm over channels at each pixel), under which gamma is reached only above about 40 dB PSNR,
  so the update almost never fires.
- Read weights (`detach_read_weights`): the public code reads with detached matching weights (the read passes no
  gradient into the encoder); vadlab's default keeps Eq. 2 differentiable. Items are a buffer either way.
- Item initialisation (`item_init`): "sphere" (default), random unit vectors (normalised Gaussian); "positive",
  the public code's `normalize(rand)`, all in the positive orthant (mean cosine about 0.75).
- Score distance (`score_distance`, Eq. 14): "norm" as written; "squared" is the public code's `MSELoss` (equal to
  the squared distance up to the factor 1/C, which the per-video min-max of Eq. 16 removes).
- Read temperature (`read_temperature`, vadlab's, not the paper's): Eq. 1's softmax runs over cosines in [-1, 1],
  so at M = 10 no item can take more than e / (e + 9/e) = 0.45 of the weight and the read is always a blend. The
  field divides the cosines first (1, the default, is Eq. 1 exactly); issue 28 measured what a sharper read does.
- The `reference` ablation switches on every public-code choice above at once (for parity runs).
- Memory items are a buffer, not parameters: they change only by the update rule (Eq. 3-5), "without any
  supervisory signals" (Sec. 3.2). They are initialised from the run's seed.
- The training-time update uses the queries of the whole batch as one set (see vadlab.memory.update) and
  happens after the optimiser step, with the queries of the forward pass (detached). Eq. 5's normaliser is the max
  over U^m as written (the public code takes the max over all queries).
- Test time: each test video starts from the trained memory (so the order of test videos cannot change scores);
  within a video, clips are scored in frame order and a clip whose weighted regular score (Eq. 6-7, images in
  [0, 1]) is at most gamma updates the memory after it is scored. `test_update=False` turns this off. The number
  of updates per video and the share of test frames that updated are in `metrics.json` (`test_time_updates`).
- PSNR (Eq. 15) on images rescaled to [0, 1] with peak 1.
- Reconstruction with motion cues (Sec. 4.3, "sixteen successive video frames to reconstruct the ninth one"):
  `--set frames_in=16 --set target_index=8` on `mnad_recon`. The 16 frames are stacked as input channels of the
  same 2D encoder (the paper gives no other architecture change); the first 8 and last 7 frames of each video
  have no full window and are left out, and reports then give the frame-difference baseline on the same frames.
- `use_memory=False` is the paper's "w/o Mem." ablation (Table 1): same encoder (with its L2 norm), the decoder
  reads the queries alone, no memory losses, and the score is PSNR alone (D of Eq. 14 needs a memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from vadlab import memory
from vadlab.config import CPU_STEPS_PER_EPOCH, MethodConfig, Range, check_multiple
from vadlab.data.clips import frame_size
from vadlab.errors import ConfigError
from vadlab.models.base import MemorySpace, Method
from vadlab.models.blocks import UNetDecoder, UNetEncoder
from vadlab.models.ops import psnr
from vadlab.registration import DEMO_TIMES, register_method


@dataclass(frozen=True)
class MNADConfig(MethodConfig):
    """MNAD's settings. Cross-field rules (`validate`): each side of the frame a multiple of the encoder's stride
    2^(len(widths)-1); memory_items >= 2 with a memory (the separateness loss needs a second nearest item);
    batch_size 1 only when the query map has more than one position (BatchNorm in training needs more than one value
    per channel). batch_size=1 is otherwise allowed: BatchNorm then normalises over one clip's positions."""

    # U-Net stage widths; the query map is image_size / 2^(len-1) square
    widths: Annotated[tuple[int, ...], Range(1)] = (16, 32, 64, 128)
    feature_dim: Annotated[int, Range(1)] = 128  # C: channels of a query and of a memory item
    memory_items: Annotated[int, Range(1)] = 10  # M: number of memory items (>= 2 with a memory)
    use_memory: bool = True  # False: the paper's "w/o Mem." ablation
    skip: bool = True  # U-Net skip connections (kept for prediction, removed for reconstruction, Sec. 3.1.1)
    lambda_c: Annotated[float, Range(0)] = 0.1  # weight of the feature compactness loss (Eq. 8)
    lambda_s: Annotated[float, Range(0)] = 0.1  # weight of the feature separateness loss (Eq. 8)
    alpha: Annotated[float, Range(0)] = 1.0  # margin of the separateness loss (Eq. 12)
    gamma: Annotated[float, Range(0)] = 0.01  # test-time update threshold on the weighted regular score (Eq. 6-7)
    score_lambda: Annotated[float, Range(0, 1)] = 0.6  # lambda of Eq. 16: weight of 1 - g(PSNR) against g(D)
    test_update: bool = True  # update the memory at test time (Sec. 3.1.2); DREAM's authors evaluate with it off
    # "paper": Eq. 9-12 as written (norms, sums over queries); "reference": the public code's MSE, MSELoss
    # compactness and TripletMarginLoss separateness (means); "mean": MSE with the paper's memory losses averaged
    loss_form: Literal["paper", "mean", "reference"] = "paper"
    decoder: Literal["reference", "lite"] = "reference"  # public code's decoder (2C->C block, 3x3 deconvs) or lite
    gate_error: Literal["squared", "norm"] = "squared"  # test-time gate on squared errors (public code) or norms
    detach_read_weights: bool = False  # True: the read passes no gradient to the encoder (public code)
    item_init: Literal["sphere", "positive"] = "sphere"  # normalize(randn), or normalize(rand) (public code)
    score_distance: Literal["norm", "squared"] = "norm"  # D of Eq. 14 with norms, or squared (public code's MSE)
    # vadlab's, not the paper's: the addressing softmax of Eq. 1 over cosines / read_temperature (Eq. 1 is 1; below 1
    # the read sharpens towards the nearest item: at 1 and M = 10 no item gets more than 0.45 of the weight)
    read_temperature: Annotated[float, Range(0, 10, min_exclusive=True)] = 1.0
    # checkpoints written before these options existed: the lite decoder, and the gate they were scored with
    legacy_defaults: ClassVar[dict] = {"decoder": "lite", "gate_error": "norm"}

    def validate(self) -> None:
        stride = 2 ** (len(self.widths) - 1)  # a 2x max-pool between stages
        check_multiple(self.image_size, stride, f"the {len(self.widths)}-stage encoder")
        if self.use_memory and self.memory_items < 2:
            raise ConfigError(f"memory_items={self.memory_items}: the separateness loss (Eq. 12-13) needs a second "
                              "nearest item; use memory_items >= 2, or use_memory=false")
        height, width = frame_size(self.image_size)
        if self.batch_size < 2 and height * width == stride * stride:
            raise ConfigError(f"batch_size={self.batch_size}: BatchNorm in training needs more than one value per "
                              f"channel, and image_size={self.image_size} gives a 1x1 query map with the "
                              f"{len(self.widths)}-stage encoder; use batch_size >= 2 or image_size >= {2 * stride}")


# The public code's choice wherever the paper is silent (see the module docstring); the `reference` ablation.
REFERENCE_CHOICES = dict(loss_form="reference", decoder="reference", gate_error="squared", detach_read_weights=True,
                         item_init="positive", score_distance="squared")


class MNADNet(nn.Module):
    """Encoder -> (memory read, concat) -> decoder. `memory` is a (M, C) buffer of unit vectors."""

    def __init__(self, cfg: MNADConfig):
        super().__init__()
        in_ch = cfg.channels * cfg.frames_in
        self.encoder = UNetEncoder(in_ch, cfg.widths, feature_dim=cfg.feature_dim)
        dec_in = 2 * cfg.feature_dim if cfg.use_memory else cfg.feature_dim
        self.decoder = UNetDecoder(dec_in, cfg.widths, cfg.channels, skip=cfg.skip, style=cfg.decoder)
        self.use_memory = cfg.use_memory
        self.detach_read_weights = cfg.detach_read_weights
        self.read_temperature = cfg.read_temperature
        self.register_buffer("memory", init_items(cfg.memory_items, cfg.feature_dim, cfg.item_init))  # (M, C)

    def encode(self, clip: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """clip (B, T, Ch, H, W) -> L2-normalised query map (B, C, h, w) (Sec. 3.1.1) and skip features."""
        b, t, ch, h, w = clip.shape
        feats, skips = self.encoder(clip.reshape(b, t * ch, h, w))
        return F.normalize(feats, dim=1), skips

    def forward(self, clip: torch.Tensor, items: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Predicted/reconstructed frame (B, Ch, H, W), queries (B, K, C) and matching weights (B, K, M)."""
        qmap, skips = self.encode(clip)  # (B, C, h, w)
        queries = qmap.flatten(2).transpose(1, 2)  # (B, K, C), K = h*w
        out = {"queries": queries}
        read = None
        if self.use_memory:
            items = self.memory if items is None else items  # (M, C)
            read, out["weights"] = self.read(queries, items)  # (B, K, C), (B, K, M)  Eq. 1-2
            if self.detach_read_weights:  # the public code's read: weights.detach() @ items, no gradient
                read = out["weights"].detach() @ items  # (B, K, C)
        out["output"] = self.decode(qmap, read, skips)  # (B, Ch, H, W) in [-1, 1]
        return out

    def read(self, queries: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 1-2 at this model's read temperature (1 = the paper): (read (B, K, C), weights (B, K, M))."""
        return memory.read(queries, items, self.read_temperature)

    def decode(self, qmap: torch.Tensor, read: torch.Tensor | None, skips: list[torch.Tensor]) -> torch.Tensor:
        """Decoder on the query map (B, C, h, w) concatenated with the read items (B, K, C), or alone."""
        if read is None:
            return self.decoder(qmap, skips)
        b, c, h, w = qmap.shape
        read_map = read.transpose(1, 2).reshape(b, c, h, w)
        return self.decoder(torch.cat([qmap, read_map], dim=1), skips)  # input (B, 2C, h, w)


def memory_losses(queries: torch.Tensor, items: torch.Tensor, cfg: MNADConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Compactness (Eq. 10) and separateness (Eq. 12) of queries (B, K, C) against items (M, C), in the scale of
    `cfg.loss_form`: "paper" sums over the K queries of a frame (averaged over frames); "mean" averages over queries;
    "reference" is the public code's `MSELoss` (squared distance / C, averaged over queries) and
    `TripletMarginLoss(margin=alpha)` (unsquared distances averaged over queries; torch adds eps=1e-6 inside the norm,
    which this leaves out)."""
    if cfg.loss_form == "reference":
        compact = memory.compactness_loss(queries, items, squared=True) / queries.shape[-1]
        return compact, memory.separateness_loss(queries, items, cfg.alpha)
    scale = queries.shape[1] if cfg.loss_form == "paper" else 1  # Eq. 10, 12 sum over the K queries of a frame
    return (memory.compactness_loss(queries, items) * scale,
            memory.separateness_loss(queries, items, cfg.alpha) * scale)


def init_items(count: int, dim: int, how: str = "sphere") -> torch.Tensor:
    """Initial memory items (M, C), unit rows: "sphere" normalises a Gaussian (uniform on the sphere), "positive"
    normalises uniform [0, 1) values as the public code does (`F.normalize(torch.rand(M, C), dim=1)`)."""
    if how == "sphere":
        return F.normalize(torch.randn(count, dim), dim=1)
    if how == "positive":
        return F.normalize(torch.rand(count, dim), dim=1)
    raise ValueError(f"item_init must be 'sphere' or 'positive', got {how!r}")


def _unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images -> [0, 1]."""
    return (x + 1.0) / 2.0


class MNAD(Method):
    """MNAD (Park et al., CVPR 2020): memory-guided normality."""

    ablations = {
        "no_memory": {"use_memory": False},  # Table 1 "w/o Mem."
        "no_test_update": {"test_update": False},  # Table 1 without the test-time memory update (Sec. 3.1.2)
        "no_separateness": {"lambda_s": 0.0},  # Table 1 without L_separate
        "reference": REFERENCE_CHOICES,  # every choice of the public code at once (parity runs)
    }

    def build_model(self) -> nn.Module:
        return MNADNet(self.config)

    def training_step(self, batch: dict) -> dict[str, torch.Tensor]:
        cfg = self.config
        out = self.train_net(batch["input"])
        err = out["output"] - batch["target"]  # (B, Ch, H, W)
        if cfg.loss_form == "paper":
            rec = err.flatten(1).norm(dim=1).mean()  # Eq. 9: ||I_hat - I||_2 per frame
        elif cfg.loss_form in ("mean", "reference"):
            rec = err.pow(2).mean()  # the public code's MSELoss over all pixels
        else:
            raise ValueError(f"loss_form must be 'paper', 'mean' or 'reference', got {cfg.loss_form!r}")
        losses = {"rec": rec}
        total = rec
        if cfg.use_memory:
            losses["compact"], losses["separate"] = memory_losses(out["queries"], self.model.memory, cfg)
            total = total + cfg.lambda_c * losses["compact"] + cfg.lambda_s * losses["separate"]  # Eq. 8
        losses["loss"] = total
        losses["_queries"] = out["queries"].detach()
        return losses

    def after_optimizer_step(self, outputs: dict) -> None:
        if self.config.use_memory:  # Eq. 3-5 with the queries of this batch; no gradient
            self.model.memory.copy_(memory.update(outputs["_queries"], self.model.memory))

    @property
    def sequential_test(self) -> bool:
        """Test-time updates make a clip's score depend on the clips before it: score one clip at a time."""
        return self.config.use_memory and self.config.test_update

    def begin_scoring(self, videos: list[str]) -> None:
        """A scoring pass starts: the test-time update counters start at zero."""
        self._updates_per_video: dict[str, int] = {}
        self._frames_per_video: dict[str, int] = {}
        self._video_names = list(videos)

    def reset_test_state(self) -> None:
        self._items = self.model.memory.clone() if self.config.use_memory else None
        if not hasattr(self, "_video_names"):  # scored outside the engine: one unnamed pass
            self.begin_scoring([])
        i = len(self._updates_per_video)  # videos started so far in this pass
        name = self._video_names[i] if i < len(self._video_names) else f"video{i}"
        self._video = name
        self._updates_per_video[name] = 0
        self._frames_per_video[name] = 0

    def test_statistics(self) -> dict:
        """Test-time memory updates (Sec. 3.1.2: a weighted regular score at most gamma) of the last scoring pass:
        the count per video, the total and the share of scored test frames that updated the memory."""
        if not (self.config.use_memory and self.config.test_update):
            return {}
        per_video = dict(getattr(self, "_updates_per_video", {}))
        frames = sum(getattr(self, "_frames_per_video", {}).values())
        total = sum(per_video.values())
        return {"test_time_updates": {"per_video": per_video, "total": total, "frames_scored": frames,
                                      "updated_share": total / frames if frames else 0.0}}

    @torch.no_grad()
    def _forward_test(self, batch: dict) -> dict[str, torch.Tensor]:
        if not hasattr(self, "_items"):
            self.reset_test_state()
        cfg = self.config
        items = self._items
        out = self.model(batch["input"], items)
        pred, target = _unit(out["output"]), _unit(batch["target"])  # [0, 1]
        signals = {"neg_psnr": -psnr(pred, target),  # Eq. 15, negated: higher = anomalous
                   "_map": (pred - target).pow(2).sum(dim=1)}  # (B, H, W) squared error
        if cfg.use_memory:
            squared = cfg.score_distance == "squared"
            signals["distance"] = memory.feature_distance(out["queries"], items, squared=squared)  # Eq. 14
            if cfg.test_update:
                regular = memory.weighted_regular_score(pred, target, squared=cfg.gate_error == "squared")  # (B,)
                keep = regular <= cfg.gamma  # Eq. 6-7: "higher than gamma" -> not used
                self._items = memory.update(out["queries"], items, frame_mask=keep)
                self._updates_per_video[self._video] += int(keep.sum())
                self._frames_per_video[self._video] += len(keep)
        out["signals"] = signals
        return out

    def score_batch(self, batch: dict) -> dict[str, torch.Tensor]:
        return self._forward_test(batch)["signals"]

    def fusion_weights(self) -> dict[str, float]:
        if not self.config.use_memory:
            return {"neg_psnr": 1.0}
        lam = self.config.score_lambda
        return {"neg_psnr": lam, "distance": 1.0 - lam}  # Eq. 16: lam (1 - g(P)) + (1 - lam) g(D) = lam g(-P) + ...

    @torch.no_grad()
    def inspect(self, batch: dict) -> dict[str, torch.Tensor]:
        out = self.model(batch["input"], getattr(self, "_items", None))
        return {k: v for k, v in out.items() if k in ("output", "queries", "weights")}

    @torch.no_grad()
    def memory_spaces(self, batch: dict) -> dict[str, MemorySpace]:
        """The one memory of MNAD: the queries of the query map, the items, the matching probabilities (Eq. 1)."""
        if not self.config.use_memory:
            return {}
        qmap, _ = self.model.encode(batch["input"])  # (B, C, h, w)
        queries = qmap.flatten(2).transpose(1, 2)  # (B, K, C)
        items = self.model.memory  # (M, C)
        _, weights = self.model.read(queries, items)  # (B, K, M), Eq. 1
        return {"memory": MemorySpace(queries, items, weights, grid=tuple(qmap.shape[-2:]))}


_COMMON_PAPER = dict(  # Sec. 4.1 "Training": 256x256 in [-1, 1], H = W = 32, C = 512, M = 10, Adam, batch 4,
    image_size=256, channels=3, widths=(64, 128, 256, 512), feature_dim=512, memory_items=10,  # cosine annealing;
    batch_size=4, epochs=60, alpha=1.0, cosine_schedule=True,  # 60 epochs on Ped2 (10 on ShanghaiTech)
)

# `cpu` presets under the one budget of docs/architecture.md ("The `cpu` budget": at most about 3.5 minutes on
# ped2-mini's 600 training frames on 2 cores). Grayscale; the paper's 4-stage U-Net (3 poolings, queries at 1/8 of the
# frame) with narrower stages; C = 128, M = 10 as in the paper. A 3-stage variant (16x16 queries) scored clearly worse
# for MNAD-R on ped2-mini (0.74 vs 0.85 micro AUC): the depth matters. Both tasks use the prediction task's lr 2e-4: the
# paper's 2e-5 for reconstruction is for 60 epochs, and a few CPU epochs learn nothing with it.
# Chosen by measurement on ped2-mini (2026-12-02, 3 seeds, micro AUC; the frame-difference baseline at the same
# size beside it; seconds per epoch at 2 threads on that machine, benchmarks/bench_train.py):
#   size x epochs   MNAD-P                     MNAD-R                     baseline   s/epoch P, R
#   64 x 8 (old)    0.892 (.895 .879 .900)     0.815 (.847 .774 .823)     0.850      3.9, not timed
#   96 x 20         0.919 (.937 .927 .894)     0.850 (.863 .847 .841)     0.876      8.8, 6.6
#   128 x 12        0.938 (.927 .949 .939)     0.788 (one seed: dropped)  0.899      14.7, 13.2
# MNAD-P takes 128 x 12, MNAD-R 96 x 20: each the best of its column. The same machine later in the session ran
# 19.4 s per 128x128 epoch (the pre-redesign code too: machine variance), so MNAD-P's preset takes 176-233 s there,
# at the edge of the budget (3.5 minutes = 210 s); MNAD-R's 132-171 s.
# Re-derived with the public code's decoder (issue 15, 2026-12-02, ped2-mini, seeds 0, 1, 2, micro AUC, test-time
# gate on squared errors; training seconds at 2 threads on one machine, nothing else training):
#   MNAD-P 128 x 12, lite decoder        0.935 (.935 .935 .935)   176-233 s (14.7-19.4 s per epoch)
#   MNAD-P 128 x 9, reference decoder    0.938 (.943 .901 .970)   154-166 s (about 18 s per epoch)
#   MNAD-R 96 x 20, lite decoder         0.850 (.863 .847 .841)   132-171 s
#   MNAD-R 96 x 20, reference decoder    0.856 (.858 .854 .855)   234 s (11-12 s per epoch)
# The reference decoder costs about a third more per epoch and scores the same within the seeds' spread, so both
# presets take it (the issue: the old decoder stays only where a measurement says it is better; it is still
# `decoder="lite"`). MNAD-P drops to 9 epochs to stay inside the budget; MNAD-R keeps its 20 epochs at 234 s, about
# 10 % past the 210 s of the budget (fewer epochs were not measured).
_COMMON_CPU = dict(channels=1, widths=(16, 32, 64, 128), feature_dim=128, memory_items=10, batch_size=8, lr=2e-4,
                   decoder="reference", steps_per_epoch=CPU_STEPS_PER_EPOCH)
_COMMON_SMOKE = dict(image_size=32, channels=1, widths=(8, 16), feature_dim=16, memory_items=4, batch_size=4,
                     epochs=1, lr=2e-4)
# Sec. 4.1: prediction task lambda_c = lambda_s = 0.1, lambda = 0.6, alpha = 1, gamma = 0.01; 4 frames in (Sec. 3)
_PRED = dict(frames_in=4, predict=True, skip=True, lambda_c=0.1, lambda_s=0.1, score_lambda=0.6, gamma=0.01)
# Sec. 4.1: reconstruction task lambda_c = lambda_s = 0.01, lambda = 0.7, alpha = 1, gamma = 0.015; skip
# connections removed (Sec. 3.1.1)
_RECON = dict(frames_in=1, predict=False, skip=False, lambda_c=0.01, lambda_s=0.01, score_lambda=0.7, gamma=0.015)

PRED_PRESETS = {
    "paper": MNADConfig(**_COMMON_PAPER, **_PRED, lr=2e-4),  # Sec. 4.1: lr 2e-4 for prediction
    "cpu": MNADConfig(**_COMMON_CPU, **_PRED, image_size=128, epochs=9),
    "smoke": MNADConfig(**_COMMON_SMOKE, **_PRED),
}
RECON_PRESETS = {
    "paper": MNADConfig(**_COMMON_PAPER, **_RECON, lr=2e-5),  # Sec. 4.1: lr 2e-5 for reconstruction
    "cpu": MNADConfig(**_COMMON_CPU, **_RECON, image_size=96, epochs=20),
    "smoke": MNADConfig(**_COMMON_SMOKE, **_RECON),
}


# Facts read by the shared modules (`vadlab.registration.MethodSpec`): the colour of every figure, seconds per
# training step measured on the 2-core development machine (one batch: forward, backward, optimiser, memory
# update; `vadlab reproduce --dry-run` multiplies them by the steps of the data), the paper's own frame AUCs.
@register_method("mnad_pred", config_cls=MNADConfig, presets=PRED_PRESETS,
                 description="MNAD-P: memory-guided future frame prediction (Park et al. 2020)", colour="#0173B2",
                 step_seconds={"cpu": (0.32, DEMO_TIMES + "43 s per epoch of 134 steps"),
                               "smoke": (0.011, DEMO_TIMES + "3.0 s per epoch of 267 steps")},
                 reported={"source": "Park et al. CVPR 2020, Table 1 (Ours-P w/ Mem.)", "ped2": 0.970,
                           "avenue": 0.885, "shanghaitech": 0.705})
class MNADPred(MNAD):
    """MNAD-P: 4 frames in, the 5th predicted."""


@register_method("mnad_recon", config_cls=MNADConfig, presets=RECON_PRESETS,
                 description="MNAD-R: memory-guided frame reconstruction (Park et al. 2020)", colour="#56B4E9",
                 step_seconds={"cpu": (0.185, DEMO_TIMES + "25.5 s per epoch of 138 steps"),
                               "smoke": (0.0105, DEMO_TIMES + "2.9 s per epoch of 275 steps")},
                 reported={"source": "Park et al. CVPR 2020, Table 1 (Ours-R w/ Mem.)", "ped2": 0.902,
                           "avenue": 0.828, "shanghaitech": 0.698})
class MNADRecon(MNAD):
    """MNAD-R: the input frame reconstructed, no skip connections."""
