"""MAAM-Net: Wang, Tian, Zhou, Shi, Hua, "Memory-augmented appearance-motion network for video anomaly detection",
Pattern Recognition 2023. Registered as `maam`.

One frame I_t in, one shared encoder (five conv-BN-ReLU blocks, Table 1), one memory of N items read by cosine
similarity, softmax and hard shrinkage (Eq. 1-4), two decoders without skip connections: the appearance decoder
reconstructs I_t, the motion decoder predicts the optical flow F_t from I_t to I_{t+1} (Sec. 3.2.1). Losses Eq. 5-10;
scoring by PSCD (Sec. 3.4, Algorithm 1, `pscd_scores` below). The flow comes from OpenCV
(`vadlab.data.flow`), not FlowNet2, and reaches the model through `extra_inputs` (item["flow"]).

Choices where the paper is silent or ambiguous (each tested in tests/test_maam.py):
- Clip: the sample of frame t is (I_t, F_t); the clip spec is two frames (t, t+1) with target t, so the last frame
  of each video (no next frame, no flow) is neither trained on nor scored, and reports count it as left out
  (Sec. 3.2.1). The model reads only the first frame of the clip.
- Padding: stride-2 convs with padding 1 give ceil(H/2) like the public code's TF 'SAME'; each transposed conv gets
  `output_size` from the encoder's shapes, so odd sizes (15x23 at 240x360, 12x20 at 180x320) round-trip.
- Output layers are linear (public code): frames in [-1, 1], flow in model pixels. Init: conv, deconv and memory
  weights truncated normal sigma 0.02 (cut at 2 sigma), biases 0; BatchNorm with the TF defaults of the public code
  (momentum 0.99 = torch 0.01, eps 1e-3) in `paper`; the `cpu` preset uses torch's 0.1 (a few hundred steps only).
- Memory: a learned parameter, updated by backpropagation with everything else ("constantly updated at each
  iteration"); no update rule. lambda = `shrink_n` / N (paper: 1/N). Eq. 1 is a true cosine; the public code's
  similarity, which is not one, is `similarity="reference"` (for Fig. 5; `vadlab.memory.reference_similarity`).
  The addressing runs in float32 under autocast (a bf16 softmax blurs the hard threshold at N = 2000).
- Loss reductions (`vadlab.memory.losses`): L_app the mean squared error over all elements, L_mot the mean absolute
  error (public code); Eq. 8 and 9 per query, averaged over queries; Eq. 8 averaged over the N items by default
  (`entropy_reduction="mean"`, the public code's strength: summing with alpha = 3e-4 is N times stronger).
- Table 5 ablation at two levels: the score level (every joint model reports app-only, motion-only and fused
  signals) and the training level (`branches` drops a decoder and its loss; `sparsity_loss`, `latent_loss` drop
  Eq. 8, 9). `use_memory=False` is Table 2's "w/o memory": z straight into both decoders, loss L_app + lambda_m L_mot.
- PSCD (Algorithm 1): patch size, stride and psi exist only in the public code (test.py:40-44); `paper` takes
  Ped2's (30x20 patch, stride (8, 5), psi = 10/11); presets at other sizes scale patch and stride per axis.
  Signals: "app", "mot" (max of e_app, e_mot alone) and "pscd" (fused raw patch sums, then the max); the frame
  score is "pscd", min-max normalised per video (headline) or over the test set (`auc_global_norm`, the public
  code). The anomaly map ("_map", pixel AUC, figures) is PSCD's fused map at stride 1.
- psi's units (`psi_rule`, `MAAM.fusion`, ours): psi weighs squared [-1, 1] frame errors against flow errors in model
  pixels, and the code set it at its size. "paper" takes it as given (the paper presets); "flow_scale" corrects it
  for a model at another size than `psi_size`; "balanced" divides each branch by the spread of its per-frame maximum
  on the normal training frames (`fit_scoring`, stored in the run as `scoring_fit.json` at the end of training) and
  weighs them 1/2, 1/2. metrics.json reports the fusion used and the flow's mean |F| at the model's size.
- Fig. 5's statistic is logged twice: `items_per_query` (non-zero weights per query, averaged: the public code's
  count) and `items_per_frame` (items used by any query of the frame), in training history and test statistics.
- Grey frames go in as 3 identical channels (Table 1, Algorithm 1's 3-channel filter); the flow is computed on
  grey frames at native size, resized bilinearly, vectors scaled with the resize (`vadlab.data.flow`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vadlab import memory
from vadlab.config import CPU_STEPS_PER_EPOCH, MethodConfig, Range
from vadlab.data.clips import ClipSpec
from vadlab.errors import ConfigError
from vadlab.eval.metrics import MetricsError
from vadlab.models.base import MemorySpace, Method
from vadlab.models.blocks import Dropout16
from vadlab.registration import DEMO_TIMES, register_method


@dataclass(frozen=True)
class MAAMConfig(MethodConfig):
    """MAAM-Net's settings. Cross-field rules (`validate`): the clip is fixed (frames_in=2, predict=false,
    target_index=0: frame t and the frame its flow points to); 5 encoder and 4 decoder widths (Table 1).
    flow_method="files" reads the dataset's own .flo files, ROOT/<split>/flow/<video>/*.flo (`vadlab.data.flow`)."""

    frames_in: Annotated[int, Range(1)] = 2  # (I_t, I_{t+1}): the model reads I_t; I_{t+1} only exists
    target_index: Annotated[int, Range()] = 0  # the target is I_t (reconstruction)
    channels: Literal[1, 3] = 3  # Table 1: 3 input channels (grey frames replicated)
    enc_widths: Annotated[tuple[int, ...], Range(1)] = (64, 128, 256, 512, 512)  # E1-E5 of Table 1
    dec_widths: Annotated[tuple[int, ...], Range(1)] = (256, 256, 128, 64)  # D4-D1 of Table 1
    memory_items: Annotated[int, Range(1)] = 500  # N (Sec. 4.3: 500 Ped2, 2000 Avenue and SHT)
    shrink_n: Annotated[float, Range(0)] = 1.0  # lambda = shrink_n / N (Sec. 4.3: 1/N; Sec. 3.2.2: 1/N to 3/N)
    use_memory: bool = True  # False: Table 2 "w/o memory"
    branches: Literal["both", "appearance", "motion"] = "both"  # decoders trained (Table 5, training level)
    sparsity_loss: bool = True  # Eq. 8 in the total (Table 5)
    latent_loss: bool = True  # Eq. 9 in the total (Table 5)
    lambda_m: Annotated[float, Range(0)] = 2.0  # weight of L_mot (Eq. 7, Sec. 4.3)
    alpha: Annotated[float, Range(0)] = 3e-4  # weight of L_spa (Eq. 10, Sec. 4.3)
    beta: Annotated[float, Range(0)] = 1e-3  # weight of L_lat (Eq. 10, Sec. 4.3)
    zeta: Annotated[float, Range(0, 1)] = 0.1  # margin of Eq. 9 (Sec. 4.3)
    entropy_reduction: Literal["mean", "sum"] = "mean"  # Eq. 8 over the N items: mean (public code) or sum
    dropout: Annotated[float, Range(0, 1, max_exclusive=True)] = 0.3  # decoder dropout (Sec. 3.2.1)
    # how the dropout masks are drawn (ours, issue 27; the same Bernoulli masks either way): "int16" two 16-bit words
    # a random draw (`blocks.Dropout16`, 2.3x faster masks on CPU), "bernoulli" torch's nn.Dropout, a float each
    dropout_masks: Literal["int16", "bernoulli"] = "int16"
    bn_momentum: Annotated[float, Range(0, 1)] = 0.01  # torch convention (TF 0.99 = 0.01)
    bn_eps: Annotated[float, Range(0, min_exclusive=True)] = 1e-3  # TF default of the public code
    psi: Annotated[float, Range(0, 1)] = 10 / 11  # PSCD weight of e_app (Algorithm 1 line 13; code: Ped2 10/11)
    # how psi meets the two branches' units (ours; `fusion`): "paper" psi as given (the public code's psi at its
    # size); "flow_scale" psi corrected for flow in pixels of a model smaller or larger than `psi_size`; "balanced"
    # each branch divided by the spread of its per-frame maximum on the training frames, then weighted 1/2 and 1/2
    psi_rule: Literal["paper", "flow_scale", "balanced"] = "paper"
    psi_size: Annotated[tuple[int, int], Range(1)] = (240, 360)  # (H, W) the public code set psi at (Ped2's size)
    # "balanced": each branch in units of its spread on the training frames: of the per-frame max ("frame_max"), of
    # all patch sums ("patch"), or each patch position standardised by its own mean and spread there ("position")
    balance_stat: Literal["frame_max", "patch", "position"] = "frame_max"
    position_floor: Annotated[float, Range(0, min_exclusive=True)] = 1.0  # "position": no position's spread counts
    # below this fraction of the median spread over positions (ours: a still position's tiny spread is not trusted)
    similarity: Literal["cosine", "reference"] = "cosine"  # Eq. 1's cosine, or the public code's (not a cosine)
    patch: Annotated[tuple[int, int], Range(1)] = (30, 20)  # PSCD patch (h, w) in model pixels (code: Ped2)
    patch_stride: Annotated[tuple[int, int], Range(1)] = (8, 5)  # PSCD stride (h, w) (code: Ped2, ~patch / 4)
    flow_method: Literal["dis", "farneback", "files"] = "dis"  # vadlab.data.flow ("files": ROOT/<split>/flow/)
    # checkpoints written before a field existed: the value that reproduces them
    legacy_defaults: ClassVar[dict] = {"dropout_masks": "bernoulli"}

    def validate(self) -> None:
        if (self.frames_in, self.predict, self.target_index) != (2, False, 0):
            raise ConfigError(f"frames_in={self.frames_in}, predict={self.predict}, target_index={self.target_index}:"
                              " MAAM-Net's clip is fixed (one frame and the next, whose flow is the motion target); "
                              "use frames_in=2, predict=false, target_index=0")
        if len(self.enc_widths) != 5 or len(self.dec_widths) != 4:
            raise ConfigError(f"enc_widths={self.enc_widths}, dec_widths={self.dec_widths}: Table 1 has 5 encoder "
                              "blocks (4 of stride 2) and 4 decoder blocks")


