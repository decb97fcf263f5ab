"""STD: Chang, Tu, Xie, Luo, Zhang, Sui, Yuan, "Video anomaly detection with spatio-temporal dissociation",
Pattern Recognition 2021.

Paper: ../shared/papers/004_474cca1ad3567bd6.txt; checklist ../shared/methods/std.md. Registered as `std`.

A clip of T = frames_in + 1 frames (Sec. 4.4: T = 5) scores its last frame t. The spatial autoencoder (Sec. 3.2)
reconstructs the first frame x_fif; the motion autoencoder (Sec. 3.3, a U-Net with the variance attention of
Sec. 3.4 after each encoder block) takes the stacked frames but the last, x_clips, and predicts the RGB difference
x_diff = x_lif - x_fif. The deep K-means cluster (Sec. 3.5) pulls the concatenated representations r towards K
centres; the score (Sec. 3.7) fuses the cluster distance map with the prediction error of x_lif = x_fif + x_diff at
the pixel level.

Training has three stages, each a function of the epoch number alone (so a run stopped anywhere resumes
bit-exactly): `pretrain` (epochs < pretrain_epochs: Eq. 3 + Eq. 6 at lr), the K-means initialisation of the centres
at the first epoch after it (AEs frozen: eval mode, no gradient), then `alternate` (every batch an (a) step on the
AE parameters with Eq. 12, centres frozen, then a (b) step on the centres with Eq. 11, AEs frozen; Sec. 4.2).

Choices where the paper is silent or ambiguous (each tested in tests/test_std.py):
1. Pixels in [0, 1] (vadlab's clips are in [-1, 1]; converted here), so x_diff lies in [-1, 1]. Grey datasets at
   the `cpu` preset run with 1 channel (the motion input then has frames_in channels, not 12).
2. Widths (Figs. 2 and 4 are not in our text): a 3x3 stem to `stem` channels, then three stride-2 ResNet blocks of
   `widths` (paper preset 64/128/256, so z_a and z_m are 256 x 32 x 32 at 256 x 256). Encoder block: 3x3 conv
   stride 2, LeakyReLU, 3x3 conv, plus a stride-2 3x3 conv shortcut, add, LeakyReLU; the spatial encoder has one BN
   *after* each block (Sec. 3.2; the public code puts it before). Decoder block: PixelShuffle(2) then 3x3 conv,
   LeakyReLU, 3x3 conv, shortcut PixelShuffle(2) + 3x3 conv, add, LeakyReLU; no BN in any decoder. Spatial decoder
   widths mirror the encoder; motion decoder widths (w1, w0, w0) with skips from the encoder's first two block
   outputs (after attention). Linear 3x3 output convs (x_diff is signed: never a sigmoid). LeakyReLU slope 0.01.
3. Variance attention (Eq. 7-9): f = 1x1 conv (D = C, no bias) of z; v = (1/D) sum_d (f_d - mean_d f)^2
   (`att_stat="var"`, the prose and Fig. 5) or the mean absolute deviation (`"mad"`, Eq. 8 as printed); att =
   softmax of v over the H x W positions (Eq. 9's l2 norm of a positive scalar changes nothing); applied as
   z <- z * exp(att) (weights in (1, e]; the way att is applied is unstated), feeding the next block and the skip.
   The loss has no attention term (Eq. 6).
4. r (Sec. 3.5): ReLU(z_a) and ReLU(z_m) concatenated along channels at each location, then L2-normalised per
   location, so every entry lies in [0, 1] and ||r - c|| <= sqrt(2) for centres in that space. alpha = 25 (public
   code's value; the paper gives none), with Eq. 10 as printed (vadlab.memory.kmeans: plain distance in the soft
   assignment, squared in the weighted term). Eq. 11 sums over the locations and averages over the clips.
5. Eq. 12's lambda_r = 0.1 (the paper gives none). Eq. 3 is a mean squared error; Eq. 6 is the mean squared error
   plus the mean absolute difference of the absolute forward differences |g_x|, |g_y| of the difference images.
6. K-means initialisation: `kmeans_clips` training clips drawn by a generator seeded with (seed, epoch), their r in
   eval mode without gradient, a seeded uniform sample of at most `kmeans_samples` locations, then sklearn's KMeans
   (k-means++, `kmeans_n_init` restarts, random_state = seed). Under torchrun rank 0's centres are broadcast.
7. Alternation: per batch, (a) then (b) on the same batch. The centres are an `nn.Parameter` that autograd never
   tracks (requires_grad False): (a) cannot move them, DDP does not reduce them, and test-time scoring cannot change
   them. (b) recomputes r with the updated AEs in eval mode under no_grad (BN running statistics untouched), takes
   the gradient of Eq. 11 w.r.t. the centres explicitly (averaged over processes under torchrun) and steps the one
   Adam optimiser, whose AE parameters then have no gradient and are skipped.
8. Learning rates (Sec. 4.2): pretrain `lr` (1e-4); alternate: AEs `lr`, dropped to `lr_ae_late` (1e-5) when
   `ae_lr_decay_epoch` epochs of the alternate stage have run (the paper's "epoch 100", counted inside that stage,
   so Ped2's 100 alternate epochs never decay); centres `lr_centres` (1e-5). Set in `on_epoch_start` from the epoch.
9. Score (Eq. 13-14): e(p) = sum_c (x_lif - xbar_lif)^2 with xbar_lif = xbar_fif + xbar_diff (the reconstructed
   first frame); D_u = the Eq. 10 map nearest-upsampled to the frame; s = 1 / max(mean_p D_u(p) e(p), 1e-12). The
   signal `neg_regularity` = -s, so the engine's per-video min-max gives 1 - S(t) of Eq. 14 (an anomaly score).
   Weight-0 diagnostics beside it: `error` (mean e), `cluster` (mean D), `app_error` (Eq. 3 per clip), `mot_error`
   (the L2 part of Eq. 6 per clip).
10. Ablations (Table 2; the paper does not say how one-stream rows are scored): without K-means s = 1 / mean_p e;
   motion only: xbar_lif = x_fif (the real frame) + xbar_diff; appearance only: the spatial AE reconstructs frame
   t itself and scores frame t (the same frames t >= frames_in). r then holds the one stream present.
   `score_frame="real"` (a test-time diagnostic, not in the paper) scores the full model with x_fif + xbar_diff.
11. Labels are those of the predicted frame t (vadlab's `predict` clips): the public code's loader pairs the clip
   ending at t with label t + 1 and never scores the last frame; not copied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from vadlab import memory
from vadlab.config import MethodConfig, Range, check_multiple
from vadlab.errors import ConfigError
from vadlab.models.base import MemorySpace, Method
from vadlab.registration import register_method

STAGES = ("pretrain", "alternate")


@dataclass(frozen=True)
class STDConfig(MethodConfig):
    """STD's settings. Cross-field rules (`validate`): each side of the frame a multiple of 8 (three stride-2
    blocks); widths multiples of 4 (pixel shuffle); `predict` clips; with K-means, at least one alternate epoch and
    kmeans_samples >= clusters."""

    frames_in: Annotated[int, Range(2)] = 4  # frames in x_clips (T - 1; Sec. 4.4: T = 5)
    predict: bool = True  # always: the clip's last frame is predicted (x_lif)
    cosine_schedule: bool = False  # never: the stage schedule of Sec. 4.2 sets the lrs (module choice 8)
    stem: Annotated[int, Range(1)] = 32  # channels of the 3x3 stem conv of both encoders
    widths: Annotated[tuple[int, int, int], Range(4)] = (64, 128, 256)  # the three encoder blocks' widths
    streams: Literal["both", "appearance", "motion"] = "both"  # Table 2: one stream or both
    attention: bool = True  # variance attention after each motion-encoder block (Sec. 3.4)
    att_stat: Literal["var", "mad"] = "var"  # Eq. 8: variance (prose) or mean absolute deviation (as printed)
    use_kmeans: bool = True  # the deep K-means cluster (Sec. 3.5) and the fused score (Eq. 13)
    clusters: Annotated[int, Range(1)] = 32  # K (Sec. 4.4; Table 3 sweeps 4..64)
    alpha: Annotated[float, Range(0)] = 25.0  # Eq. 10 inverse temperature (silent; public code's value)
    lambda_r: Annotated[float, Range(0)] = 0.1  # Eq. 12 weight of L_cluster (silent)
    leaky_slope: Annotated[float, Range(0, 1)] = 0.01  # LeakyReLU slope (silent; PyTorch default)
    pretrain_epochs: Annotated[int, Range(0)] = 50  # stage 1 length (Sec. 4.2: 50 Ped2, 100 Avenue/ShanghaiTech)
    lr_centres: Annotated[float, Range(0, min_exclusive=True)] = 1e-5  # (b) steps on the centres (Sec. 4.2)
    lr_ae_late: Annotated[float, Range(0, min_exclusive=True)] = 1e-5  # AE lr after the decay (Sec. 4.2)
    ae_lr_decay_epoch: Annotated[int, Range(0)] = 100  # alternate-stage epoch at which the AE lr drops
    kmeans_clips: Annotated[int, Range(1)] = 256  # training clips whose r the K-means init samples
    kmeans_samples: Annotated[int, Range(1)] = 50000  # locations sampled from them (at most)
    kmeans_n_init: Annotated[int, Range(1)] = 10  # sklearn KMeans restarts
    # test time, a diagnostic: "recon" xbar_lif = xbar_fif + xbar_diff (Sec. 3.7); "real" x_fif + xbar_diff
    score_frame: Literal["recon", "real"] = "recon"

    def validate(self) -> None:
        check_multiple(self.image_size, 8, "STD's encoders (three stride-2 blocks)")
        if not self.predict:
            raise ConfigError("predict=False: STD predicts the clip's last frame (x_lif); use predict=true")
        if self.cosine_schedule:
            raise ConfigError("cosine_schedule=True: STD's learning rates follow the stages of Sec. 4.2; "
                              "use cosine_schedule=false")
        bad = [w for w in self.widths if w % 4]
        if bad:
            raise ConfigError(f"widths={self.widths}: pixel shuffle (2x) needs widths divisible by 4; got {bad}")
        if self.use_kmeans and self.pretrain_epochs >= self.epochs:
            raise ConfigError(f"pretrain_epochs={self.pretrain_epochs} with epochs={self.epochs}: the K-means "
                              f"stage never starts; use epochs >= {self.pretrain_epochs + 1} or use_kmeans=false")
        if self.use_kmeans and self.kmeans_samples < self.clusters:
            raise ConfigError(f"kmeans_samples={self.kmeans_samples}: K-means needs at least clusters="
                              f"{self.clusters} samples; use kmeans_samples >= {self.clusters}")


# --- blocks (module choice 2) -------------------------------------------------------------------------------------
class DownBlock(nn.Module):
    """ResNet block halving the resolution: (B, cin, H, W) -> (B, cout, H/2, W/2); LeakyReLU, no BN inside."""

    def __init__(self, cin: int, cout: int, slope: float):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.act(self.conv1(x))) + self.shortcut(x))


class UpBlock(nn.Module):
    """ResNet block doubling the resolution with pixel shuffle (Sec. 3.2): (B, cin, H, W) -> (B, cout, 2H, 2W)."""

    def __init__(self, cin: int, cout: int, slope: float):
        super().__init__()
        self.shuffle = nn.PixelShuffle(2)  # (B, cin, H, W) -> (B, cin/4, 2H, 2W)
        self.conv1 = nn.Conv2d(cin // 4, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin // 4, cout, 3, padding=1)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shuffle(x)
        return self.act(self.conv2(self.act(self.conv1(x))) + self.shortcut(x))


class VarianceAttention(nn.Module):
    """Sec. 3.4, Eq. 7-9 (module choice 3): z (B, C, H, W) -> (z * exp(att), att (B, H, W), sums to 1 over H x W)."""

    def __init__(self, channels: int, stat: str = "var"):
        super().__init__()
        self.embed = nn.Conv2d(channels, channels, 1, bias=False)  # Eq. 7: f = W_g * z, D = C
        self.stat = stat

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.embed(z)  # (B, D, H, W)
        dev = f - f.mean(dim=1, keepdim=True)  # (B, D, H, W): deviation from the mean over the D channels
        v = dev.square().mean(dim=1) if self.stat == "var" else dev.abs().mean(dim=1)  # (B, H, W), Eq. 8
        b, h, w = v.shape
        att = torch.softmax(v.reshape(b, h * w), dim=1).reshape(b, h, w)  # (B, H, W), Eq. 9
        return z * torch.exp(att)[:, None], att


class SpatialAE(nn.Module):
    """E_a, D_a (Sec. 3.2, Fig. 2): x_fif (B, C, H, W) -> z_a (B, w2, H/8, W/8) and xbar_fif (B, C, H, W)."""

    def __init__(self, channels: int, stem: int, widths: tuple[int, int, int], slope: float):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, stem, 3, padding=1), nn.LeakyReLU(slope))
        ins = (stem, *widths[:-1])
        self.blocks = nn.ModuleList(DownBlock(i, o, slope) for i, o in zip(ins, widths))
        self.norms = nn.ModuleList(nn.BatchNorm2d(o) for o in widths)  # one BN after each encoder block
        dec = (widths[2], widths[2], widths[1], widths[0])  # e.g. 256 -> 256 -> 128 -> 64
        self.up = nn.ModuleList(UpBlock(dec[i], dec[i + 1], slope) for i in range(3))
        self.head = nn.Conv2d(dec[-1], channels, 3, padding=1)  # linear output

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block, norm in zip(self.blocks, self.norms):
            x = norm(block(x))
        return x  # z_a

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        for up in self.up:
            z = up(z)
        return self.head(z)


class MotionAE(nn.Module):
    """E_m, D_m (Sec. 3.3, Fig. 4), no BN: x_clips (B, T*C, H, W) -> z_m (B, w2, H/8, W/8), xbar_diff (B, C, H, W)
    and the three attention maps."""

    def __init__(self, in_channels: int, out_channels: int, stem: int, widths: tuple[int, int, int], slope: float,
                 attention: bool, att_stat: str):
        super().__init__()
        w0, w1, w2 = widths
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, padding=1), nn.LeakyReLU(slope))
        self.blocks = nn.ModuleList(DownBlock(i, o, slope) for i, o in zip((stem, w0, w1), widths))
        self.attention = nn.ModuleList(VarianceAttention(w, att_stat) for w in widths) if attention else None
        self.up1 = UpBlock(w2, w1, slope)  # z_m -> 1/4
        self.up2 = UpBlock(2 * w1, w0, slope)  # [up1, e2] -> 1/2
        self.up3 = UpBlock(2 * w0, w0, slope)  # [up2, e1] -> full
        self.head = nn.Conv2d(w0, out_channels, 3, padding=1)  # linear: x_diff is signed

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        x = self.stem(x)
        feats, atts = [], []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if self.attention is not None:
                x, att = self.attention[i](x)  # attended features feed the next block and the skip
                atts.append(att)
            feats.append(x)
        return x, feats, atts  # z_m (B, w2, H/8, W/8), [e1, e2, e3], [att1, att2, att3]

    def decode(self, z: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.up1(z)
        x = self.up2(torch.cat([x, feats[1]], dim=1))
        x = self.up3(torch.cat([x, feats[0]], dim=1))
        return self.head(x)


def representation(z_a: torch.Tensor | None, z_m: torch.Tensor | None) -> torch.Tensor:
    """Sec. 3.5, module choice 4: r (B, D, h, w) = L2-normalised [ReLU(z_a), ReLU(z_m)] per location, in [0, 1]."""
    parts = [F.relu(z) for z in (z_a, z_m) if z is not None]
    return F.normalize(torch.cat(parts, dim=1), dim=1)


class STDNet(nn.Module):
    """Both streams and the K cluster centres (a Parameter autograd never tracks: module choice 7)."""

    def __init__(self, cfg: STDConfig):
        super().__init__()
        self.streams = cfg.streams
        ch, slope = cfg.channels, cfg.leaky_slope
        self.spatial = SpatialAE(ch, cfg.stem, cfg.widths, slope) if cfg.streams != "motion" else None
        self.motion = (MotionAE(ch * cfg.frames_in, ch, cfg.stem, cfg.widths, slope, cfg.attention, cfg.att_stat)
                       if cfg.streams != "appearance" else None)
        dim = cfg.widths[-1] * (2 if cfg.streams == "both" else 1)
        # placeholders until the K-means initialisation (zeros: D(r) = ||r||^2 = 1 everywhere)
        self.centres = nn.Parameter(torch.zeros(cfg.clusters, dim), requires_grad=False)  # (K, D)

    def forward(self, x_app: torch.Tensor | None, x_clips: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """x_app (B, C, H, W) for the spatial AE, x_clips (B, T*C, H, W) for the motion AE (None: stream absent)."""
        out: dict = {}
        z_a = z_m = None
        if self.spatial is not None:
            z_a = self.spatial.encode(x_app)
            out["recon"] = self.spatial.decode(z_a)  # xbar_fif (B, C, H, W)
        if self.motion is not None:
            z_m, feats, atts = self.motion.encode(x_clips)
            out["diff"] = self.motion.decode(z_m, feats)  # xbar_diff (B, C, H, W)
            out["attention"] = atts
        out["r"] = representation(z_a, z_m)  # (B, D, h, w)
        return out

    def represent(self, x_app: torch.Tensor | None, x_clips: torch.Tensor | None) -> torch.Tensor:
        """r (B, D, h, w) from the encoders alone (K-means init, (b) steps)."""
        z_a = self.spatial.encode(x_app) if self.spatial is not None else None
        z_m = self.motion.encode(x_clips)[0] if self.motion is not None else None
        return representation(z_a, z_m)


# --- clip split, losses, score ------------------------------------------------------------------------------------
def split_clip(batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sec. 3.1: x_fif (B, C, H, W) = the clip's first frame, x_clips (B, T*C, H, W) = every frame but the last
    stacked on channels in order, x_lif (B, C, H, W) = the last (predicted) frame; all in [0, 1] (choice 1)."""
    frames = (batch["input"] + 1.0) / 2.0  # (B, T, C, H, W), frames t-T..t-1
    b, t, c, h, w = frames.shape
    return frames[:, 0], frames.reshape(b, t * c, h, w), (batch["target"] + 1.0) / 2.0


def gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 6 second term: sum over d in {x, y} of mean | |g_d(target)| - |g_d(pred)| | (forward differences)."""
    def gx(x: torch.Tensor) -> torch.Tensor:
        return (x[..., :, 1:] - x[..., :, :-1]).abs()  # (B, C, H, W-1)

    def gy(x: torch.Tensor) -> torch.Tensor:
        return (x[..., 1:, :] - x[..., :-1, :]).abs()  # (B, C, H-1, W)

    return (gx(target) - gx(pred)).abs().mean() + (gy(target) - gy(pred)).abs().mean()


def regularity(error_map: torch.Tensor, distance_map: torch.Tensor | None) -> torch.Tensor:
    """Eq. 13 at the pixel level: s = 1 / mean_p(D_u(p) e(p)) per clip, with D (B, h, w) nearest-upsampled to the
    error map (B, H, W); without a distance map (no K-means) s = 1 / mean_p e(p). Returns (B,)."""
    if distance_map is not None:
        d_u = F.interpolate(distance_map[:, None], size=error_map.shape[-2:], mode="nearest")[:, 0]  # (B, H, W)
        error_map = d_u * error_map
    return 1.0 / error_map.flatten(1).mean(dim=1).clamp_min(1e-12)


class STD(Method):
    """STD (Chang et al. 2021): spatial AE + motion AE with variance attention + deep K-means."""

    ablations = {  # Table 2 (Sec. 4.5); the full model is no ablation. Table 3: --set clusters=K
        "t2_app": {"streams": "appearance", "attention": False, "use_kmeans": False},
        "t2_mot": {"streams": "motion", "attention": False, "use_kmeans": False},
        "t2_both": {"attention": False, "use_kmeans": False},
        "t2_both_att": {"use_kmeans": False},  # also Table 3's "-" column
        "t2_both_km": {"attention": False},
    }
    #: paper numbers of Table 2 (Ped2, AUC %) by ablation name ("full" = no ablation)
    TABLE2 = {"t2_app": 91.1, "t2_mot": 94.2, "t2_both": 94.7, "t2_both_att": 95.1, "t2_both_km": 95.9, "full": 96.7}
    #: Table 3 (Ped2, AUC %) by K (None: no clustering)
    TABLE3 = {None: 95.1, 4: 95.2, 8: 95.5, 16: 96.0, 32: 96.7, 64: 96.4}

    def build_model(self) -> nn.Module:
        return STDNet(self.config)

    # --- stages (module choices 6-8) ------------------------------------------------------------------------------
    def stage(self, epoch: int) -> str:
        """`pretrain` or `alternate`, from the epoch number alone (the K-means init opens `alternate`)."""
        return "pretrain" if epoch < self.config.pretrain_epochs else "alternate"

    def learning_rates(self, epoch: int) -> tuple[float, float]:
        """(AE lr, centre lr) in `epoch` (Sec. 4.2, module choice 8)."""
        cfg = self.config
        if self.stage(epoch) == "pretrain":
            return cfg.lr, cfg.lr_centres
        late = epoch - cfg.pretrain_epochs >= cfg.ae_lr_decay_epoch
        return (cfg.lr_ae_late if late else cfg.lr), cfg.lr_centres

    def configure_optimizers(self):
        """One Adam with two parameter groups: the autoencoders and the centres (no scheduler: `on_epoch_start`)."""
        ae = [p for n, p in self.model.named_parameters() if n != "centres"]
        optimizer = torch.optim.Adam([{"params": ae, "lr": self.config.lr, "name": "autoencoders"},
                                      {"params": [self.model.centres], "lr": self.config.lr_centres,
                                       "name": "centres"}], betas=(0.9, 0.999))
        return optimizer, None

    def on_epoch_start(self, epoch, context):
        self._stage = self.stage(epoch)
        self._optimizer = context.optimizer
        self._world_size = context.world_size
        for group, lr in zip(context.optimizer.param_groups, self.learning_rates(epoch)):
            group["lr"] = lr
        if self.config.use_kmeans and epoch == self.config.pretrain_epochs:
            t0 = time.perf_counter()
            self.init_centres(context.dataset, seed=context.seed, epoch=epoch, device=context.device)
            if context.world_size > 1:  # eval-mode BN statistics differ between ranks: take rank 0's centres
                torch.distributed.broadcast(self.model.centres.data, 0)
            self.kmeans_seconds = time.perf_counter() - t0

    def _inputs(self, batch: dict) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(spatial input, motion input, x_fif, x_lif) of a batch, for this method's streams (choice 10)."""
        x_fif, x_clips, x_lif = split_clip(batch)
        streams = self.config.streams
        x_app = x_lif if streams == "appearance" else x_fif  # appearance only: reconstruct frame t itself
        return (x_app if streams != "motion" else None, x_clips if streams != "appearance" else None, x_fif, x_lif)

    @torch.no_grad()
    def init_centres(self, dataset, *, seed: int, epoch: int, device) -> torch.Tensor:
        """Sec. 3.5 / 4.2 (module choice 6): K-means centres from sampled r of the frozen AEs; returns them."""
        cfg, net = self.config, self.model
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        picks = torch.randperm(len(dataset), generator=gen)[:cfg.kmeans_clips].tolist()
        was_training = net.training
        net.eval()
        reps = []
        for i in range(0, len(picks), max(cfg.batch_size, 16)):
            items = [dataset[j] for j in picks[i:i + max(cfg.batch_size, 16)]]
            batch = {k: v.to(device) for k, v in torch.utils.data.default_collate(items).items()
                     if k in ("input", "target")}
            x_app, x_clips, _, _ = self._inputs(batch)
            r = net.represent(x_app, x_clips)  # (b, D, h, w)
            reps.append(r.permute(0, 2, 3, 1).reshape(-1, r.shape[1]).cpu())  # (b*h*w, D)
        net.train(was_training)
        pool = torch.cat(reps)  # (N, D)
        rows = torch.randperm(len(pool), generator=gen)[:cfg.kmeans_samples]
        if len(rows) < cfg.clusters:
            raise ConfigError(f"clusters={cfg.clusters}: only {len(rows)} representations were sampled for the "
                              f"K-means init; use kmeans_clips >= {cfg.clusters} or fewer clusters")
        centres = memory.kmeans_init(pool[rows], cfg.clusters, seed=seed, n_init=cfg.kmeans_n_init)  # (K, D)
        net.centres.copy_(centres.to(net.centres.device))
        return centres

    # --- training -------------------------------------------------------------------------------------------------
    def training_step(self, batch):
        """Step (a) (or a pretraining step): Eq. 3 + Eq. 6 (+ lambda_r Eq. 11 with the centres frozen)."""
        cfg = self.config
        x_app, x_clips, x_fif, x_lif = self._inputs(batch)
        out = self.train_net(x_app, x_clips)
        losses, total = {}, 0.0
        if "recon" in out:
            losses["l_a"] = F.mse_loss(out["recon"], x_app)  # Eq. 3
            total = total + losses["l_a"]
        if "diff" in out:
            x_diff = x_lif - x_fif  # (B, C, H, W), Sec. 3.3 target
            losses["l_m_l2"] = F.mse_loss(out["diff"], x_diff)  # Eq. 6 first term
            losses["l_m_grad"] = gradient_loss(out["diff"], x_diff)  # Eq. 6 second term
            total = total + losses["l_m_l2"] + losses["l_m_grad"]
        if cfg.use_kmeans and getattr(self, "_stage", self.stage(0)) == "alternate":
            losses["cluster"] = memory.cluster_loss(out["r"], self.model.centres.detach(), cfg.alpha)  # Eq. 11
            total = total + cfg.lambda_r * losses["cluster"]  # Eq. 12
        losses["loss"] = total
        self._batch = batch  # the (b) step runs on the same batch
        return losses

    def after_optimizer_step(self, outputs):
        """Step (b) (Sec. 4.2): the AEs frozen (eval mode, no gradient), one Adam step on the centres by Eq. 11."""
        cfg = self.config
        if not (cfg.use_kmeans and getattr(self, "_stage", None) == "alternate"):
            return
        net, optimizer = self.model, self._optimizer
        optimizer.zero_grad(set_to_none=True)  # the AE parameters have no gradient: Adam skips them
        was_training = net.training
        net.eval()
        with torch.no_grad():
            x_app, x_clips, _, _ = self._inputs(self._batch)
            r = net.represent(x_app, x_clips)  # (B, D, h, w) of the updated AEs
        net.train(was_training)
        centres = net.centres.detach().requires_grad_(True)  # (K, D)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(memory.cluster_loss(r, centres, cfg.alpha), centres)  # Eq. 11
        if getattr(self, "_world_size", 1) > 1:  # the gradient of the global batch, as DDP would average it
            torch.distributed.all_reduce(grad)
            grad /= self._world_size
        net.centres.grad = grad
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # --- test time ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _forward_test(self, batch: dict) -> dict:
        cfg = self.config
        x_app, x_clips, x_fif, x_lif = self._inputs(batch)
        out = self.model(x_app, x_clips)
        if cfg.streams == "appearance":
            pred = out["recon"]  # frame t reconstructed
        elif cfg.streams == "motion":
            pred = x_fif + out["diff"]  # the real first frame plus the predicted difference
        elif cfg.score_frame == "real":
            pred = x_fif + out["diff"]  # diagnostic (not the paper): the appearance stream's error left out
        else:
            pred = out["recon"] + out["diff"]  # Sec. 3.7: xbar_lif = xbar_fif + xbar_diff
        error = (x_lif - pred).square().sum(dim=1)  # (B, H, W), e(p)
        distance = memory.cluster_distance_map(out["r"], self.model.centres, cfg.alpha) if cfg.use_kmeans else None
        out.update(pred=pred, error=error, distance=distance, x_fif=x_fif, x_lif=x_lif)
        return out

    def score_batch(self, batch):
        out = self._forward_test(batch)
        cfg = self.config
        signals = {"neg_regularity": -regularity(out["error"], out["distance"]),  # -s: minmax gives 1 - S (Eq. 14)
                   "error": out["error"].flatten(1).mean(1)}
        if out["distance"] is not None:
            signals["cluster"] = out["distance"].flatten(1).mean(1)
            d_u = F.interpolate(out["distance"][:, None], size=out["error"].shape[-2:], mode="nearest")[:, 0]
            signals["_map"] = d_u * out["error"]  # (B, H, W), the Eq. 13 product
        else:
            signals["_map"] = out["error"]
        if "recon" in out:
            target = out["x_lif"] if cfg.streams == "appearance" else out["x_fif"]
            signals["app_error"] = (out["recon"] - target).square().flatten(1).mean(1)
        if "diff" in out:
            signals["mot_error"] = (out["diff"] - (out["x_lif"] - out["x_fif"])).square().flatten(1).mean(1)
        return signals

    def fusion_weights(self):
        weights = {"neg_regularity": 1.0, "error": 0.0}
        if self.config.use_kmeans:
            weights["cluster"] = 0.0
        if self.config.streams != "motion":
            weights["app_error"] = 0.0
        if self.config.streams != "appearance":
            weights["mot_error"] = 0.0
        return weights

    @torch.no_grad()
    def inspect(self, batch):
        """output = xbar_lif, recon = xbar_fif, diff = xbar_diff, attention (list of (B, h_i, w_i)), distance (B, h,
        w) and error (B, H, W), all in [0, 1] pixel units."""
        out = self._forward_test(batch)
        keep = {k: out[k] for k in ("recon", "diff", "attention", "distance", "error") if out.get(k) is not None}
        return {"output": out["pred"], **keep}

    @torch.no_grad()
    def memory_spaces(self, batch):
        """The cluster space: r at every location (queries), the centres (items), the soft assignment (Eq. 10)."""
        if not self.config.use_kmeans:
            return {}
        x_app, x_clips, _, _ = self._inputs(batch)
        r = self.model.represent(x_app, x_clips)  # (B, D, h, w)
        b, d, h, w = r.shape
        queries = r.flatten(2).transpose(1, 2)  # (B, h*w, D)
        weights = memory.soft_assignment(queries.reshape(-1, d), self.model.centres, self.config.alpha)
        return {"clusters": MemorySpace(queries, self.model.centres, weights.reshape(b, h * w, -1), grid=(h, w))}


