"""DREAM studies: the r statistics of Sec. IV-G (Eq. 13-18) beside the paper's Table IV, the Table III rows trained
and tabled on one dataset, and diagnostics of how a trained DREAM uses its discriminators and memories.

The method itself (config, presets, network, glue) is `vadlab.models.dream`; these helpers train and evaluate runs
through `vadlab.engine`, which a method file never imports (docs/architecture.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vadlab import engine
from vadlab.data.clips import load_masks
from vadlab.errors import ConfigError
from vadlab.models.dream import DREAM
from vadlab.registry import create_method


def memory_distance_ratio(queries: torch.Tensor, own: torch.Tensor, other: torch.Tensor,
                          reduce: str = "avg") -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 13-14 (and 16-17) per clip: d(U, M) = avg (or "max", 001's sup) over the clip's queries (B, K, C) of the
    smallest ||q - p|| over the items. Returns (d(U, own) (B,), d(U, other) (B,))."""
    def d(items: torch.Tensor) -> torch.Tensor:
        dist = torch.cdist(queries.float(), items.float()[None].expand(len(queries), -1, -1)).amin(-1)  # (B, K)
        return dist.mean(-1) if reduce == "avg" else dist.amax(-1)

    return d(own), d(other)


@torch.no_grad()
def r_statistics(method: DREAM, videos, batch_size: int = 32, reduce: str = "avg") -> dict:
    """Sec. IV-G, Eq. 13-18 over the clips of `videos` (the scored frame's label tells normal from abnormal clips):
    r_normal = sum over normal clips of d(U^N, M^N) / sum of d(U^N, M^A), r_abnormal = sum over abnormal clips of
    d(U^A, M^A) / sum of d(U^A, M^N), as written (a working model gives r < 1), and their inverses (the direction
    of the paper's Table IV numbers, all > 1). Also the clip counts and the mean distances."""
    if not method.config.dual:
        raise ConfigError("r statistics need DREAM's two memories (variant='dual')")
    net = method.model.eval()
    device = next(net.parameters()).device
    data = method.test_dataset(videos)
    sums = {k: 0.0 for k in ("nn", "na", "aa", "an")}
    counts = {"normal": 0, "abnormal": 0}
    for batch in torch.utils.data.DataLoader(data, batch_size=batch_size):
        qmaps, _ = net.encode(batch["input"].to(device))
        qn = qmaps["normal"].flatten(2).transpose(1, 2)  # (B, K, C)
        qa = qmaps["abnormal"].flatten(2).transpose(1, 2)
        d_nn, d_na = memory_distance_ratio(qn, net.normality, net.abnormality, reduce)  # Eq. 13, 14
        d_aa, d_an = memory_distance_ratio(qa, net.abnormality, net.normality, reduce)  # Eq. 16, 17
        lab = batch["label"].to(device)
        for key, vals, which in (("nn", d_nn, 0), ("na", d_na, 0), ("aa", d_aa, 1), ("an", d_an, 1)):
            sums[key] += float(vals[lab == which].sum())
        counts["normal"] += int((lab == 0).sum())
        counts["abnormal"] += int((lab == 1).sum())
    out = {"normal_clips": counts["normal"], "abnormal_clips": counts["abnormal"]}
    if counts["normal"]:
        out["r_normal"] = sums["nn"] / sums["na"]  # Eq. 15
        out["r_normal_inverse"] = sums["na"] / sums["nn"]
        out["d_normal_own"], out["d_normal_other"] = sums["nn"] / counts["normal"], sums["na"] / counts["normal"]
    if counts["abnormal"]:
        out["r_abnormal"] = sums["aa"] / sums["an"]  # Eq. 18
        out["r_abnormal_inverse"] = sums["an"] / sums["aa"]
        out["d_abnormal_own"] = sums["aa"] / counts["abnormal"]
        out["d_abnormal_other"] = sums["an"] / counts["abnormal"]
    return out


# Table IV of the paper (Sec. IV-G): Ped1, Ped2, Avenue, ShanghaiTech
PAPER_R = {"r_normal": {"ped1": 15.48, "ped2": 8.76, "avenue": 13.70, "shanghaitech": 7.72},
           "r_abnormal": {"ped1": 12.72, "ped2": 9.97, "avenue": 10.91, "shanghaitech": 8.83}}


TABLE_III_ROWS = {"UNet+Mem": "unet_mem", "UNet+Disc": "unet_disc", "UNet+Mem+Disc": "unet_mem_disc",
                  "UNet+DualMem+Disc (DREAM)": None}


def train_table_iii(data, out, *, name: str = "dream", preset: str = "cpu", seed: int = 0, device: str = "auto",
                    rows: dict[str, str | None] | None = None, **overrides) -> dict[str, dict]:
    """Train and evaluate the Table III rows (`TABLE_III_ROWS`: label -> ablation) into `out/<ablation>`; a row
    already evaluated there is read back. Returns {label: metrics report}."""
    reports = {}
    for label, ablation in (rows or TABLE_III_ROWS).items():
        run = Path(out) / (ablation or name)
        if not (run / "metrics.json").exists():
            method = create_method(name, preset, ablations=[ablation] if ablation else [], **overrides)
            engine.fit(method, data, run, seed=seed, device=device, resume=True, progress=False)
            engine.evaluate_run(run, data, device=device, progress=False)
        reports[label] = json.loads((run / "metrics.json").read_text())
    return reports