def _init(module: nn.Module) -> None:
    """Public code's init: truncated normal sigma 0.02 (cut at 2 sigma), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
        nn.init.zeros_(module.bias)


def _dropout(cfg: MAAMConfig) -> nn.Module:
    return Dropout16(cfg.dropout) if cfg.dropout_masks == "int16" else nn.Dropout(cfg.dropout)


class Decoder(nn.Module):
    """D4-D1 of Table 1 (3x3 deconv stride 2, BN, dropout, ReLU) and a linear 3x3 output conv; no skips."""

    def __init__(self, cin: int, widths: tuple[int, ...], out_channels: int, cfg: MAAMConfig):
        super().__init__()
        self.deconvs, self.post = nn.ModuleList(), nn.ModuleList()
        for width in widths:
            self.deconvs.append(nn.ConvTranspose2d(cin, width, 3, stride=2, padding=1))
            self.post.append(nn.Sequential(nn.BatchNorm2d(width, eps=cfg.bn_eps, momentum=cfg.bn_momentum),
                                           _dropout(cfg), nn.ReLU(inplace=True)))
            cin = width
        self.out = nn.Conv2d(cin, out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor, sizes: list[tuple[int, int]]) -> torch.Tensor:
        """z (B, C, h, w) -> (B, out, H, W); `sizes` are the encoder's (H, W) from E4 back to E1."""
        for deconv, post, size in zip(self.deconvs, self.post, sizes):
            z = post(deconv(z, output_size=size))  # ceil(H / 2^k): odd sizes round-trip
        return self.out(z)


