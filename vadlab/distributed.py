"""torchrun / DDP plumbing for `engine.fit`: who this process is, the process group, gathering outputs, in-step check.

Under `torchrun` (WORLD_SIZE > 1) the same `fit` trains data-parallel: gloo on the CPU, NCCL on CUDA; each process
reads its shard of every epoch; outputs named "_..." are gathered over all processes before the post-step hook, so a
memory update sees the global batch; only rank 0 writes files and shows progress.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from vadlab.errors import VadlabError


def world() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) in a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


@dataclass
class Group:
    """This process in the (possibly one-process) group of a training run."""

    rank: int
    size: int
    device: torch.device
    owns_group: bool = False  # True when `join` initialised the process group (and `leave` destroys it)

    @property
    def main(self) -> bool:
        return self.rank == 0


def join(device: torch.device) -> Group:
    """Join the torchrun process group (initialising it if needed); on CUDA each process takes its local GPU."""
    rank, size, local_rank = world()
    owns = size > 1 and not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if size > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return Group(rank, size, device, owns)


def leave(group: Group) -> None:
    """Wait until every process is done (the checkpoint is complete) and destroy a group `join` created."""
    if group.size > 1:
        # Collect the DDP wrapper (and its reducer's pending gloo work) while the group is alive: a gloo work object
        # freed only at interpreter exit can abort the process ("terminate called without an active exception",
        # seen once in rank 1 of the torchrun test; pytorch/pytorch#179291 describes the mechanism).
        gc.collect()
        dist.barrier()
        if group.owns_group:
            dist.destroy_process_group()


def wrap(model: torch.nn.Module, group: Group) -> torch.nn.Module:
    """The module training_step's forward passes go through: the model itself, or its DDP wrapper."""
    if group.size == 1:
        return model
    return DistributedDataParallel(model, device_ids=[group.device.index] if group.device.type == "cuda" else None)


def gather_private(outputs: dict, n_procs: int) -> dict:
    """Outputs named "_..." concatenated over all processes along dim 0, in rank order (the global batch)."""
    if n_procs == 1:
        return outputs
    gathered = dict(outputs)
    for key, value in outputs.items():
        if key.startswith("_") and torch.is_tensor(value):
            parts = [torch.empty_like(value) for _ in range(n_procs)]
            dist.all_gather(parts, value.contiguous())
            gathered[key] = torch.cat(parts)
    return gathered


def mean_over_processes(sums: dict[str, torch.Tensor], n_procs: int) -> dict[str, torch.Tensor]:
    """Per-key sums averaged over all processes (epoch means of the losses)."""
    if n_procs == 1:
        return sums
    keys = sorted(sums)
    totals = torch.stack([sums[k] for k in keys])
    dist.all_reduce(totals)
    return dict(zip(keys, totals / n_procs))


def check_in_step(model: torch.nn.Module, n_procs: int) -> None:
    """Raise if the processes' weights or memory (BatchNorm statistics aside) have drifted apart."""
    if n_procs == 1:
        return
    states = [t.detach().double().sum() for name, t in model.state_dict().items()
              if t.is_floating_point() and not name.endswith(("running_mean", "running_var"))]
    mine = torch.stack(states)  # (n_tensors,)
    parts = [torch.empty_like(mine) for _ in range(n_procs)]
    dist.all_gather(parts, mine)
    if not all(torch.equal(parts[0], p) for p in parts[1:]):
        raise VadlabError("data-parallel processes hold different weights after an epoch; the run is not in step")
