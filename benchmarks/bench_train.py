"""Seconds per training epoch of each method variant at a preset, measured in one run (not a test).

    python benchmarks/bench_train.py --data data/ped2-mini --preset cpu [--epochs 1] [--threads 2]

Prints the measured seconds of `--epochs` epochs and the extrapolation to the preset's epoch count.
Run it on a quiet machine: other processes on the same cores inflate every number.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from vadlab import engine
from vadlab.data.layout import load_layout
from vadlab.registry import create_method

VARIANTS = [("mnad_pred", {}), ("mnad_pred", {"use_memory": False}), ("mnad_recon", {}),
            ("mnad_recon", {"use_memory": False})]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    layout = load_layout(args.data)
    print(f"torch {torch.__version__}, {args.threads} threads, data {layout.root}, preset {args.preset}")
    print(f"{'variant':24s} {'s/epoch':>8s} {'preset epochs':>14s} {'extrapolated s':>15s}")
    for name, overrides in VARIANTS:
        method = create_method(name, args.preset, **overrides)
        full_epochs = method.config.epochs
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            engine.fit(method, layout, out, progress=False, stop_after=args.epochs)
            per_epoch = (time.perf_counter() - t0) / args.epochs
        label = name + ("" if overrides.get("use_memory", True) else " (no memory)")
        print(f"{label:24s} {per_epoch:8.1f} {full_epochs:14d} {per_epoch * full_epochs:15.0f}")


if __name__ == "__main__":
    main()