class MAAMNet(nn.Module):
    """Encoder -> memory (Eq. 1-4) -> appearance and motion decoders (Table 1)."""

    def __init__(self, cfg: MAAMConfig):
        super().__init__()
        blocks, cin = [], cfg.channels
        for i, width in enumerate(cfg.enc_widths):  # E1 stride 1, E2-E5 stride 2
            blocks.append(nn.Sequential(nn.Conv2d(cin, width, 3, stride=1 if i == 0 else 2, padding=1),
                                        nn.BatchNorm2d(width, eps=cfg.bn_eps, momentum=cfg.bn_momentum),
                                        nn.ReLU(inplace=True)))
            cin = width
        self.encoder = nn.ModuleList(blocks)
        c = cfg.enc_widths[-1]
        self.appearance = Decoder(c, cfg.dec_widths, cfg.channels, cfg) if cfg.branches != "motion" else None
        self.motion = Decoder(c, cfg.dec_widths, 2, cfg) if cfg.branches != "appearance" else None
        self.use_memory = cfg.use_memory
        self.threshold = cfg.shrink_n / cfg.memory_items  # lambda of Eq. 3
        self.similarity = cfg.similarity  # Eq. 1's cosine or the public code's similarity
        self.apply(_init)
        if cfg.use_memory:  # M (N, C), learned by backprop
            self.memory = nn.Parameter(nn.init.trunc_normal_(torch.empty(cfg.memory_items, c), std=0.02,
                                                             a=-0.04, b=0.04))

    def encode(self, frame: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """frame (B, Ch, H, W) -> z (B, C, h, w) and the (H, W) of E4, E3, E2, E1 for the decoders."""
        sizes = []
        x = frame
        for block in self.encoder:
            x = block(x)
            sizes.append(tuple(x.shape[-2:]))
        return x, sizes[-2::-1]

    def read(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, C, h, w) -> z_hat (B, C, h, w), queries (B, K, C) and weights w (B, K, N) (Eq. 1-4)."""
        b, c, h, w = z.shape
        queries = z.flatten(2).transpose(1, 2)  # (B, K, C), one query per position
        z_hat, weights = memory.shrinkage_read(queries, self.memory, self.threshold,  # (B, K, C), (B, K, N)
                                               similarity=self.similarity)  # in float32, also under autocast
        return z_hat.transpose(1, 2).reshape(b, c, h, w), queries, weights

    def forward(self, frame: torch.Tensor) -> dict[str, torch.Tensor]:
        """frame (B, Ch, H, W) -> "appearance" (B, Ch, H, W), "motion" (B, 2, H, W) (the branches built), and with a
        memory "queries" z (B, K, C), "read" z_hat (B, K, C), "weights" (B, K, N)."""
        z, sizes = self.encode(frame)
        out = {}
        if self.use_memory:
            z_hat, out["queries"], out["weights"] = self.read(z)
            out["read"] = z_hat.flatten(2).transpose(1, 2)  # (B, K, C)
        else:
            z_hat = z  # Table 2 "w/o memory": z straight into the decoders
        if self.appearance is not None:
            out["appearance"] = self.appearance(z_hat, sizes)
        if self.motion is not None:
            out["motion"] = self.motion(z_hat, sizes)
        return out


def items_selected(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fig. 5's statistic from read weights (B, K, N): (items per query (B,) averaged over the K queries, items
    used by any query of the frame (B,))."""
    used = weights > 0  # (B, K, N), hard shrinkage zeroes the rest exactly
    return used.sum(-1).float().mean(-1), used.any(1).sum(-1).float()


# --- PSCD (Sec. 3.4, Algorithm 1): MAAM-Net's scoring --------------------------------------------------------------
# PSCD fuses *before* normalising (fuse the raw patch sums, take the max over patches, then Eq. 11's min-max), unlike
# the generic "normalise each signal, then fuse" of `vadlab.eval.scores.fuse`: the raw per-frame PSCD maximum is one
# signal, and `vadlab.eval.scores.normalise` does Eq. 11, per video ("video", vadlab's headline) or over the whole
# test set ("global", what MAAM-Net's public code does).


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) of one axis: output ceil(size / stride), the extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def patch_sums(error, patch: tuple[int, int], stride: tuple[int, int]):
    """Algorithm 1 lines 8-12: an error map (B, C, H, W) convolved with an all-ones (C, ph, pw) filter at `stride`
    (sh, sw), 'SAME' zero padding (partial windows at the border, as the public code): (B, ceil(H/sh), ceil(W/sw)),
    the sum of the error over each patch and over the channels. A torch tensor in, a torch tensor out."""
    import torch

    (ph, pw), (sh, sw) = patch, stride
    if min(ph, pw, sh, sw) < 1:
        raise MetricsError(f"patch_sums: patch {patch} and stride {stride} must be positive")
    b, c, h, w = error.shape
    top, bottom = _same_pad(h, ph, sh)
    left, right = _same_pad(w, pw, sw)
    padded = F.pad(error.sum(dim=1, keepdim=True), (left, right, top, bottom))  # (B, 1, H + pad, W + pad)
    ones = torch.ones(1, 1, ph, pw, dtype=error.dtype, device=error.device)  # summing over C first is the same
    return F.conv2d(padded, ones, stride=(sh, sw))[:, 0]  # (B, h', w')


