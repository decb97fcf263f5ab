"""Data-parallel training: a real `torchrun` with two CPU processes (gloo) against a plain definition of it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import write_random_layout
from torch.utils.data import DistributedSampler, default_collate

from vadlab.data.clips import ClipDataset
from vadlab.data.layout import load_layout
from vadlab.engine import set_seed
from vadlab.registry import create_method

SEED = 5


def _plain_data_parallel(data, epochs: int) -> dict:
    """Two replicas of MNAD-P from one seeded init, trained the way DDP defines it, written out step by step.

    Each epoch, rank r takes its shard of one permutation (DistributedSampler, seeded by seed and epoch). Each step,
    replica 1 first takes replica 0's buffers (DDP broadcasts them before a forward pass), each replica runs its own
    batch (its own BatchNorm statistics), the gradients are averaged, both take the same Adam step, and both update
    their memory with the queries of both batches, rank 0's first (the global batch)."""
    method = create_method("mnad_pred", "smoke", epochs=epochs)
    cfg = method.config
    set_seed(SEED)
    first = method.build_model()
    replicas = [first, copy.deepcopy(first)]
    optimizers = [torch.optim.Adam(r.parameters(), lr=cfg.lr, betas=(0.9, 0.999)) for r in replicas]
    schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=epochs) for o in optimizers]
    dataset = ClipDataset(load_layout(data).training, method.clip_spec(), cfg.image_size, cfg.channels)
    for epoch in range(epochs):
        shards = [list(DistributedSampler(dataset, 2, r, shuffle=True, seed=SEED * 1000 + epoch)) for r in range(2)]
        steps = len(shards[0]) // cfg.batch_size  # the last incomplete batch is dropped
        for step in range(steps):
            replicas[1].load_state_dict({k: v for k, v in replicas[0].state_dict().items()
                                         if k in dict(replicas[0].named_buffers())}, strict=False)
            queries = []
            for r, replica in enumerate(replicas):
                replica.train()
                shard = shards[r][step * cfg.batch_size:(step + 1) * cfg.batch_size]
                batch = default_collate([dataset[i] for i in shard])
                method.model = method.train_net = replica
                out = method.training_step(batch)
                optimizers[r].zero_grad()
                out["loss"].backward()
                queries.append(out["_queries"])
            for p0, p1 in zip(replicas[0].parameters(), replicas[1].parameters()):
                mean = (p0.grad + p1.grad) / 2
                p0.grad, p1.grad = mean.clone(), mean.clone()
            for r, replica in enumerate(replicas):
                optimizers[r].step()
                method.model = replica
                method.after_optimizer_step({"_queries": torch.cat(queries)})
        for s in schedulers:
            s.step()
    return replicas[0].state_dict()


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_is_plain_data_parallel_training(tmp_path):
    data = write_random_layout(tmp_path / "data", n_train=3, frames=20, size=(32, 32))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vadlab.cli", "train", "mnad_pred", "--data", str(data), "--out", str(run), "--preset", "smoke",
           "--epochs", "2", "--seed", str(SEED), "--device", "cpu", "--quiet"]
    proc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained mnad_pred") == 1  # rank 0 reports, rank 1 stays quiet
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    info = json.loads((run / "run.json").read_text())
    assert state["epoch"] == 2 and info["processes"] == 2 and info["train_clips"] == 48

    expected = _plain_data_parallel(data, epochs=2)
    assert set(state["model"]) == set(expected)
    for name, value in expected.items():  # float sums in another order: close, not bit-equal
        torch.testing.assert_close(state["model"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    # and it is not simply the single-process run: the shards changed what was learned
    single = tmp_path / "single"
    subprocess.run([sys.executable, "-m", "vadlab.cli"] + cmd[cmd.index("train"):cmd.index("--out")]
                   + ["--out", str(single)] + cmd[cmd.index("--preset"):], check=True, capture_output=True,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))
    alone = torch.load(single / "checkpoint.pt", weights_only=False)["model"]
    assert not torch.allclose(alone["memory"], state["model"]["memory"], atol=1e-3)
