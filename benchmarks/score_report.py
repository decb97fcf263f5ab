"""Tables of `vadlab score` measurements (README "Scoring your own video"); reads files, runs nothing heavy.

    python benchmarks/score_report.py fps runs/score-fps
        frames per second per method (summary.json of benchmarks/score_fps.sh) and the share of a full `cpu`
        training that the end-of-training calibration takes
    python benchmarks/score_report.py auc RUN DATA SCORES
        micro AUC of the calibrated scores (SCORES/<test video>/scores.csv, from `vadlab score`) against the labels
        of DATA, beside the AUC `vadlab evaluate` wrote into RUN/metrics.json, and how the 0.99 flag splits frames
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from vadlab.data.layout import load_layout
from vadlab.eval.calibration import CALIBRATION, Calibration
from vadlab.eval.metrics import frame_auc, macro_auc, video_aucs
from vadlab.registry import get_spec
from vadlab.score import read_scores


def fps_table(root: Path) -> str:
    rows = ["| method | frame size, channels | whole, with MP4 | whole, no MP4 | stream, with MP4 | calibration "
            "(frames, s) | training s/epoch | calibration share of a full `cpu` training |",
            "|---|---|---|---|---|---|---|---|"]
    for run in sorted(p for p in root.iterdir() if (p / CALIBRATION).exists()):
        summaries = {k: json.loads((run / f"fps-{k}" / "summary.json").read_text())
                     for k in ("video", "novideo", "stream") if (run / f"fps-{k}" / "summary.json").exists()}
        info = json.loads((run / "run.json").read_text())
        history = json.loads((run / "history.json").read_text())
        cal = Calibration.load(run / CALIBRATION)
        per_epoch = float(np.mean([h["seconds"] for h in history]))
        epochs = get_spec(info["method"]).presets["cpu"].epochs
        share = cal.meta["seconds"] / (per_epoch * epochs + cal.meta["seconds"])
        first = next(iter(summaries.values()))
        size = first["image_size"]
        size = f"{size}x{size}" if isinstance(size, int) else "x".join(map(str, size))
        cells = [f"{summaries[k]['fps']:.1f}" if k in summaries else "-" for k in ("video", "novideo", "stream")]
        rows.append(f"| {info['method']} | {size}, {first['channels']} | " + " | ".join(cells)
                    + f" | {cal.meta['frames']}, {cal.meta['seconds']:.1f} | {per_epoch:.1f} | "
                    + f"{100 * share:.1f} % of {epochs} epochs |")
    return "\n".join(rows)


def auc_table(run: Path, data: Path, scores_dir: Path) -> tuple[str, dict]:
    layout = load_layout(data)
    labels = layout.labels()
    columns = {v.name: read_scores(scores_dir / v.name / "scores.csv") for v in layout.testing}
    calibrated = {name: c["calibrated"] for name, c in columns.items()}
    minmax = {name: c["score_minmax"] for name, c in columns.items()}
    metrics = json.loads((run / "metrics.json").read_text())
    summary = json.loads((scores_dir / layout.testing[0].name / "summary.json").read_text())
    flags = np.concatenate([c["flag"] for c in columns.values()])
    y = np.concatenate([labels[v] for v in columns])
    scored = np.isfinite(flags)
    result = {
        "evaluate_micro_auc": metrics["micro_auc"], "evaluate_macro_auc": metrics["macro_auc"],
        "score_minmax_micro_auc": frame_auc(minmax, labels), "calibrated_micro_auc": frame_auc(calibrated, labels),
        "calibrated_macro_auc": macro_auc(calibrated, labels)[0],
        "calibrated_per_video": video_aucs(calibrated, labels),
        "minmax_per_video": video_aucs(minmax, labels), "threshold": summary["threshold"], "level": summary["level"],
        "flagged_normal_share": float(flags[scored & (y == 0)].mean()),
        "flagged_anomalous_share": float(flags[scored & (y == 1)].mean()),
        "frames_scored": int(scored.sum()), "baseline_micro_auc": metrics["baseline_frame_difference"]["micro_auc"],
    }
    table = "\n".join([
        "| | micro AUC | macro AUC |",
        "|---|---|---|",
        f"| `vadlab evaluate` (per-video min-max, Eq. 16-17) | {result['evaluate_micro_auc']:.4f} | "
        f"{result['evaluate_macro_auc']:.4f} |",
        f"| `vadlab score`, its `score_minmax` column (same protocol, recomputed) | "
        f"{result['score_minmax_micro_auc']:.4f} | - |",
        f"| `vadlab score`, calibrated (training quantiles, no per-video normalisation) | "
        f"{result['calibrated_micro_auc']:.4f} | {result['calibrated_macro_auc']:.4f} |",
        f"| frame-difference baseline (evaluate) | {result['baseline_micro_auc']:.4f} | - |",
    ])
    table += (f"\n\nFlag at the {result['threshold']:g} quantile (calibrated score > {result['level']:.3f}): "
              f"{100 * result['flagged_normal_share']:.1f} % of normal test frames, "
              f"{100 * result['flagged_anomalous_share']:.1f} % of anomalous ones ({result['frames_scored']} frames "
              "scored). Per video, calibrated: "
              + ", ".join(f"{k} {v:.3f}" for k, v in result["calibrated_per_video"].items())
              + "; min-max: " + ", ".join(f"{k} {v:.3f}" for k, v in result["minmax_per_video"].items()))
    return table, result


def main(argv: list[str]) -> int:
    if argv[:1] == ["fps"] and len(argv) == 2:
        print(fps_table(Path(argv[1])))
        return 0
    if argv[:1] == ["auc"] and len(argv) == 4:
        table, result = auc_table(Path(argv[1]), Path(argv[2]), Path(argv[3]))
        print(table)
        (Path(argv[3]) / "auc.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
