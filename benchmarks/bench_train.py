"""Seconds per training epoch of every registered method and each of its declared ablations at a preset,
measured in one run (not a test).

    python benchmarks/bench_train.py --data data/ped2-mini --preset cpu [--epochs 1] [--threads 2] [--methods a,b]

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
from vadlab.registry import create_method, get_spec, list_methods


def variants(methods: list[str]) -> list[tuple[str, list[str]]]:
    """(method, ablations): each method as it is, then with each of its declared ablations."""
    return [(name, ablation) for name in methods for ablation in [[]] + [[a] for a in get_spec(name).cls.ablations]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--methods", help="comma-separated method names (default: every registered method)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    layout = load_layout(args.data)
    print(f"torch {torch.__version__}, {args.threads} threads, data {layout.root}, preset {args.preset}")
    print(f"{'variant':24s} {'s/epoch':>8s} {'preset epochs':>14s} {'extrapolated s':>15s}")
    methods = args.methods.split(",") if args.methods else list_methods()
    for name, ablations in variants(methods):
        method = create_method(name, args.preset, ablations=ablations)
        full_epochs = method.config.epochs
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            engine.fit(method, layout, out, progress=False, stop_after=args.epochs)
            per_epoch = (time.perf_counter() - t0) / args.epochs
        label = name + "".join(f" ({a})" for a in ablations)
        print(f"{label:24s} {per_epoch:8.1f} {full_epochs:14d} {per_epoch * full_epochs:15.0f}")


if __name__ == "__main__":
    main()
