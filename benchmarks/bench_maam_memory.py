"""MAAM-Net's memory ops at the paper's scale (issue 9, item 6): the read with hard shrinkage (Eq. 1-4), the entropy
loss (Eq. 8) and the latent margin loss (Eq. 9), against their loop references (`vadlab.memory.reference`) and
against `torch.matmul` of the same shape, in one run.

A script, not a test. One frame's queries (B = 1, K queries, C = 512) against N items, N in {500, 2000}, K in
{345 (Ped2's 15x23 grid), 4096 (64x64)}, forward only, float32, CPU threads as set (`--threads`).

- read GFLOP/s counts the two matmuls of Eq. 1 and Eq. 4 (2 x 2KNC flops; the normalisations, softmax and
  shrinkage are not counted), so it is directly comparable with `torch.matmul` (K, C) @ (C, N) timed alone
  (2KNC flops): "read / matmul" is the share of matmul speed the whole read reaches.
- The loop references are independent per query: they run on the first `--ref-queries` queries only and their time
  is scaled linearly to K (marked `~`). Speed-up = reference time / vectorised time.

    .venv/bin/python benchmarks/bench_maam_memory.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vadlab import memory as mem  # noqa: E402
from vadlab.memory import reference as ref  # noqa: E402


def _time(fn, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ref-queries", type=int, default=2, help="queries the loop references run on")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    C = 512
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, forward only, B = 1, C = {C}")
    print("| N | K | op | vectorised (ms) | loop reference (ms) | speed-up | GFLOP/s | matmul GFLOP/s | "
          "read / matmul |")
    print("|---|---|---|---|---|---|---|---|---|")
    for N in (500, 2000):
        for K in (345, 64 * 64):
            _bench(N, K, C, args.ref_queries, args.repeat)


@torch.no_grad()
def _bench(N: int, K: int, C: int, r: int, repeat: int) -> None:
    """One (N, K) row group: the read, Eq. 8 and Eq. 9, each against its loop reference; the read against matmul."""
    q = torch.randn(1, K, C)
    items = torch.randn(N, C)
    lam = 1.0 / N
    z_hat, w = mem.shrinkage_read(q, items, lam)
    t_mm = _time(lambda: torch.matmul(q[0], items.T), repeat)
    gf_mm = 2 * K * N * C / t_mm / 1e9
    rows = [
        ("read (Eq. 1-4)", lambda: mem.shrinkage_read(q, items, lam),
         lambda: ref.ref_shrinkage_read(q[:, :r], items, lam), 4 * K * N * C),
        ("entropy (Eq. 8)", lambda: mem.entropy_loss(w), lambda: ref.ref_entropy(w[:, :r]), None),
        ("latent (Eq. 9)", lambda: mem.latent_margin_loss(z_hat, q, 0.1),
         lambda: ref.ref_latent_margin(z_hat[:, :r], q[:, :r], 0.1), None),
    ]
    for name, fast, slow, flops in rows:
        t_fast = _time(fast, repeat)
        t_ref = _time(slow, 1, warmup=0) * K / r  # per query, scaled to K
        gf = f"{flops / t_fast / 1e9:.1f}" if flops else ""
        share = f"{(flops / t_fast / 1e9) / gf_mm:.0%}" if flops else ""
        mm = f"{gf_mm:.1f}" if flops else ""
        print(f"| {N} | {K} | {name} | {t_fast * 1e3:.2f} | ~{t_ref * 1e3:.0f} | {t_ref / t_fast:.0f}x | "
              f"{gf} | {mm} | {share} |", flush=True)

if __name__ == "__main__":
    main()