_PAPER = dict(  # Sec. 4.2 / 4.4: 256x256 RGB, T = 5 (4 frames into the motion AE), K = 32, Adam; pretrain 50 epochs
    image_size=256, channels=3, frames_in=4, clusters=32, lr=1e-4, lr_centres=1e-5, lr_ae_late=1e-5,  # at lr 1e-4,
    pretrain_epochs=50, epochs=150, ae_lr_decay_epoch=100,  # then 100 alternate epochs (Ped2; 100 + 200 elsewhere)
    stem=32, widths=(64, 128, 256), batch_size=4,  # [silent] widths and batch 4: public code's config
    alpha=25.0, lambda_r=0.1, kmeans_clips=256, kmeans_samples=50000,  # [silent] proposals (module docstring)
)
# `cpu`: grey 64x64 (r at 8x8), narrow blocks, the paper's K = 32 and T = 5; lrs 10x the paper's for a few epochs.
_CPU = dict(image_size=64, channels=1, frames_in=4, clusters=32, stem=16, widths=(16, 32, 64), batch_size=8,
            lr=1e-3, lr_centres=1e-4, lr_ae_late=1e-4, pretrain_epochs=4, epochs=8, ae_lr_decay_epoch=100,
            kmeans_clips=128, kmeans_samples=8192, kmeans_n_init=4)
# smoke: tiny; K-means at epoch 0 so a 1-epoch run reaches every stage (test_std trains a pretrain stage too)
_SMOKE = dict(image_size=16, channels=1, frames_in=2, clusters=4, stem=4, widths=(4, 8, 8), batch_size=4, lr=1e-3,
              lr_centres=1e-3, lr_ae_late=1e-4, pretrain_epochs=0, epochs=2, ae_lr_decay_epoch=1, kmeans_clips=8,
              kmeans_samples=64, kmeans_n_init=1)

PRESETS = {"paper": STDConfig(**_PAPER), "cpu": STDConfig(**_CPU), "smoke": STDConfig(**_SMOKE)}

register_method("std", config_cls=STDConfig, presets=PRESETS,
                description="STD: spatio-temporal dissociation, RGB difference, deep K-means (Chang et al. 2021)")(STD)
