"""The table of `benchmarks/cpu_budget_fullsize.sh` (issue 27, item 3; issue 28's no-memory rows): per run the
training clips, steps per epoch, epochs, training seconds (the epochs' own) and what the same epochs would take uncut
(the measured seconds per step times every clip's steps), the whole command's wall seconds (training, calibration on
the training frames, evaluation), micro AUC, each signal's AUC, and frame difference on the same frames.

usage: python benchmarks/cpu_budget_report.py [OUT] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def rows(out: Path) -> list[dict]:
    found = []
    for metrics in sorted(out.glob("seed*/*/metrics.json")):
        run = metrics.parent
        info = json.loads((run / "run.json").read_text())
        history = json.loads((run / "history.json").read_text())
        report = json.loads(metrics.read_text())
        cfg = info["config"]
        clips = info["train_clips"]
        full = -(-clips // cfg["batch_size"])
        cut = cfg.get("steps_per_epoch") or 0
        wall = run / "wall.txt"
        found.append({
            "run": run.name, "seed": info["seed"], "data": Path(info["data"]).name, "clips": clips,
            "steps": min(full, cut) if cut else full, "full_steps": full, "epochs": len(history),
            "train_s": sum(h["seconds"] for h in history),
            "wall_s": float(wall.read_text()) if wall.exists() else float("nan"),
            "auc": report["micro_auc"], "signals": report.get("per_signal_auc", {}),
            "fd": report["baseline_frame_difference"]["on_method_frames"]["micro_auc"],
        })
    return found


def table(found: list[dict]) -> str:
    lines = ["| run | seed | data | training clips | steps per epoch (uncut: clips / batch) | epochs | training s | "
             "training s uncut (estimate) | wall s (train + calibrate + evaluate) | micro AUC | each signal alone | "
             "frame difference, same frames |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in found:
        signals = ", ".join(f"{k} {v:.3f}" for k, v in r["signals"].items())
        uncut = r["train_s"] * r["full_steps"] / r["steps"]
        lines.append(f"| {r['run']} | {r['seed']} | {r['data']} | {r['clips']} | {r['steps']} ({r['full_steps']}) | "
                     f"{r['epochs']} | {r['train_s']:.0f} | {uncut:.0f} | "
                     f"{r['wall_s']:.0f} ({r['wall_s'] / 60:.1f} min) | "
                     f"{r['auc']:.3f} | {signals} | {r['fd']:.3f} |")
    by_run: dict[str, list[float]] = {}
    for r in found:
        by_run.setdefault(r["run"], []).append(r["auc"])
    if any(len(v) > 1 for v in by_run.values()):
        lines += ["", "| run | seeds | micro AUC mean ± std |", "|---|---|---|"]
        for run, aucs in by_run.items():
            spread = statistics.stdev(aucs) if len(aucs) > 1 else float("nan")
            lines.append(f"| {run} | {len(aucs)} | {statistics.mean(aucs):.3f} ± {spread:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="runs/fullsize")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    text = table(rows(Path(args.out)))
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
