"""Reproduce results: each row's mean and spread over its replicates beside the paper's number (`summarise`), written as
Markdown, CSV, a figure and provenance (`write_table`)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from vadlab.errors import DataError
from vadlab.reproduce.plan import Job
from vadlab.reproduce.spec import Spec


# --- results --------------------------------------------------------------------------------------------------
def _lookup(report: dict, dotted: str, file: Path):
    value = report
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DataError(f"{file}: no metric {dotted!r} (no key {part!r})")
        value = value[part]
    return float(value)


def summarise(spec: Spec, jobs: list[Job]) -> list[dict]:
    """One dict per row: id, label, method, metric, ours {replicate: value}, mean, std (sample, over replicates),
    baseline (the frame-difference baseline on the same frames, mean) and paper (0-1 scale)."""
    import numpy as np

    out = []
    for row in spec.rows:
        values, baselines = {}, []
        for job in (j for j in jobs if j.row.id == row.id):
            file = job.metrics_file
            if not file.exists():
                continue
            report = json.loads(file.read_text())
            values[job.replicate] = _lookup(report, row.metric, file)
            base = report.get("baseline_frame_difference", {}).get("on_method_frames", {}).get("micro_auc")
            if base is not None:
                baselines.append(float(base))
        arr = np.array(list(values.values()), dtype=float)
        out.append({"id": row.id, "label": row.label, "method": row.method, "metric": row.metric,
                    "scored_from": row.scored_from, "ours": values,
                    "mean": float(arr.mean()) if arr.size else float("nan"),
                    "std": float(arr.std(ddof=1)) if arr.size > 1 else float("nan"),
                    "baseline": float(np.mean(baselines)) if baselines else float("nan"),
                    "paper": spec.paper_fraction(row), "paper_as_printed": row.paper})
    return out


def _fmt(x: float | None, digits: int = 3) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def write_table(spec: Spec, rows: list[dict], out: Path, *, preset: str, data: Path, runs: Path,
                jobs: list[Job]) -> list[Path]:
    """`table.md`, `table.csv`, `table.png` (ours with the seed spread beside the paper's) and `provenance.json`."""
    import csv
    import io

    from vadlab import viz
    from vadlab.io import atomic_path, write_json
    from vadlab.reports import data_provenance, provenance

    out.mkdir(parents=True, exist_ok=True)
    reps = sorted({j.replicate for j in jobs}, key=lambda r: (len(r), r))
    ours = f"ours ({preset}, {data.name}, mean ± std over {len(reps)})"
    paper = f"paper ({spec.paper_on})"
    lines = [f"# {spec.title}", "", f"{spec.paper}: {spec.table}, {spec.section}.", "",
             f"**Ours**: `vadlab reproduce {spec.name} --preset {preset}` on `{data}` ({spec.dataset}), replicates "
             f"{', '.join(reps)}; metric `{spec.metric}` unless the row says otherwise. **Paper**: the paper's own "
             f"number, measured on {spec.paper_on}: another dataset size and scale, not reproduced here. "
             "**Frame diff.**: the frame-difference baseline on the frames our runs scored.", "",
             f"| id | row | {ours} | per replicate | frame diff. | {paper} |", "|---|---|---|---|---|---|"]
    for r in rows:
        per = ", ".join(f"{k}: {v:.3f}" for k, v in r["ours"].items())
        mean = _fmt(r["mean"]) + (f" ± {_fmt(r['std'])}" if math.isfinite(r["std"]) else "")
        label = r["label"] + (f" (re-scored from {r['scored_from']})" if r["scored_from"] else "") + \
            (f"; metric `{r['metric']}`" if r["metric"] != spec.metric else "")
        printed = "" if r["paper_as_printed"] is None else (f"{r['paper_as_printed']} % ({r['paper']:.3f})"
                                                            if spec.paper_unit == "percent"
                                                            else f"{r['paper_as_printed']}")
        lines.append(f"| {r['id']} | {label} | {mean or 'not run'} | {per} | {_fmt(r['baseline'])} | {printed} |")
    if spec.notes:
        lines += ["", "Notes: " + " ".join(spec.notes.split())]
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "label", "method", "metric", "scored_from", "ours_mean", "ours_std", "replicates",
                     "ours_per_replicate", "frame_difference", "paper", "paper_unit", "paper_on", "preset", "data"])
    for r in rows:
        writer.writerow([r["id"], r["label"], r["method"], r["metric"], r["scored_from"] or "", _fmt(r["mean"], 4),
                         _fmt(r["std"], 4), len(r["ours"]), ";".join(f"{k}={v:.4f}" for k, v in r["ours"].items()),
                         _fmt(r["baseline"], 4), "" if r["paper_as_printed"] is None else r["paper_as_printed"],
                         spec.paper_unit, spec.paper_on, preset, str(data)])
    with atomic_path(out / "table.csv") as tmp:
        tmp.write_text(buf.getvalue())
    viz.plot_reproduction(rows, ours_label=f"ours ({preset}, {data.name})", paper_label=f"paper ({spec.paper_on})",
                          title=f"{spec.title}", path=out / "table.png")
    write_json(out / "provenance.json", provenance(
        spec=spec.name, spec_file=str(spec.file), spec_sha256=hashlib.sha256(spec.file.read_bytes()).hexdigest(),
        preset=preset, data=data_provenance(data), runs=[str(j.folder) for j in jobs if not j.row.scored_from],
        replicates=reps))
    return [out / "table.md", out / "table.csv", out / "table.png", out / "provenance.json"]
