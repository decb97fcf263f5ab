"""Seconds per training epoch of every registered method and each of its declared ablations at a preset,
measured in one run (not a test).

    python benchmarks/bench_train.py --data data/ped2-mini --preset cpu [--epochs 1] [--threads 2] [--methods a,b]
        [--fold data/ped2-mini-k3f0] [--no-ablations]

Prints the measured seconds of `--epochs` epochs (the epochs' own, from the run's history, and the whole `engine.fit`
with the model's build) and the extrapolation to the preset's epoch count. `--fold`: the data of the methods that
train on labelled anomalies (DREAM). Before/after a change: run this script with `PYTHONPATH` set to the old checkout.
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
    parser.add_argument("--fold", help="dataset for the methods that train on labelled anomalies (default: --data)")
    parser.add_argument("--no-ablations", action="store_true", help="each method as its preset is, no ablation")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    layout = load_layout(args.data)
    fold = load_layout(args.fold) if args.fold else layout
    print(f"torch {torch.__version__}, {args.threads} threads, data {layout.root}, preset {args.preset}")
    print(f"{'variant':24s} {'steps':>6s} {'s/epoch':>8s} {'fit s/epoch':>12s} {'preset epochs':>14s} "
          f"{'extrapolated s':>15s}")
    methods = args.methods.split(",") if args.methods else list_methods()
    for name, ablations in [(m, []) for m in methods] if args.no_ablations else variants(methods):
        method = create_method(name, args.preset, ablations=ablations)
        full_epochs = method.config.epochs
        data = fold if getattr(method.config, "uses_anomalies", False) else layout
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            history = engine.fit(method, data, out, progress=False, stop_after=args.epochs)
            per_fit = (time.perf_counter() - t0) / args.epochs
        per_epoch = sum(h["seconds"] for h in history) / len(history)
        steps = len(engine._train_loader(method, method.train_dataset(data), 0, 0, _one(), True, torch.device("cpu")))
        label = name + "".join(f" ({a})" for a in ablations)
        print(f"{label:24s} {steps:6d} {per_epoch:8.1f} {per_fit:12.1f} {full_epochs:14d} "
              f"{per_epoch * full_epochs:15.0f}", flush=True)


def _one():
    from vadlab import distributed

    return distributed.Group(0, 1, torch.device("cpu"))


if __name__ == "__main__":
    main()
