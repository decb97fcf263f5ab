"""MNAD studies: how a trained MNAD uses its memory (item usage, position locking, how much the decoder relies on
the read). The method itself is `vadlab.models.mnad`."""

from __future__ import annotations

import copy

import numpy as np
import torch

from vadlab.data.clips import ClipDataset
from vadlab.models.mnad import MNAD, _unit, memory_losses
from vadlab.models.ops import psnr


@torch.no_grad()
def memory_diagnostics(method: MNAD, videos, batch_size: int = 64) -> dict:
    """How a trained MNAD uses its memory, over the clips of `videos` (e.g. `layout.training`):

    - `item_usage`: share of queries whose nearest item (Eq. 11) is each item;
    - `position_locked`: share of (frame, query position) pairs assigned to that position's most common item:
      near 1 means addressing follows the location in the frame (the static background), not the content;
    - `psnr_read`, `psnr_mean_item`, `psnr_zero_read`: mean PSNR of the output with the memory read of Eq. 2,
      with every read replaced by the mean item, and by zeros: how much the decoder relies on the memory;
    - `item_cosine_mean_offdiag`: mean cosine similarity between distinct items (separateness);
    - `top_weight_mean`: mean over queries of the largest matching probability (Eq. 1): how sharp the read is
      (1/M is a uniform read, 1 a read of the nearest item alone).
    """
    net, cfg = method.model.eval(), method.config
    if not cfg.use_memory:
        raise ValueError("memory_diagnostics needs a model with a memory (use_memory=True)")
    items = net.memory  # (M, C)
    data = ClipDataset(videos, method.clip_spec(), cfg.image_size, cfg.channels)
    assignments, tops, psnrs = [], [], {"read": [], "mean_item": [], "zero_read": []}
    device = items.device
    for batch in torch.utils.data.DataLoader(data, batch_size=batch_size):
        clip, target = batch["input"].to(device), _unit(batch["target"].to(device))
        qmap, skips = net.encode(clip)  # (B, C, h, w)
        queries = qmap.flatten(2).transpose(1, 2)  # (B, K, C)
        read, weights = net.read(queries, items)  # (B, K, C), (B, K, M), Eq. 1-2 at the model's temperature
        assignments.append(weights.argmax(-1))  # (B, K)
        tops.append(weights.max(-1).values.flatten())  # (B*K,)
        reads = (("read", read), ("mean_item", items.mean(0).expand_as(read)), ("zero_read", torch.zeros_like(read)))
        for name, r in reads:
            psnrs[name].append(psnr(_unit(net.decode(qmap, r, skips)), target))
    assign = torch.cat(assignments)  # (N, K)
    usage = torch.bincount(assign.flatten(), minlength=len(items)).double()
    sim = items @ items.T  # (M, M)
    m = len(items)
    return {
        "item_usage": (usage / usage.sum()).tolist(),
        "position_locked": float((assign == assign.mode(0).values).double().mean()),
        **{f"psnr_{k}": float(torch.cat(v).mean()) for k, v in psnrs.items()},
        "item_cosine_mean_offdiag": float((sim.sum() - sim.trace()) / max(m * m - m, 1)),
        "top_weight_mean": float(torch.cat(tops).mean()),
    }


def loss_gradient_shares(method: MNAD, videos, *, batches: int = 8, batch_size: int = 8, seed: int = 0) -> dict:
    """How hard each term of Eq. 8 pulls on the encoder, on `batches` training batches of `videos`: the norm of the
    gradient of L_rec, of lambda_c * L_compact and of lambda_s * L_separate with respect to the encoder's weights
    (mean over batches), the memory terms' norm over L_rec's (`memory_over_rec`), and the cosine between the gradient
    of L_rec and that of the two memory terms together (`cosine_rec_memory`: below 0, the memory losses pull the
    encoder against the prediction). The losses are the training step's (`loss_form`); a copy of the model in
    training mode is used, so the method itself is left as it was."""
    cfg = method.config
    if not cfg.use_memory:
        raise ValueError("loss_gradient_shares needs a model with a memory (use_memory=True)")
    net = copy.deepcopy(method.model).train()
    params = [p for p in net.encoder.parameters() if p.requires_grad]
    data = ClipDataset(videos, method.clip_spec(), cfg.image_size, cfg.channels)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    device = net.memory.device
    sums = {"rec": 0.0, "compact": 0.0, "separate": 0.0, "memory": 0.0, "cosine": 0.0}
    seen = 0

    def flat(loss):
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])

    for batch in loader:
        if seen == batches:
            break
        out = net(batch["input"].to(device))
        err = out["output"] - batch["target"].to(device)
        rec = err.flatten(1).norm(dim=1).mean() if cfg.loss_form == "paper" else err.pow(2).mean()  # Eq. 9
        compact, separate = memory_losses(out["queries"], net.memory, cfg)  # Eq. 10, 12
        g_rec, g_c, g_s = flat(rec), flat(cfg.lambda_c * compact), flat(cfg.lambda_s * separate)
        g_mem = g_c + g_s
        sums["rec"] += float(g_rec.norm())
        sums["compact"] += float(g_c.norm())
        sums["separate"] += float(g_s.norm())
        sums["memory"] += float(g_mem.norm())
        sums["cosine"] += float(torch.nn.functional.cosine_similarity(g_rec, g_mem, dim=0))
        seen += 1
    mean = {k: v / max(seen, 1) for k, v in sums.items()}
    return {"grad_rec": mean["rec"], "grad_compact": mean["compact"], "grad_separate": mean["separate"],
            "memory_over_rec": mean["memory"] / mean["rec"] if mean["rec"] else float("nan"),
            "cosine_rec_memory": mean["cosine"], "batches": seen}


