"""Time the vectorised memory ops (vadlab.memory) against the plain loop references of vadlab.memory.reference.

A script, not a test: prints per-op times and the speed-up ratio (reference / vectorised), all measured in one
run. The loop reference always runs on CPU (it is Python loops); the vectorised op runs on CPU and, when
available, on CUDA. Where a reference is independent per query (or per location), it is timed on the first
``--ref-cap`` rows only and scaled linearly to the full size; such times are marked ``~``.

    .venv/bin/python benchmarks/bench_memory.py               # sizes: cpu and paper
    .venv/bin/python benchmarks/bench_memory.py --sizes cpu   # quick
    .venv/bin/python benchmarks/bench_memory.py --threads 2   # multithreaded CPU ops
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

# Per method: MNAD (B, K, M, C, image (Ch, H, W)) -- K = feature map H*W; DREAM (B, K, M, C); MAAM (B, K, N, C);
# STD (B, D, H, W, K clusters).
SIZES = {
    "cpu": dict(  # small: batch 8 of 64x64 grey frames at stride 8 (MNAD's cpu preset); the others scaled alike
        mnad=(8, 8 * 8, 10, 128, (1, 64, 64)),
        dream=(4, 8 * 8, 10, 64),
        maam=(4, 4 * 5, 100, 128),
        std=(4, 128, 8, 8, 32),
    ),
    "paper": dict(
        mnad=(4, 32 * 32, 10, 512, (3, 256, 256)),  # MNAD Sec. 4.1: 256x256 RGB, 32x32x512 query map, M = 10
        dream=(4, 32 * 32, 10, 256),  # DREAM Sec. III-B, IV-B: 32x32 queries of C = 256 per branch, M = 10, batch 4
        maam=(15, 15 * 23, 500, 512),  # MAAM Table 1, Sec. 4.3: Ped2 z 15x23x512, N = 500; batch 15 (public code)
        std=(4, 512, 32, 32, 32),  # STD Sec. 4.4: K = 32; r 512 x 32 x 32 (vadlab proposal); batch 4 (public config)
    ),
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


def _inputs(size, dtype):
    """All inputs of one size preset, as a dict of CPU tensors."""
    B, K, M, C, (Ch, H, W) = size["mnad"]
    t = {}
    t["q"], t["items"] = ref.make(B, K, M, C, dtype, seed=0)
    g = torch.Generator().manual_seed(1)
    t["pred"] = torch.rand(B, Ch, H, W, generator=g).to(dtype)
    t["target"] = torch.rand(B, Ch, H, W, generator=g).to(dtype)

    B, K, M, C = size["dream"]
    t["dq"], t["ditems"] = ref.make(B, K, M, C, dtype, seed=2)
    t["dmask"] = torch.arange(B) % 4 != 3  # 3 normal + 1 abnormal clip per 4 (dream.md's batch)
    t["fa"], t["fp"], t["fn"] = (torch.randn(B, C, generator=g).to(dtype) for _ in range(3))  # GAP features f

    B, K, N, C = size["maam"]
    t["mq"] = torch.randn(B, K, C, generator=g).to(dtype)  # un-normalised latent z
    t["mitems"] = (0.02 * torch.randn(N, C, generator=g)).to(dtype)  # learned memory, init sigma 0.02 (code)
    t["mw"] = mem.shrinkage_read(t["mq"], t["mitems"], 1.0 / N)[1]  # (B, K, N) shrunk weights
    t["mread"] = mem.shrinkage_read(t["mq"], t["mitems"], 1.0 / N)[0]  # (B, K, C)

    B, D, H, W, Kc = size["std"]
    t["rmap"] = torch.rand(B, D, H, W, generator=g).to(dtype)
    t["centres"] = torch.rand(Kc, D, generator=g).to(dtype)
    t["r"] = t["rmap"].permute(0, 2, 3, 1).reshape(-1, D)  # (B*H*W, D)
    return t


def _rows(x, cap):
    """The first ``cap`` queries of a (B, K, ...) tensor as (1, cap', ...), and the scale full / cap'."""
    flat = x.reshape(1, -1, *x.shape[2:])
    n = min(cap, flat.shape[1])
    return flat[:, :n], flat.shape[1] / n


def _ops(t, cap, margin=1.0):
    """(name, vectorised fn(d) on a dict of device tensors, reference thunk on CPU tensors, reference scale)."""
    lam = 1.0 / t["mitems"].shape[0]
    mq_cap, s_mq = _rows(t["mq"], cap)
    mw_cap, s_mw = _rows(t["mw"], cap)
    mr_cap, _ = _rows(t["mread"], cap)
    r_cap = t["r"][:cap]
    s_r = t["r"].shape[0] / r_cap.shape[0]
    rmap_cap = t["rmap"][:1, :, : max(1, cap // t["rmap"].shape[3])]  # first rows of the first clip
    s_map = t["rmap"][:, 0].numel() / rmap_cap[:, 0].numel()
    return [
        # MNAD
        ("read_weights (MNAD Eq.1)", lambda d: mem.read_weights(d["q"], d["items"]),
         lambda: ref.ref_read_weights(t["q"], t["items"]), 1.0),
        ("read (MNAD Eq.2)", lambda d: mem.read(d["q"], d["items"]), lambda: ref.ref_read(t["q"], t["items"]), 1.0),
        ("nearest_items (MNAD Eq.11,13)", lambda d: mem.nearest_items(d["q"], d["items"]),
         lambda: ref.ref_nearest(t["q"], t["items"]), 1.0),
        ("update (MNAD Eq.3-5)", lambda d: mem.update(d["q"], d["items"]),
         lambda: ref.ref_update(t["q"], t["items"]), 1.0),
        ("weighted_regular_score (Eq.6-7)", lambda d: mem.weighted_regular_score(d["pred"], d["target"]),
         lambda: ref.ref_weighted_regular_score(t["pred"], t["target"]), 1.0),
        ("compactness_loss (MNAD Eq.10)", lambda d: mem.compactness_loss(d["q"], d["items"]),
         lambda: ref.ref_compactness(t["q"], t["items"]), 1.0),
        ("separateness_loss (MNAD Eq.12)", lambda d: mem.separateness_loss(d["q"], d["items"], margin),
         lambda: ref.ref_separateness(t["q"], t["items"], margin), 1.0),
        ("feature_distance (MNAD Eq.14)", lambda d: mem.feature_distance(d["q"], d["items"]),
         lambda: ref.ref_feature_distance(t["q"], t["items"]), 1.0),
        # DREAM
        ("update (DREAM Eq.3-4)", lambda d: mem.update(d["dq"], d["ditems"], d["dmask"], max_renorm=False),
         lambda: ref.ref_update(t["dq"], t["ditems"], t["dmask"], max_renorm=False), 1.0),
        ("compactness sq+mask (DREAM Eq.7)",
         lambda d: mem.compactness_loss(d["dq"], d["ditems"], squared=True, query_mask=d["dmask"]),
         lambda: ref.ref_compactness(t["dq"], t["ditems"], True, t["dmask"]), 1.0),
        ("separateness sq+mask (DREAM Eq.8)",
         lambda d: mem.separateness_loss(d["dq"], d["ditems"], margin, squared=True, query_mask=d["dmask"]),
         lambda: ref.ref_separateness(t["dq"], t["ditems"], margin, True, t["dmask"]), 1.0),
        ("feature_distance sq (DREAM Eq.11)", lambda d: mem.feature_distance(d["dq"], d["ditems"], squared=True),
         lambda: ref.ref_feature_distance(t["dq"], t["ditems"], squared=True), 1.0),
        ("triplet_loss (DREAM Eq.5)", lambda d: mem.triplet_loss(d["fa"], d["fp"], d["fn"], margin),
         lambda: ref.ref_triplet(t["fa"], t["fp"], t["fn"], margin), 1.0),
        # MAAM
        ("cosine_similarity (MAAM Eq.1)", lambda d: mem.cosine_similarity(d["mq"], d["mitems"]),
         lambda: ref.ref_cosine_similarity(mq_cap, t["mitems"]), s_mq),
        ("hard_shrinkage (MAAM Eq.3)", lambda d: mem.hard_shrinkage(d["mw"], lam),
         lambda: ref.ref_hard_shrinkage(mw_cap, lam), s_mw),
        ("shrinkage_read (MAAM Eq.1-4)", lambda d: mem.shrinkage_read(d["mq"], d["mitems"], lam),
         lambda: ref.ref_shrinkage_read(mq_cap, t["mitems"], lam), s_mq),
        ("entropy_loss (MAAM Eq.8)", lambda d: mem.entropy_loss(d["mw"]), lambda: ref.ref_entropy(mw_cap), s_mw),
        ("latent_margin_loss (MAAM Eq.9)", lambda d: mem.latent_margin_loss(d["mread"], d["mq"], 0.1),
         lambda: ref.ref_latent_margin(mr_cap, mq_cap, 0.1), s_mq),
        # STD
        ("soft_assignment (STD Eq.10)", lambda d: mem.soft_assignment(d["r"], d["centres"], 25.0),
         lambda: ref.ref_soft_assignment(r_cap, t["centres"], 25.0), s_r),
        ("cluster_distance (STD Eq.10)", lambda d: mem.cluster_distance(d["r"], d["centres"], 25.0),
         lambda: ref.ref_cluster_distance(r_cap, t["centres"], 25.0), s_r),
        ("cluster_loss (STD Eq.11)", lambda d: mem.cluster_loss(d["rmap"], d["centres"], 25.0),
         lambda: ref.ref_cluster_loss(rmap_cap, t["centres"], 25.0), s_map * t["rmap"].shape[0]),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per vectorised op (median reported)")
    parser.add_argument("--ref-repeat", type=int, default=1, help="timed calls per loop reference")
    parser.add_argument("--ref-cap", type=int, default=256,
                        help="per-query references (MAAM, STD) run on at most this many queries / locations and are "
                             "scaled linearly to the full size (marked ~)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: the loop reference is single-threaded, and on a "
                             "shared machine multithreaded timings are dominated by threads waiting on each other)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    dtype = getattr(torch, args.dtype)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {args.dtype}, CPU threads {torch.get_num_threads()}"
          + (f", CUDA {torch.cuda.get_device_name(0)}" if "cuda" in devices else ", no CUDA"))

    for size in args.sizes:
        sz = SIZES[size]
        t = _inputs(sz, dtype)
        B, K, M, C, (Ch, H, W) = sz["mnad"]
        print(f"\n== size '{size}': MNAD B={B} K={K} M={M} C={C}, images {B}x{Ch}x{H}x{W}; "
              f"DREAM B,K,M,C={sz['dream']}; MAAM B,K,N,C={sz['maam']}; STD B,D,H,W,K={sz['std']} ==")
        header = f"{'op':36s} {'loop ref (cpu)':>16s}" + "".join(f" {d + ' vec':>12s} {'ratio':>9s}" for d in devices)
        print(header)
        on = {d: {k: v.to(d) for k, v in t.items()} for d in devices}
        for name, vec, reference, scale in _ops(t, args.ref_cap):
            t_ref = _time(reference, "cpu", args.ref_repeat, warmup=0) * scale
            mark = "~" if scale != 1.0 else " "
            line = f"{name:36s} {mark}{t_ref * 1e3:12.1f} ms"
            for d in devices:
                t_vec = _time(lambda fn=vec, x=on[d]: fn(x), d, args.repeat)
                line += f" {t_vec * 1e3:9.3f} ms {t_ref / t_vec:8.0f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
