"""Tables and figures of DREAM's measurements (benchmarks/dream_study.sh) into reports/dream/.

Usage: python benchmarks/dream_report.py STUDY_DIR [OUT]   (STUDY_DIR as given to dream_study.sh)
Reads every evaluated run; computes the r statistics (Sec. IV-G) and `vadlab.analysis.dream.diagnostics` of the
DREAM runs (a few seconds each on the CPU); writes tables.md, numbers.json and the figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from vadlab import analysis, engine, viz
from vadlab.analysis import dream
from vadlab.data import splits
from vadlab.data.layout import load_layout
from vadlab.io import write_json


def _reports(folder: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for file in sorted(folder.glob("seed*/*/metrics.json")):
        out.setdefault(file.parent.name, []).append(json.loads(file.read_text()))
    return out


def _fmt(values: list[float], spec: str = ".3f") -> str:
    return f"{np.mean(values):{spec}} ± {np.std(values):{spec}} ({', '.join(f'{v:{spec}}' for v in values)})"


def main(study: Path, out: Path) -> None:
    lines, numbers = [], {}
    synth = _reports(study / "synth")
    if synth:
        lines += ["## Table III on synthetic default (micro AUC, mean ± std over seeds)", "",
                  "| row | micro AUC | macro AUC | train s |", "|---|---|---|---|"]
        order = ["unet_mem", "unet_disc", "unet_mem_disc", "dream", "mnad_pred"]
        rows, spread = {}, {}
        for name in [n for n in order if n in synth]:
            reps = synth[name]
            aucs = [r["micro_auc"] for r in reps]
            rows[name], spread[name] = float(np.mean(aucs)), float(np.std(aucs))
            lines.append(f"| {name} | {_fmt(aucs)} | {np.mean([r['macro_auc'] for r in reps]):.3f} | "
                         f"{np.mean([r.get('train_seconds', np.nan) for r in reps]):.0f} |")
        base = [r["baseline_frame_difference"]["on_method_frames"]["micro_auc"] for r in synth["dream"]]
        rows["frame_difference"], spread["frame_difference"] = float(np.mean(base)), 0.0
        lines.append(f"| frame difference (same frames) | {np.mean(base):.3f} | | |")
        numbers["table_iii"] = {"mean": rows, "std": spread}
        viz.plot_comparison({"synthetic default": rows}, errors={"synthetic default": spread},
                            path=out / "table_iii.png")
        # per-type AUC: the seen/unseen experiment beside the full pool and MNAD-P
        unseen = _reports(study / "unseen")
        per_type = {}
        for label, reps in (("DREAM, pool of all 5 types", synth.get("dream", [])),
                            ("DREAM, pool speed+appearance+location", unseen.get("dream_pool_sal", [])),
                            ("MNAD-P (no anomalies)", synth.get("mnad_pred", []))):
            if reps:
                types = reps[0]["per_type_auc"]
                per_type[label] = {t: [r["per_type_auc"][t] for r in reps] for t in types}
        if per_type:
            types = list(next(iter(per_type.values())))
            lines += ["", "## AUC per anomaly type (mean over seeds; unseen by the second row: direction, "
                      "static_object)", "", "| run | " + " | ".join(types) + " |", "|---" * (len(types) + 1) + "|"]
            for label, per in per_type.items():
                lines.append(f"| {label} | " + " | ".join(f"{np.mean(per[t]):.3f}" for t in types) + " |")
            numbers["per_type_auc"] = {k: {t: [float(x) for x in v] for t, v in per.items()}
                                       for k, per in per_type.items()}
            viz.plot_comparison({t: {k: float(np.mean(per[t])) for k, per in per_type.items()} for t in types},
                                errors={t: {k: float(np.std(per[t])) for k, per in per_type.items()} for t in types},
                                metric_label="AUC per type", path=out / "per_type.png")
        # r statistics and diagnostics of the DREAM runs
        lines += ["", "## DREAM inside (synthetic default, test clips for r, training clips for the rest)", ""]
        layout = load_layout("data/synthetic-default")
        diag_rows = []
        for run in sorted((study / "synth").glob("seed*/dream")):
            trained = engine.load_run(run, "cpu")
            seed = json.loads((run / "run.json").read_text())["seed"]
            r = dream.r_statistics(trained, layout.testing)
            d = dream.diagnostics(trained, layout, seed=seed)
            hist = json.loads((run / "history.json").read_text())
            d["history_triplet_normal"] = [h["triplet_normal"] for h in hist]
            d["history_triplet_abnormal"] = [h["triplet_abnormal"] for h in hist]
            diag_rows.append({"run": str(run), **r, **d})
        numbers["inside"] = diag_rows
        for key in ("r_normal", "r_normal_inverse", "r_abnormal", "r_abnormal_inverse", "d_pos_normal",
                    "d_neg_normal", "triplet_active_normal", "d_pos_abnormal", "d_neg_abnormal",
                    "triplet_active_abnormal", "feature_norm_normal", "anomaly_area"):
            vals = [row[key] for row in diag_rows if key in row]
            if vals:
                lines.append(f"- {key}: {_fmt(vals, '.3g')}")
        for row in diag_rows[:1]:
            lines.append(f"- item usage (normality, seed 0): {[round(x, 3) for x in row['item_usage_normality']]}")
            lines.append(f"- item usage (abnormality, seed 0): "
                         f"{[round(x, 3) for x in row['item_usage_abnormality']]}")
            lines.append(f"- item drift 1-cos (normality): {[round(x, 3) for x in row['item_drift_normality']]}")
            lines.append(f"- item drift 1-cos (abnormality): {[round(x, 3) for x in row['item_drift_abnormality']]}")
            per_epoch = [round(x, 4) for x in row["history_triplet_normal"]]
            lines.append(f"- triplet loss per epoch (normal branch): {per_epoch}")
        lines.append(f"- paper Table IV: {dream.PAPER_R}")
        first = sorted((study / "synth").glob("seed*/dream"))[0]
        trained = engine.load_run(first, "cpu")
        spaces = {n: analysis.sample_memory_space(trained, layout.testing, n, n=1500, seed=0)
                  for n in analysis.memory_space_names(trained, layout.testing)}
        viz.plot_memory_tsne(spaces, seed=0, path=out / "memory_spaces.png")
    folds = sorted(study.glob("ped2-k3f*"))
    if folds:
        lines += ["", "## ped2-mini, 3 folds cut by segments (margin 5): each method on its fold's test frames", "",
                  "| fold | seed | DREAM | MNAD-P | frame difference (same frames) |", "|---|---|---|---|---|"]
        numbers["ped2_folds"] = []
        for fold in folds:
            for seed_dir in sorted(fold.glob("seed*")):
                reps = {m: json.loads((seed_dir / m / "metrics.json").read_text())
                        for m in ("dream", "mnad_pred") if (seed_dir / m / "metrics.json").exists()}
                if not reps:
                    continue
                base = next(iter(reps.values()))["baseline_frame_difference"]["on_method_frames"]["micro_auc"]
                row = {"fold": fold.name, "seed": seed_dir.name, "baseline": base,
                       **{m: r["micro_auc"] for m, r in reps.items()}}
                numbers["ped2_folds"].append(row)
                lines.append(f"| {fold.name} | {seed_dir.name} | {row.get('dream', float('nan')):.3f} | "
                             f"{row.get('mnad_pred', float('nan')):.3f} | {base:.3f} |")
        rows = numbers["ped2_folds"]
        for key, label in (("dream", "DREAM"), ("mnad_pred", "MNAD-P"), ("baseline", "frame difference")):
            vals = [r[key] for r in rows if key in r]
            if vals:
                lines.append(f"- {label}, all fold and seed runs: {_fmt(vals)}")
        wins = sum(r["dream"] > r["mnad_pred"] for r in rows if "dream" in r and "mnad_pred" in r)
        lines.append(f"- DREAM above MNAD-P in {wins} of {len(rows)} runs; above the baseline in "
                     f"{sum(r.get('dream', 0) > r['baseline'] for r in rows)}")
        root = Path("data/ped2-k3f0")
        run = sorted((study / "ped2-k3f0").glob("seed*/dream"))
        if run:
            scores = engine.load_scores(run[0])
            src = splits.derived_meta(root)["units"][0][0]
            timeline = splits.source_timeline(root, scores["score"], src)
            viz.plot_fold_curve(timeline, load_layout("data/ped2-mini").video(src).labels,
                                title=f"DREAM on ped2-mini {src}, fold 0 of 3", path=out / "ped2_fold_curve.png")
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables.md").write_text("\n".join(lines) + "\n")
    write_json(out / "numbers.json", numbers)
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "reports/dream"))
