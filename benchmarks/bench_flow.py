"""Optical flow speed (vadlab.data.flow): DIS against Farneback, and loading the cache.

A script, not a test. For every video of a dataset's splits: decode the frames to grey once (not timed), time
`compute_flow` per method (frames/s = flow fields per second), then fill the cache (`native_flow`, `load_flow` at
`--size`) and time loading it again: the native float16 cache (memory-mapped, every byte read) and the float32 cache
at the model's size, as the method's `extra_inputs` loads it.

    .venv/bin/python benchmarks/bench_flow.py data/ped2-mini --size 64x96
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root")
    parser.add_argument("--size", default="64x96")
    parser.add_argument("--splits", default="training,testing")
    parser.add_argument("--methods", default="dis,farneback")
    args = parser.parse_args()
    os.environ["VADLAB_CACHE"] = tempfile.mkdtemp(prefix="bench-flow-")  # a cold cache of our own
    from vadlab.data import flow as fl
    from vadlab.data.layout import load_layout, read_image

    size = tuple(int(x) for x in args.size.split("x"))
    layout = load_layout(args.root)
    videos = [v for s in args.splits.split(",") for v in layout.split(s)]
    grey = [[read_image(p, 1) for p in v.frames] for v in videos]
    n_flows = sum(len(v) - 1 for v in videos)
    h, w = grey[0][0].shape
    print(f"{layout.root}: {len(videos)} videos, {n_flows} flow fields at {w}x{h}; cv2 {cv2.__version__}, "
          f"{cv2.getNumThreads()} OpenCV threads")
    print("| method | compute (frames/s) | cache native float16 load (frames/s) | cache at "
          f"{size[0]}x{size[1]} float32 load (frames/s) | mean abs flow at {size[0]}x{size[1]} (px) |")
    print("|---|---|---|---|---|")
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        for frames in grey:
            fl.compute_flow(frames, method)
        compute = n_flows / (time.perf_counter() - t0)
        for v in videos:  # fill the cache (computes once more; not timed)
            fl.load_flow(v, size, method)
        t0 = time.perf_counter()
        total = 0.0
        for v in videos:
            total += float(np.asarray(fl.native_flow(v, method)[:-1], np.float32).sum())  # touch every byte
        native = n_flows / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        mags = []
        for v in videos:
            small = fl.load_flow(v, size, method)
            mags.append(np.abs(small[:-1]).mean())
        resized = n_flows / (time.perf_counter() - t0)
        print(f"| {method} | {compute:.1f} | {native:.0f} | {resized:.0f} | {np.mean(mags):.3f} |")


if __name__ == "__main__":
    main()
