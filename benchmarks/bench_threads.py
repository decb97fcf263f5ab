"""What two trainings at once cost on this machine, before and after vadlab's thread settings (not a test).

    python benchmarks/bench_threads.py --data DATA [--method mnad_pred] [--preset smoke] [--epochs 4]
        [--before-root /path/to/an/older/checkout]

Each case starts one or two real `vadlab train` processes at the same moment and reports the mean seconds per
training step of each (epoch seconds from history.json over the epoch's batches, the first epoch left out as
warm-up). `--before-root` runs the "before" cases from another checkout (e.g. a commit before vadlab.threads), with
its own directory first on the import path. Run it on a quiet machine: anything else on the cores inflates it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def _step_seconds(run: Path) -> float:
    info = json.loads((run / "run.json").read_text())
    history = json.loads((run / "history.json").read_text())
    batch = info["config"]["batch_size"]
    steps = max(info["train_clips"] // batch, 1)
    timed = history[1:] or history
    return sum(h["seconds"] for h in timed) / (len(timed) * steps)


def _case(args, out: Path, n_procs: int, env_extra: dict, extra_args: list[str], root: Path | None) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "VADLAB_THREADS")}
    env.update(env_extra)
    cwd = None
    if root is not None:
        env["PYTHONPATH"] = str(root)
        cwd = root  # `python -m` puts the working directory first on sys.path
    procs, runs = [], []
    for i in range(n_procs):
        run = out / f"run{i}"
        cmd = [sys.executable, "-m", "vadlab.cli", "train", args.method, "--data", str(Path(args.data).resolve()),
               "--out", str(run), "--preset", args.preset, "--epochs", str(args.epochs), "--quiet", "--seed", str(i)]
        cmd += [part for pair in args.set for part in ("--set", pair)]
        procs.append(subprocess.Popen(cmd + extra_args, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
        runs.append(run)
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a training failed: {err[-2000:]}")
    return [_step_seconds(run) for run in runs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--method", default="mnad_pred")
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--before-root", help="an older checkout to run the 'before' cases from")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to vadlab train")
    parser.add_argument("--skip-before-pair", action="store_true",
                        help="leave out 'two at once (before)' (it can take minutes at a larger preset)")
    args = parser.parse_args()
    before = Path(args.before_root).resolve() if args.before_root else None
    cases = [
        ("one run alone (this checkout)", 1, {}, [], None),
        ("two at once (this checkout: short OpenMP spin, threads = available cores)", 2, {}, [], None),
        ("two at once (this checkout, --threads 1 each)", 2, {}, ["--threads", "1"], None),
        ("one run alone (this checkout, OMP_WAIT_POLICY=PASSIVE)", 1, {"OMP_WAIT_POLICY": "PASSIVE"}, [], None),
        ("two at once (this checkout, OMP_WAIT_POLICY=PASSIVE)", 2, {"OMP_WAIT_POLICY": "PASSIVE"}, [], None),
    ]
    if before is not None:
        pair = [] if args.skip_before_pair else [("two at once (before: OpenMP defaults)", 2, {}, [], before)]
        cases = [("one run alone (before)", 1, {}, [], before)] + pair + cases
    print(f"{args.method} at {args.preset} {' '.join(args.set)}, {args.epochs} epochs, {os.cpu_count()} cores")
    print("| case | seconds per step (each process) |\n|---|---|")
    for label, n, env, extra, root in cases:
        with tempfile.TemporaryDirectory() as tmp:
            seconds = _case(args, Path(tmp), n, env, extra, root)
        print(f"| {label} | {', '.join(f'{s:.3f}' for s in seconds)} |", flush=True)


if __name__ == "__main__":
    main()
