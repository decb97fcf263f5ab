"""Seconds per training step of methods at a preset, for `vadlab reproduce --dry-run` (a method registers them:
`register_method(step_seconds={preset: (seconds, source)})`): one epoch through `engine.fit` (stop_after=1), its
seconds divided by the epoch's steps (not a test).

    python benchmarks/bench_steps.py --data data/ped2-mini --preset cpu --methods maam [--threads 2]
    python benchmarks/bench_steps.py --data data/ped2-k3f0 --preset cpu --methods dream   # needs labelled anomalies

Run it on a quiet machine (e.g. under the shared CPU lock): other processes on the same cores inflate every number.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile

import torch

from vadlab import engine
from vadlab.data.layout import load_layout
from vadlab.registry import create_method


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--methods", required=True, help="comma-separated method names")
    parser.add_argument("--threads", type=int, help="torch threads (default: vadlab's, from the environment)")
    args = parser.parse_args()
    layout = load_layout(args.data)
    for name in args.methods.split(","):
        method = create_method(name, args.preset)
        with tempfile.TemporaryDirectory() as tmp:
            history = engine.fit(method, layout, f"{tmp}/run", seed=0, device="cpu", progress=False, stop_after=1,
                                 threads=args.threads)
        dataset = method.train_dataset(layout)
        batches = method.train_batches(dataset, epoch=0, seed=0, rank=0, world_size=1,
                                       batch_size=method.config.batch_size)
        steps = len(batches) if batches is not None else math.ceil(len(dataset) / method.config.batch_size)
        seconds = history[0]["seconds"]
        print(json.dumps({"method": name, "preset": args.preset, "data": str(layout.root), "epoch_seconds": seconds,
                          "steps": steps, "seconds_per_step": round(seconds / steps, 4),
                          "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
