"""MNAD studies: how a trained MNAD uses its memory (item usage, position locking, how much the decoder relies on
the read). The method itself is `vadlab.models.mnad`."""

from __future__ import annotations

import torch

from vadlab import memory
from vadlab.data.clips import ClipDataset
from vadlab.models.mnad import MNAD, _unit
from vadlab.models.ops import psnr


@torch.no_grad()
def memory_diagnostics(method: MNAD, videos, batch_size: int = 64) -> dict:
    """How a trained MNAD uses its memory, over the clips of `videos` (e.g. `layout.training`):

    - `item_usage`: share of queries whose nearest item (Eq. 11) is each item;
    - `position_locked`: share of (frame, query position) pairs assigned to that position's most common item:
      near 1 means addressing follows the location in the frame (the static background), not the content;
    - `psnr_read`, `psnr_mean_item`, `psnr_zero_read`: mean PSNR of the output with the memory read of Eq. 2,
      with every read replaced by the mean item, and by zeros: how much the decoder relies on the memory;
    - `item_cosine_mean_offdiag`: mean cosine similarity between distinct items (separateness).
    """
    net, cfg = method.model.eval(), method.config
    if not cfg.use_memory:
        raise ValueError("memory_diagnostics needs a model with a memory (use_memory=True)")
    items = net.memory  # (M, C)
    data = ClipDataset(videos, method.clip_spec(), cfg.image_size, cfg.channels)
    assignments, psnrs = [], {"read": [], "mean_item": [], "zero_read": []}
    device = items.device
    for batch in torch.utils.data.DataLoader(data, batch_size=batch_size):
        clip, target = batch["input"].to(device), _unit(batch["target"].to(device))
        qmap, skips = net.encode(clip)  # (B, C, h, w)
        queries = qmap.flatten(2).transpose(1, 2)  # (B, K, C)
        read, weights = memory.read(queries, items)  # (B, K, C), (B, K, M)
        assignments.append(weights.argmax(-1))  # (B, K)
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
    }