@torch.no_grad()
def read_effect(method: MNAD, videos, batch_size: int = 64) -> dict:
    """Per-frame PSNR of the output on `videos` (e.g. `layout.testing`) with the memory's read (Eq. 2, the trained
    items, no test-time update) and with every read replaced by the mean item, beside each frame's label: whether
    the read is what makes a frame predicted worse. Returns {"psnr_read", "psnr_mean_item", "label"}, each
    {video name: 1-D array over the frames a clip scores}."""
    net, cfg = method.model.eval(), method.config
    if not cfg.use_memory:
        raise ValueError("read_effect needs a model with a memory (use_memory=True)")
    items, spec = net.memory, method.clip_spec()
    out = {"psnr_read": {}, "psnr_mean_item": {}, "label": {}}
    for video in videos:
        data = ClipDataset([video], spec, cfg.image_size, cfg.channels)
        reads, constants = [], []
        for batch in torch.utils.data.DataLoader(data, batch_size=batch_size):
            clip, target = batch["input"].to(items.device), _unit(batch["target"].to(items.device))
            qmap, skips = net.encode(clip)  # (B, C, h, w)
            read, _ = net.read(qmap.flatten(2).transpose(1, 2), items)  # (B, K, C), Eq. 1-2
            reads.append(psnr(_unit(net.decode(qmap, read, skips)), target).cpu())
            constants.append(psnr(_unit(net.decode(qmap, items.mean(0).expand_as(read), skips)), target).cpu())
        out["psnr_read"][video.name] = torch.cat(reads).numpy()
        out["psnr_mean_item"][video.name] = torch.cat(constants).numpy()
        out["label"][video.name] = np.asarray(video.labels)[list(spec.scored_range(len(video.labels)))]
    return out


def memory_comparison(with_memory: dict, without_memory: dict) -> list[tuple[str, float | None, float | None]]:
    """Rows (metric, with memory, without memory) of two MNAD evaluation reports (`engine.evaluate_run`) on the same
    data: the fused micro AUC, each signal alone (`per_signal_auc`: neg_psnr is the prediction or reconstruction
    error, distance Eq. 14's feature distance, present with a memory only), the frame-difference baseline on the same
    frames, and the share of test frames that updated the memory. What `10_train_mnad` shows for
    `compare_no_memory` (issue 28): whether the memory earns its keep on this data."""
    def signal(report, name):
        return report.get("per_signal_auc", {}).get(name)

    base = with_memory.get("baseline_frame_difference", {}).get("micro_auc")
    return [
        ("micro AUC (fused score)", with_memory.get("micro_auc"), without_memory.get("micro_auc")),
        ("prediction/reconstruction error alone (PSNR)", signal(with_memory, "neg_psnr"),
         signal(without_memory, "neg_psnr")),
        ("memory distance alone (Eq. 14)", signal(with_memory, "distance"), None),
        ("frame difference, same frames", base, without_memory.get("baseline_frame_difference", {}).get("micro_auc")),
        ("test frames that updated the memory", with_memory.get("test_time_updates", {}).get("updated_share"), None),
    ]


def plot_memory_comparison(rows, *, title: str = "", path=None):
    """The AUC rows of `memory_comparison` as paired bars (with / without the memory), the frame-difference
    baseline as a dashed line."""
    import matplotlib.pyplot as plt

    from vadlab import viz

    auc_rows = [r for r in rows[:3] if r[1] is not None or r[2] is not None]
    base = rows[3][1]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    x = np.arange(len(auc_rows))
    colours = viz.palette(2)
    for offset, column, label, colour in ((-0.2, 1, "with memory", colours[0]), (0.2, 2, "without memory",
                                                                                 colours[1])):
        values = [np.nan if r[column] is None else r[column] for r in auc_rows]
        bars = ax.bar(x + offset, values, width=0.38, color=colour, label=label)
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.3f}" for v in values], fontsize=8)
    if base is not None:
        ax.axhline(base, color="0.3", linestyle="--", linewidth=1, label=f"frame difference {base:.3f}")
    ax.set_xticks(x, [r[0].replace(" alone", "\nalone") for r in auc_rows], fontsize=8)
    ax.set_ylabel("Micro AUC")
    low = np.nanmin([v for r in auc_rows for v in r[1:] if v is not None] + ([base] if base is not None else []))
    ax.set_ylim(max(0.0, low - 0.1), 1.0)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return viz.save(fig, path)
