"""Time per slider step of the explorer, and the one-off precomputation per video (a measurement, never a test).

A slider step is the callback from a new frame value to the updated figure (every panel's array set, the marker
moved, the weights of the query under the mouse redrawn), in the kernel; `tools/screenshot_explorer.py` measures the
step in a running JupyterLab (the key press to the new frame on screen). Run under the CPU lock on a 2-core machine:

    python benchmarks/bench_explore.py --run runs/demo/mnad_pred [--compare runs/demo/mnad_recon] [--threads 2]

Without --run it times an untrained method at its `cpu` preset on the synthetic `tiny` data (the arrays, hence the
time per step, have the sizes of a trained one).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run")
    parser.add_argument("--compare")
    parser.add_argument("--data")
    parser.add_argument("--method", default="mnad_pred", help="without --run: this method, untrained, at --preset")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from vadlab.explore import Explorer, benchmark_steps

    if args.run:
        explorer = Explorer(args.run, args.data, compare=args.compare, device="cpu")
    else:
        from vadlab.data.synthetic import synthesize
        from vadlab.registry import create_method

        root = args.data or synthesize(tempfile.mkdtemp(prefix="bench-explore-") + "/tiny", "tiny", progress=False).root
        explorer = Explorer(create_method(args.method, args.preset), root, device="cpu")
    stats = benchmark_steps(explorer, args.steps)
    maps = explorer.maps(0, explorer.video.value)
    stats.update({"runs": [label for label, _ in explorer.runs], "video": explorer.video.value,
                  "frame_size": list(maps.frames.shape[1:]), "threads": args.threads,
                  "precompute_ms_per_frame": 1000 * stats["precompute_s"] / stats["frames"]})
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