def pscd_scores(d_app, d_mot, patch: tuple[int, int], stride: tuple[int, int], psi: float,
                scale: tuple = (1.0, 1.0), offset: tuple = (0.0, 0.0)) -> dict:
    """Algorithm 1 lines 6-14 on a batch: d_app (B, Ca, H, W) = (I - I_hat)^2 and d_mot (B, Cm, H, W) = |F - F_hat|
    (either may be None for a single-branch model). Returns raw per-frame maxima (B,) over patches of
    e_app ("app"), e_mot ("mot") and e_fuse = psi e_app + (1 - psi) e_mot ("pscd", line 13: the raw patch sums are
    fused, then the max is taken, line 14); Eq. 11 (min-max) is left to :func:`normalise`. `scale` = (s_app, s_mot)
    divides each branch before the fusion, e_fuse = psi e_app / s_app + (1 - psi) e_mot / s_mot (MAAM-Net's
    psi_rule="balanced"; (1, 1) is Algorithm 1); "app" and "mot" stay raw. Under balance_stat="position" the scales
    and `offset` (subtracted first) are (h', w') tensors, one value per patch position."""
    out = {}
    e_app = patch_sums(d_app, patch, stride) if d_app is not None else None  # (B, h', w')
    e_mot = patch_sums(d_mot, patch, stride) if d_mot is not None else None
    if e_app is not None:
        out["app"] = e_app.flatten(1).amax(1)  # (B,)
    if e_mot is not None:
        out["mot"] = e_mot.flatten(1).amax(1)
    if e_app is not None and e_mot is not None:
        fused = psi * (e_app - offset[0]) / scale[0] + (1.0 - psi) * (e_mot - offset[1]) / scale[1]  # line 13
        out["pscd"] = fused.flatten(1).amax(1)  # (B,), line 14
    return out


def pscd_map(d_app, d_mot, patch: tuple[int, int], psi: float, scale: tuple = (1.0, 1.0),
             offset: tuple = (0.0, 0.0)):
    """The fused PSCD map at stride 1, frame-sized (B, H, W): each pixel scores the patch centred on it (SAME
    padding), with `pscd_scores`'s psi, scale and offset (per-position ones, (h', w') at the scoring stride, are
    resized bilinearly to the frame). vadlab's anomaly map for pixel AUC and the error-map figures (the paper reports
    no pixel result)."""
    if d_app is None or d_mot is None:
        return patch_sums(d_app if d_mot is None else d_mot, patch, (1, 1))
    e_app, e_mot = patch_sums(d_app, patch, (1, 1)), patch_sums(d_mot, patch, (1, 1))  # (B, H, W)
    size = e_app.shape[-2:]

    def at_frame(value):
        if not torch.is_tensor(value):
            return value
        return F.interpolate(value[None, None].to(e_app), size=size, mode="bilinear", align_corners=False)[:, 0]

    return (psi * (e_app - at_frame(offset[0])) / at_frame(scale[0])
            + (1.0 - psi) * (e_mot - at_frame(offset[1])) / at_frame(scale[1]))  # (B, H, W)



