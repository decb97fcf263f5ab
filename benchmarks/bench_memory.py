"""Time the vectorised memory ops (vadlab.memory) against the plain loop references of tests/test_memory.py.

A script, not a test: prints per-op times and the speed-up ratio (reference / vectorised), all measured in one
run. The loop reference always runs on CPU (it is Python loops); the vectorised op runs on CPU and, when
available, on CUDA.

    .venv/bin/python benchmarks/bench_memory.py               # sizes: cpu and paper
    .venv/bin/python benchmarks/bench_memory.py --sizes cpu   # quick
    .venv/bin/python benchmarks/bench_memory.py --threads 2   # multithreaded CPU ops
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vadlab import memory as mem  # noqa: E402


def _load_reference():
    """Import the loop references from tests/test_memory.py (single source of truth)."""
    spec = importlib.util.spec_from_file_location("_memory_reference", ROOT / "tests" / "test_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# name: (B, K, M, C, image (Ch, H, W)) -- K = feature map H*W
SIZES = {
    "cpu": (8, 8 * 8, 10, 128, (1, 64, 64)),  # cpu preset: batch 8, 64x64 grey frames, encoder stride 8
    "paper": (4, 32 * 32, 10, 512, (3, 256, 256)),  # MNAD: 256x256 RGB, 32x32x512 query map, M = 10
}


def _time(fn, device, repeat, warmup=2):
    """Median wall time of fn() in seconds, synchronising CUDA around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _ops(ref, q, items, pred, target, margin=1.0):
    """(name, vectorised fn(q, items, pred, target), reference fn on CPU tensors)."""
    return [
        ("read_weights (Eq.1)", lambda a, b, p, t: mem.read_weights(a, b), lambda: ref.ref_read_weights(q, items)),
        ("read (Eq.2)", lambda a, b, p, t: mem.read(a, b), lambda: ref.ref_read(q, items)),
        ("nearest_items (Eq.11,13)", lambda a, b, p, t: mem.nearest_items(a, b), lambda: ref.ref_nearest(q, items)),
        ("update (Eq.3-5)", lambda a, b, p, t: mem.update(a, b), lambda: ref.ref_update(q, items)),
        ("weighted_regular_score (Eq.6-7)", lambda a, b, p, t: mem.weighted_regular_score(p, t),
         lambda: ref.ref_weighted_regular_score(pred, target)),
        ("compactness_loss (Eq.10)", lambda a, b, p, t: mem.compactness_loss(a, b),
         lambda: ref.ref_compactness(q, items)),
        ("separateness_loss (Eq.12)", lambda a, b, p, t: mem.separateness_loss(a, b, margin),
         lambda: ref.ref_separateness(q, items, margin)),
        ("feature_distance (Eq.14)", lambda a, b, p, t: mem.feature_distance(a, b),
         lambda: ref.ref_feature_distance(q, items)),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per vectorised op (median reported)")
    parser.add_argument("--ref-repeat", type=int, default=1, help="timed calls per loop reference")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: the loop reference is single-threaded, and on a "
                             "shared machine multithreaded timings are dominated by threads waiting on each other)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    ref = _load_reference()
    dtype = getattr(torch, args.dtype)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {args.dtype}, CPU threads {torch.get_num_threads()}"
          + (f", CUDA {torch.cuda.get_device_name(0)}" if "cuda" in devices else ", no CUDA"))

    for size in args.sizes:
        B, K, M, C, (Ch, H, W) = SIZES[size]
        q, items = ref.make(B, K, M, C, dtype, seed=0)
        g = torch.Generator().manual_seed(1)
        pred = torch.rand(B, Ch, H, W, generator=g).to(dtype)
        target = torch.rand(B, Ch, H, W, generator=g).to(dtype)
        print(f"\n== size '{size}': B={B} K={K} M={M} C={C}, images {B}x{Ch}x{H}x{W} ==")
        header = f"{'op':34s} {'loop ref (cpu)':>15s}" + "".join(f" {d + ' vec':>12s} {'ratio':>9s}" for d in devices)
        print(header)
        on = {d: (q.to(d), items.to(d), pred.to(d), target.to(d)) for d in devices}
        for name, vec, reference in _ops(ref, q, items, pred, target):
            t_ref = _time(reference, "cpu", args.ref_repeat, warmup=0)
            line = f"{name:34s} {t_ref * 1e3:12.1f} ms"
            for d in devices:
                t_vec = _time(lambda: vec(*on[d]), d, args.repeat)
                line += f" {t_vec * 1e3:9.3f} ms {t_ref / t_vec:8.0f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
