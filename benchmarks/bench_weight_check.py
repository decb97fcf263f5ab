"""The cost of the divergence check on the weights (`vadlab.guards.WeightWatch`), in one process (not a test):

1. seconds per training step of one epoch through `engine.fit` (stop_after=1, after a warm-up epoch) with the check
   after every step and without it (`guards.CHECK_EVERY` 1 and 0), alternating `--repeats` times, so both see the
   same machine;
2. the check alone: the median seconds of `WeightWatch.after_step` on the method's model.

    python benchmarks/bench_weight_check.py --data data/ped2-mini --method mnad_pred --preset cpu --threads 2

Run it on a quiet machine (e.g. under the shared CPU lock): other processes on the same cores inflate every number.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time

import torch

from vadlab import engine, guards
from vadlab.data.layout import load_layout
from vadlab.registry import create_method


def _steps(method, layout) -> int:
    dataset = method.train_dataset(layout)
    batches = method.train_batches(dataset, epoch=0, seed=0, rank=0, world_size=1, batch_size=method.config.batch_size)
    if batches is not None:
        return len(batches)
    n = len(dataset)
    return n // method.config.batch_size if n > method.config.batch_size else math.ceil(n / method.config.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--method", default="mnad_pred")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="epochs each way, alternating (on, off, on, off, ...)")
    args = parser.parse_args()
    layout = load_layout(args.data)
    steps = _steps(create_method(args.method, args.preset), layout)
    per_step: dict[str, list[float]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory() as tmp:  # a warm-up epoch, not counted (first-use costs of torch and caches)
        engine.fit(create_method(args.method, args.preset), layout, f"{tmp}/run", seed=0, device="cpu",
                   progress=False, stop_after=1, threads=args.threads)
    for _ in range(args.repeats):
        for label, every in (("with", 1), ("without", 0)):
            guards.CHECK_EVERY = every
            method = create_method(args.method, args.preset)
            with tempfile.TemporaryDirectory() as tmp:
                history = engine.fit(method, layout, f"{tmp}/run", seed=0, device="cpu", progress=False,
                                     stop_after=1, threads=args.threads)
            per_step[label].append(history[0]["seconds"] / steps)
            print(f"{label} check: {per_step[label][-1]:.4f} s/step", flush=True)
    guards.CHECK_EVERY = 1
    method = create_method(args.method, args.preset)
    model = method.build_model()
    watch = guards.WeightWatch(model, every=1)
    loss = torch.tensor(1.0)
    calls = []
    for _ in range(200):
        t0 = time.perf_counter()
        watch.after_step(loss, "bench", "")
        calls.append(time.perf_counter() - t0)
    result = {"method": args.method, "preset": args.preset, "threads": torch.get_num_threads(), "steps": steps,
              "seconds_per_step": per_step, "mean_with": statistics.mean(per_step["with"]),
              "mean_without": statistics.mean(per_step["without"]),
              "check_alone_median_s": statistics.median(calls),
              "tensors_checked": len(watch.names)}
    result["overhead"] = result["mean_with"] / result["mean_without"] - 1
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