class MAAM(Method):
    """MAAM-Net (Wang et al., PR 2023): memory-augmented appearance-motion network."""

    ablations = {  # Table 5 (training level) and Table 2 "w/o memory"
        "appearance_only": {"branches": "appearance"},
        "motion_only": {"branches": "motion"},
        "no_sparsity": {"sparsity_loss": False},
        "no_latent": {"latent_loss": False},
        "no_memory_losses": {"sparsity_loss": False, "latent_loss": False},
        "no_memory": {"use_memory": False},
    }

    def build_model(self) -> nn.Module:
        return MAAMNet(self.config)

    def clip_spec(self) -> ClipSpec:
        return ClipSpec(2, False, 0)  # frame t (the input and target) and t+1 (its flow's end): last frame unscored

    def extra_inputs(self, videos, split):
        """item["flow"]: the flow F_t (2, h, w) at the model's size (`vadlab.data.flow`: computed with a progress bar
        on first use, then loaded from the cache)."""
        if self.config.branches == "appearance" or not videos:
            return {}
        from vadlab.data.flow import flow_for_videos

        cfg = self.config
        return {"flow": flow_for_videos(videos, self.frame_size, cfg.flow_method)}

    def _losses(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        cfg = self.config
        losses, total = {}, 0.0
        if "appearance" in out:
            losses["app"] = (out["appearance"] - batch["target"]).pow(2).mean()  # Eq. 5 (mean squared error)
            total = total + losses["app"]
        if "motion" in out:
            losses["mot"] = (out["motion"] - batch["flow"]).abs().mean()  # Eq. 6 (mean absolute error)
            total = total + cfg.lambda_m * losses["mot"]  # Eq. 7
        if cfg.use_memory:
            losses["spa"] = memory.entropy_loss(out["weights"], item_reduction=cfg.entropy_reduction)  # Eq. 8
            losses["lat"] = memory.latent_margin_loss(out["read"], out["queries"], cfg.zeta)  # Eq. 9
            if cfg.sparsity_loss:
                total = total + cfg.alpha * losses["spa"]  # Eq. 10
            if cfg.latent_loss:
                total = total + cfg.beta * losses["lat"]
            per_query, per_frame = items_selected(out["weights"].detach())
            losses["items_per_query"], losses["items_per_frame"] = per_query.mean(), per_frame.mean()
        losses["loss"] = total
        return losses

    def training_step(self, batch: dict) -> dict[str, torch.Tensor]:
        out = self.train_net(batch["input"][:, 0])  # I_t (B, Ch, H, W)
        return self._losses(out, batch)

    # --- test time ---------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _errors(self, batch: dict) -> tuple[dict, torch.Tensor | None, torch.Tensor | None]:
        out = self.model(batch["input"][:, 0])
        d_app = (batch["target"] - out["appearance"]).pow(2) if "appearance" in out else None  # (B, Ch, H, W)
        d_mot = (batch["flow"] - out["motion"]).abs() if "motion" in out else None  # (B, 2, H, W)
        return out, d_app, d_mot

    # --- the fusion's units (issue 22) ------------------------------------------------------------------------------
    def flow_scale(self) -> float:
        """How much a flow vector in this model's pixels shrinks against the size psi was set at (`psi_size`): the
        geometric mean of the two axes' ratios (0.267 for 64x96 against Ped2's 240x360; 1 at the paper's size)."""
        (h, w), (ph, pw) = self.frame_size, self.config.psi_size
        return float(np.sqrt(h / ph * w / pw))

    def fusion(self) -> tuple[float, tuple, tuple]:
        """(psi, (scale_app, scale_mot), (offset_app, offset_mot)) of e_fuse = psi (e_app - offset_app) / scale_app +
        (1 - psi) (e_mot - offset_mot) / scale_mot (Algorithm 1 line 13, `pscd_scores`) under `psi_rule`:

        - "paper": (psi, (1, 1)), Algorithm 1 as the public code runs it.
        - "flow_scale": e_app sums squared [-1, 1] errors, e_mot sums flow errors in model pixels, and a model at a
          fraction s of `psi_size` sees flow vectors s times shorter while the frame errors keep their scale (the
          patch area shrinks alike for both branches and cancels). Restoring e_mot / s gives psi e_app + (1 - psi)
          e_mot / s, i.e. psi' = psi s / (psi s + 1 - psi) with unit scales (ours).
        - "balanced": each branch in units of its own spread on the normal training frames (`fit_scoring`, stored
          in the run as `scoring_fit.json`): scale = the standard deviation of the branch's per-frame maximum
          (`balance_stat="frame_max"`) or of all its patch sums ("patch"), psi = 1/2 (ours; psi is not used); offsets
          0 (a constant shift changes no maximum).
          Under `balance_stat="position"` every patch position is standardised by the branch's mean and spread at
          that position over the training frames ((h', w') tensors; the spread floored at `position_floor` x its
          median over positions): a texture that always reconstructs badly, or a place where walkers always move,
          no longer wins the maximum over patches (ours).
        Offsets are 0 except under "position"."""
        cfg = self.config
        zero = (0.0, 0.0)
        if cfg.psi_rule == "paper":
            return cfg.psi, (1.0, 1.0), zero
        if cfg.psi_rule == "flow_scale":
            s = self.flow_scale()
            return cfg.psi * s / (cfg.psi * s + 1.0 - cfg.psi), (1.0, 1.0), zero
        fit = getattr(self, "scoring_fit", None)
        if fit is None:
            raise ConfigError("psi_rule='balanced' needs the branches' statistics on the training frames "
                              "(scoring_fit.json in the run folder; `vadlab evaluate` computes it when missing)")
        if cfg.balance_stat == "position":
            device = next(self.model.parameters()).device
            means, spreads = [], []
            for name in ("app", "mot"):
                mean = torch.tensor(fit[name]["position_mean"], dtype=torch.float32, device=device)  # (h', w')
                std = torch.tensor(fit[name]["position_std"], dtype=torch.float32, device=device)
                floor = max(float(std.median()) * cfg.position_floor, 1e-12)
                means.append(mean)
                spreads.append(std.clamp(min=floor))
            return 0.5, tuple(spreads), tuple(means)
        key = "frame_max_std" if cfg.balance_stat == "frame_max" else "patch_std"
        return 0.5, (max(fit["app"][key], 1e-12), max(fit["mot"][key], 1e-12)), zero

    @torch.no_grad()
    def fit_scoring(self, videos, *, progress: bool = True) -> dict:
        """Label-free statistics of the two branches on the normal training frames (the videos `vadlab score`'s
        calibration scores), at this config's patch and stride: per branch the mean and standard deviation of the
        per-frame maximum of e_app / e_mot and of all patch sums; the mean flow magnitude |F| (model pixels) and the
        number of frames. What psi_rule="balanced" divides by; the engine stores it as `scoring_fit.json`."""
        from vadlab.progress import tqdm

        cfg = self.config
        if cfg.branches != "both":
            return {}
        videos = list(videos)  # the engine's choice: the videos its calibration scores
        data = self.test_dataset(videos)
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        maxima = {"app": [], "mot": []}
        moments = {k: torch.zeros(3, dtype=torch.float64) for k in maxima}  # count, sum, sum of squares
        at = {k: [0, 0.0, 0.0] for k in maxima}  # per position (h', w'): frames, sum, sum of squares
        flow_sum, flow_pixels = 0.0, 0
        loader = torch.utils.data.DataLoader(data, batch_size=max(cfg.batch_size, 16))
        for batch in tqdm(loader, desc="maam: branch statistics (training frames)", disable=not progress,
                          leave=False):
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            _, d_app, d_mot = self._errors(batch)
            for name, d in (("app", d_app), ("mot", d_mot)):
                grid = patch_sums(d.float(), cfg.patch, cfg.patch_stride).double().cpu()  # (B, h', w')
                at[name][0] += grid.shape[0]
                at[name][1] = at[name][1] + grid.sum(0)
                at[name][2] = at[name][2] + grid.square().sum(0)
                e = grid.flatten(1)  # (B, patches)
                maxima[name].append(e.amax(1))
                moments[name] += torch.stack([torch.tensor(float(e.numel()), dtype=torch.float64), e.sum(),
                                              e.square().sum()])
            flow_sum += float(batch["flow"].float().norm(dim=1).sum())
            flow_pixels += batch["flow"][:, 0].numel()
        self.model.train(was_training)
        out = {"patch": list(cfg.patch), "patch_stride": list(cfg.patch_stride), "frames": len(data),
               "videos": [v.name for v in videos], "flow_mean_magnitude": flow_sum / max(flow_pixels, 1)}
        for name in ("app", "mot"):
            m = torch.cat(maxima[name])
            n, total, squares = moments[name].tolist()
            mean = total / n
            frames, grid_sum, grid_squares = at[name]
            grid_mean = grid_sum / max(frames, 1)
            grid_std = (grid_squares / max(frames, 1) - grid_mean.square()).clamp(min=0.0).sqrt()
            out[name] = {"frame_max_mean": float(m.mean()), "frame_max_std": float(m.std()) if len(m) > 1 else 0.0,
                         "patch_mean": mean, "patch_std": float(np.sqrt(max(squares / n - mean * mean, 0.0))),
                         "position_mean": grid_mean.tolist(), "position_std": grid_std.tolist()}
        return out

    def use_scoring_fit(self, fit: dict) -> bool:
        """Take `fit_scoring`'s statistics (from the run's file); False when they were taken at another patch or
        stride than this config's (the engine then computes them again for this evaluation)."""
        cfg = self.config
        if not fit or (tuple(fit.get("patch", ())), tuple(fit.get("patch_stride", ()))) != (cfg.patch,
                                                                                            cfg.patch_stride):
            return False
        if "position_mean" not in fit.get("app", {}):  # a fit written before balance_stat="position" existed
            return False
        self.scoring_fit = fit
        return True

    @torch.no_grad()
    def score_batch(self, batch: dict) -> dict[str, torch.Tensor]:
        cfg = self.config
        out, d_app, d_mot = self._errors(batch)
        psi, scale, offset = self.fusion() if d_app is not None and d_mot is not None else (cfg.psi, (1.0, 1.0),
                                                                                            (0.0, 0.0))
        signals = pscd_scores(d_app, d_mot, cfg.patch, cfg.patch_stride, psi, scale, offset)  # Algorithm 1, raw
        signals["_map"] = pscd_map(d_app, d_mot, cfg.patch, psi, scale, offset)  # (B, H, W)
        if "flow" in batch:  # mean |F| of the scored frames' flow targets, in model pixels (metrics.json)
            flow = self.__dict__.setdefault("_flow_stats", [0.0, 0])
            flow[0] += float(batch["flow"].float().norm(dim=1).sum())
            flow[1] += batch["flow"][:, 0].numel()
        if "weights" in out:  # Fig. 5, per scored frame (a frame scored twice counts once)
            per_query, per_frame = items_selected(out["weights"])
            stats = self.__dict__.setdefault("_item_stats", {})
            for key, q, f in zip(zip(batch["video"].tolist(), batch["index"].tolist()), per_query.tolist(),
                                 per_frame.tolist()):
                stats[key] = (q, f)
        return signals

    def fusion_weights(self) -> dict[str, float]:
        branches = self.config.branches
        if branches == "appearance":
            return {"app": 1.0}
        if branches == "motion":
            return {"mot": 1.0}
        return {"pscd": 1.0, "app": 0.0, "mot": 0.0}  # app and mot carried for their own AUCs (Table 5)

    def test_statistics(self) -> dict:
        """Fig. 5: items selected after shrinkage, per query and per frame, averaged over the scored test frames."""
        stats = self.__dict__.pop("_item_stats", {})
        flow = self.__dict__.pop("_flow_stats", None)
        out = {}
        if flow is not None:  # the flow's scale at this size (issue 22): mean |F| in model pixels, scored frames
            out.update(flow_mean_magnitude=flow[0] / max(flow[1], 1), flow_scale=self.flow_scale(),
                       frame_size=list(self.frame_size))
        if self.config.branches == "both":
            psi, scale, _ = self.fusion()
            scale = [float(s.mean()) if torch.is_tensor(s) else s for s in scale]  # "position": the mean over positions
            out["fusion"] = {"psi_rule": self.config.psi_rule, "psi": psi, "scale_app": scale[0],
                             "scale_mot": scale[1], "balance_stat": self.config.balance_stat}
        if stats:
            per_query, per_frame = np.array(list(stats.values())).T
            out.update(items_per_query=float(per_query.mean()), items_per_frame=float(per_frame.mean()),
                       memory_items=self.config.memory_items)
        return out

    # --- looking inside ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def inspect(self, batch: dict) -> dict[str, torch.Tensor]:
        """output (appearance), flow_pred, d_app and d_mot summed over channels (B, H, W), pscd_map, weights."""
        cfg = self.config
        out, d_app, d_mot = self._errors(batch)
        psi, scale, offset = self.fusion() if d_app is not None and d_mot is not None else (cfg.psi, (1.0, 1.0),
                                                                                            (0.0, 0.0))
        result = {"pscd_map": pscd_map(d_app, d_mot, cfg.patch, psi, scale, offset)}
        if d_app is not None:
            result.update(output=out["appearance"], d_app=d_app.sum(1))
        if d_mot is not None:
            result.update(flow_pred=out["motion"], d_mot=d_mot.sum(1))
        if "weights" in out:
            result["weights"] = out["weights"]
        return result

    @torch.no_grad()
    def memory_spaces(self, batch: dict) -> dict[str, MemorySpace]:
        """The one memory: queries z (B, K, C), items M (N, C), weights after shrinkage (B, K, N)."""
        if not self.config.use_memory:
            return {}
        z, _ = self.model.encode(batch["input"][:, 0])
        _, queries, weights = self.model.read(z)
        return {"memory": MemorySpace(queries, self.model.memory, weights, grid=tuple(z.shape[-2:]))}


def _scaled(size: tuple[int, int], native: tuple[int, int], patch: tuple[int, int], stride: tuple[int, int]):
    """PSCD patch and stride of the public code at `native` size, scaled per axis to `size` (at least 1 pixel)."""
    sy, sx = size[0] / native[0], size[1] / native[1]
    return ((max(1, round(patch[0] * sy)), max(1, round(patch[1] * sx))),
            (max(1, round(stride[0] * sy)), max(1, round(stride[1] * sx))))


# Sec. 4.3: Adam, lambda = 1/N, lambda_m = 2, alpha = 3e-4, beta = 1e-3, zeta = 0.1 ("the margin is 0.001" is beta,
# Sec. 4.3 has no sixth constant), 50 epochs, fixed lr; batch 15 (public code's CLI). PSCD numbers: the public
# code's test.py:40-44, at the model size already.
# psi: the paper presets keep the code's psi with psi_rule="paper". The authors set it at their model size (Ped2
# 240x360, Avenue and SHT 180x320: psi_size) on flow made offline at that size, so at the same size there is nothing
# to convert (flow_scale's s is 1), and "balanced" would replace the authors' weight by ours. Whether their Avenue and
# SHT flow vectors were scaled with the resize is unknown (the checklist, Sec. 1): vadlab's flow is in model pixels.
_PAPER = dict(channels=3, batch_size=15, epochs=50, cosine_schedule=False, lambda_m=2.0, alpha=3e-4, beta=1e-3,
              zeta=0.1, shrink_n=1.0, bn_momentum=0.01, bn_eps=1e-3, psi_rule="paper", similarity="cosine")
PAPER_PED2 = MAAMConfig(**_PAPER, image_size=(240, 360), memory_items=500, lr=2e-5, patch=(30, 20),
                        patch_stride=(8, 5), psi=10 / 11, psi_size=(240, 360))  # Ped2: native size, N = 500, lr 2e-5
PAPER_AVENUE = MAAMConfig(**_PAPER, image_size=(180, 320), memory_items=2000, lr=5e-4, patch=(85, 40),
                          patch_stride=(5, 5), psi=100 / 101, psi_size=(180, 320))  # Avenue: N = 2000, lr 5e-4
PAPER_SHT = MAAMConfig(**_PAPER, image_size=(180, 320), memory_items=2000, lr=1e-5, patch=(20, 28),
                       patch_stride=(8, 5), psi=1 / 11, psi_size=(180, 320))  # ShanghaiTech: N = 2000, lr 1e-5

# `cpu`: Table 1 at a quarter of the widths and 64x96 frames (Ped2's 2:3 aspect, 0.267 of its size), N = 500 as
# for Ped2, Ped2's PSCD patch, stride and psi scaled to the size; lr 1e-3 for a few CPU epochs (the paper's 2e-5 is
# for 50 epochs at full size); BN momentum 0.1. The fusion: psi_rule="balanced" (issue 22, ours): at 64x96 the
# code's psi = 10/11 lets the appearance branch drown the motion branch (flow 0.267 times shorter than at 240x360);
# each branch in units of its spread on the training frames instead. Chosen from its argument (label-free, the
# branches' own scales) before the ped2-mini measurements ran; docs/methods/maam.md says what was measured.
_CPU_SIZE = (64, 96)
_CPU_PATCH, _CPU_STRIDE = _scaled(_CPU_SIZE, (240, 360), (30, 20), (8, 5))
CPU = MAAMConfig(image_size=_CPU_SIZE, channels=3, enc_widths=(16, 32, 64, 128, 128), dec_widths=(64, 64, 32, 16),
                 memory_items=500, batch_size=8, epochs=8, lr=1e-3, cosine_schedule=False, bn_momentum=0.1,
                 patch=_CPU_PATCH, patch_stride=_CPU_STRIDE, psi=10 / 11, psi_rule="balanced",
                 steps_per_epoch=CPU_STEPS_PER_EPOCH)
SMOKE = MAAMConfig(image_size=(24, 40), channels=1, enc_widths=(4, 8, 8, 16, 16), dec_widths=(8, 8, 4, 4),
                   memory_items=20, batch_size=4, epochs=1, lr=1e-3, cosine_schedule=False, bn_momentum=0.1,
                   patch=(6, 4), patch_stride=(2, 1))

PRESETS = {"paper": PAPER_PED2, "paper_avenue": PAPER_AVENUE, "paper_shanghaitech": PAPER_SHT, "cpu": CPU,
           "smoke": SMOKE}
# Facts read by the shared modules (`vadlab.registration.MethodSpec`): the colour of every figure, seconds per
# training step measured on the 2-core development machine (one batch: forward, backward, optimiser, memory
# update; `vadlab reproduce --dry-run` multiplies them by the steps of the data), the paper's own frame AUCs.
register_method("maam", config_cls=MAAMConfig, presets=PRESETS,
                description="MAAM-Net: memory-augmented appearance-motion network (Wang et al. 2023)", colour="#D55E00",
                step_seconds={"cpu": (0.077, DEMO_TIMES + "10.6 s per epoch of 137 steps, flow cached"),
                              "smoke": (0.013, DEMO_TIMES + "3.5 s per epoch of 273 steps, flow cached")},
                reported={"source": "Wang et al. Pattern Recognition 2023, Table 2 (Ours)", "ped2": 0.977,
                          "avenue": 0.909, "shanghaitech": 0.713})(MAAM)
