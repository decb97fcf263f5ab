"""STD at the `cpu` preset: train + evaluate runs in this process (so the K-means init time is measured too), then
summarise them: micro AUC beside the frame-difference baseline on the same frames, every signal alone, per anomaly
type on typed (synthetic) data, seconds per stage.

Usage (one group of runs under the CPU lock; a run folder that already has metrics.json is skipped):
    python benchmarks/std_study.py run DATA OUT/NAME --seed S [--ablation A] [--set k=v ...]
    python benchmarks/std_study.py summary OUT [--figures reports/std] > table.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from vadlab import engine
from vadlab.analysis import std as std_analysis
from vadlab.io import write_json
from vadlab.models import std as S
from vadlab.registry import create_method


def run(data: str, out: str, seed: int, ablations: list[str], sets: dict) -> dict:
    out = Path(out)
    if (out / "metrics.json").exists():
        return json.loads((out / "study.json").read_text())
    method = create_method("std", "cpu", ablations=ablations, **sets)
    t0 = time.perf_counter()
    history = engine.fit(method, data, out, seed=seed, device="cpu", progress=False)
    wall = time.perf_counter() - t0
    report = engine.evaluate_run(out, data, device="cpu", progress=False)
    info = {"data": data, "seed": seed, "ablations": ablations, "sets": sets, "wall_train_s": wall,
            "stage_seconds": std_analysis.stage_seconds(history, method.config.pretrain_epochs),
            "kmeans_init_seconds": getattr(method, "kmeans_seconds", None),
            "scoring_seconds": report["scoring_seconds"], "micro_auc": report["micro_auc"],
            "baseline_same_frames": report["baseline_frame_difference"]["on_method_frames"]["micro_auc"],
            "per_signal_auc": report["per_signal_auc"]}
    if report.get("per_type_auc"):
        info["per_type_signal_auc"] = std_analysis.per_type_signal_auc(out, data)
    if method.config.streams == "both":  # the diagnostic: xbar_lif = x_fif (real) + xbar_diff
        real = engine.evaluate_run(out, data, device="cpu", progress=False, overrides={"score_frame": "real"})
        info["score_frame_real"] = {"micro_auc": real["micro_auc"], "per_signal_auc": real["per_signal_auc"]}
    write_json(out / "study.json", info)
    print(f"{out}: micro AUC {report['micro_auc']:.4f} (baseline {info['baseline_same_frames']:.4f}), "
          f"stages {info['stage_seconds']}, k-means {info['kmeans_init_seconds']}", flush=True)
    return info


def summary(root: str) -> str:
    rows: dict[tuple[str, str], list[dict]] = {}
    for file in sorted(Path(root).glob("*/*/study.json")):
        info = json.loads(file.read_text())
        dataset, name = file.parent.parent.name, file.parent.name.rsplit("-s", 1)[0]
        rows.setdefault((dataset, name), []).append(info)
    lines = ["| data | run | seeds | micro AUC (per seed) | mean | baseline same frames | per signal alone (mean) "
             "| pretrain s | k-means s | alternate s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (dataset, name), infos in sorted(rows.items()):
        aucs = [i["micro_auc"] for i in infos]
        sig = {k: np.mean([i["per_signal_auc"][k] for i in infos]) for k in infos[0]["per_signal_auc"]}
        st = {k: np.mean([i["stage_seconds"][k] for i in infos]) for k in S.STAGES}
        km = [i["kmeans_init_seconds"] for i in infos if i["kmeans_init_seconds"] is not None]
        lines.append(f"| {dataset} | {name} | {len(infos)} | {' '.join(f'{a:.3f}' for a in aucs)} | "
                     f"{np.mean(aucs):.3f} | {infos[0]['baseline_same_frames']:.3f} | "
                     + ", ".join(f"{k} {v:.3f}" for k, v in sorted(sig.items())) + " | "
                     f"{st['pretrain']:.0f} | {np.mean(km) if km else float('nan'):.1f} | {st['alternate']:.0f} |")
    typed = [(d, n, i) for (d, n), infos in sorted(rows.items()) for i in infos if "per_type_signal_auc" in i]
    if typed:
        types = sorted({t for _, _, i in typed for t in i["per_type_signal_auc"]["score"]})
        lines += ["", "| data | run | seed | signal | " + " | ".join(types) + " |",
                  "|---|---|---|---|" + "---|" * len(types)]
        for d, n, i in typed:
            for sig, per in sorted(i["per_type_signal_auc"].items()):
                lines.append(f"| {d} | {n} | {i['seed']} | {sig} | "
                             + " | ".join(f"{per.get(t, float('nan')):.3f}" for t in types) + " |")
    return "\n".join(lines)


def figures(root: str, out: str) -> None:
    """comparison.png (micro AUC per run, mean over seeds, with the baseline on the same frames and the full model's
    signals alone) and per_type.png (AUC per anomaly type of each signal, synthetic) into `out`."""
    import matplotlib.pyplot as plt

    from vadlab import viz

    rows, errors = {}, {}
    for file in sorted(Path(root).glob("*/*/study.json")):
        info = json.loads(file.read_text())
        dataset, name = file.parent.parent.name, file.parent.name.rsplit("-s", 1)[0]
        rows.setdefault(dataset, {}).setdefault(name, []).append(info["micro_auc"])
        rows[dataset].setdefault("frame_difference", []).append(info["baseline_same_frames"])
        if name == "full":
            for sig in ("mot_error", "app_error", "cluster"):
                rows[dataset].setdefault(f"full: {sig} alone", []).append(info["per_signal_auc"][sig])
            rows[dataset].setdefault("full: x_fif + diff", []).append(info["score_frame_real"]["micro_auc"])
    means = {d: {n: float(np.mean(v)) for n, v in r.items()} for d, r in rows.items()}
    errors = {d: {n: float(np.std(v)) for n, v in r.items()} for d, r in rows.items()}
    viz.plot_comparison(means, errors=errors, path=Path(out) / "comparison.png")
    typed = []
    for file in sorted(Path(root).glob("*/*/study.json")):
        info = json.loads(file.read_text())
        if "per_type_signal_auc" in info and info["seed"] == 0:
            name = file.parent.name.rsplit("-s", 1)[0]
            for sig, per in info["per_type_signal_auc"].items():
                if sig in ("score", "mot_error", "app_error", "cluster"):
                    typed.append((f"{name}: {'fused score' if sig == 'score' else sig}", per))
    if typed:
        types = sorted({t for _, per in typed for t in per})
        grid = np.array([[per.get(t, np.nan) for t in types] for _, per in typed])
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(types), 0.9 + 0.32 * len(typed)))
        im = ax.imshow(grid, cmap="RdYlGn", vmin=0.3, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(types)), types, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(typed)), [n for n, _ in typed], fontsize=8)
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.03, label="frame AUC of the type vs all normal frames")
        ax.set_title("synthetic default, seed 0: AUC per anomaly type", fontsize=9)
        viz.save(fig, Path(out) / "per_type.png")


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("data")
    r.add_argument("out")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--ablation", action="append", default=[])
    r.add_argument("--set", action="append", default=[])
    s = sub.add_parser("summary")
    s.add_argument("root")
    s.add_argument("--figures", default=None, help="folder for comparison.png and per_type.png")
    a = p.parse_args(argv)
    if a.cmd == "run":
        sets = {}
        for kv in a.set:
            k, _, v = kv.partition("=")
            sets[k] = json.loads(v) if v[:1].isdigit() or v in ("true", "false") else v
        run(a.data, a.out, a.seed, a.ablation, sets)
    else:
        print(summary(a.root))
        if a.figures:
            figures(a.root, a.figures)


if __name__ == "__main__":
    sys.exit(main())