def table_iii(reports: dict[str, dict], metric: str = "micro_auc") -> dict[str, dict[str, float]]:
    """{"this run": {row: metric}} beside the frame-difference baseline on the same frames, for
    `viz.plot_comparison`, from `train_table_iii`'s reports."""
    row = {label: float(r[metric]) for label, r in reports.items()}
    first = next(iter(reports.values()))
    row["frame_difference"] = float(first["baseline_frame_difference"]["on_method_frames"][metric])
    return {metric: row}


def r_table(stats: dict) -> list[dict]:
    """The measured r statistics (as written and inverted) beside the paper's Table IV, one row per statistic."""
    rows = []
    for key in ("r_normal", "r_abnormal"):
        if key in stats:
            rows.append({"statistic": key, "as written (Eq. 15/18)": round(stats[key], 3),
                         "inverse": round(stats[f"{key}_inverse"], 3),
                         **{f"paper {d}": v for d, v in PAPER_R[key].items()}})
    return rows


@torch.no_grad()
def diagnostics(method: DREAM, layout, *, seed: int | None = None, batch_size: int = 32) -> dict:
    """How a trained DREAM uses its discriminators and memories, over its training clips (normal + labelled):

    - `triplet_active`: share of (anchor, positive, negative) triplets of the training clips with a positive
      Eq. 5 loss, and the mean squared feature distances normal-normal (`d_pos`) and normal-abnormal (`d_neg`)
      per branch (each normal clip against the next normal clip and an abnormal clip, as in training);
    - `item_usage_<memory>`: share of the routed queries whose nearest item is each item (Eq. 3-4's U_m);
    - `item_drift_<memory>`: 1 - cosine between each item and its initial value (needs the run's `seed`);
    - `anomaly_area`: mean share of the frame covered by the labelled anomaly where masks exist (what global
      average pooling has to find).
    """
    cfg = method.config
    if not cfg.dual:
        raise ConfigError("diagnostics are for DREAM's two branches (variant='dual')")
    net = method.model.eval()
    device = next(net.parameters()).device
    data = method.train_dataset(layout)
    feats = {"normal": [], "abnormal": []}
    usage = {"normal": torch.zeros(cfg.memory_items), "abnormal": torch.zeros(cfg.memory_items)}
    labels = []
    for batch in torch.utils.data.DataLoader(data, batch_size=batch_size):
        out = net(batch["input"].to(device), features=True)
        lab = batch["label"].to(device)
        labels.append(lab.cpu())
        for name in ("normal", "abnormal"):
            feats[name].append(out["features"][name].float().cpu())
            routed = out["branches"][name]["weights"][lab == (0 if name == "normal" else 1)].argmax(-1)
            usage[name] += torch.bincount(routed.flatten().cpu(), minlength=cfg.memory_items).float()
    labels = torch.cat(labels)
    normal, abnormal = torch.nonzero(labels == 0).flatten(), torch.nonzero(labels == 1).flatten()
    result: dict = {"normal_clips": len(normal), "abnormal_clips": len(abnormal)}
    if len(normal) >= 2 and len(abnormal):
        i = torch.arange(len(normal))
        for name in ("normal", "abnormal"):
            f = torch.cat(feats[name])
            if cfg.normalize_features:
                f = F.normalize(f, dim=1)
            fa, fp, fn = f[normal], f[normal[(i + 1) % len(normal)]], f[abnormal[i % len(abnormal)]]
            d_pos, d_neg = (fa - fp).square().sum(1), (fa - fn).square().sum(1)
            result[f"d_pos_{name}"] = float(d_pos.mean())
            result[f"d_neg_{name}"] = float(d_neg.mean())
            result[f"triplet_active_{name}"] = float((d_pos - d_neg + cfg.beta > 0).float().mean())
            result[f"triplet_loss_{name}"] = float(torch.relu(d_pos - d_neg + cfg.beta).mean())
            result[f"feature_norm_{name}"] = float(f.norm(dim=1).mean())
    for name, buf in (("normal", "normality"), ("abnormal", "abnormality")):
        result[f"item_usage_{buf}"] = (usage[name] / usage[name].sum().clamp_min(1)).tolist()
    if seed is not None:
        engine.set_seed(seed)
        init = method.build_model()  # the same seeded init as the run's
        for buf in ("normality", "abnormality"):
            cos = (getattr(init, buf) * getattr(net, buf).cpu()).sum(1)
            result[f"item_drift_{buf}"] = (1 - cos).tolist()
    areas = []
    for video in layout.testing:
        if video.masks is not None:
            masks = load_masks(video, 32)  # (N, 32, 32)
            share = masks.reshape(len(masks), -1).mean(1)
            areas.append(share[np.asarray(video.labels) == 1])
    if areas:
        result["anomaly_area"] = float(np.concatenate(areas).mean())
    return result
