"""MAAM-Net at the `cpu` preset (issue 9, "Must show"): train and evaluate runs, then tabulate them.

    python benchmarks/maam_study.py run DATA OUT --seeds 0 1 2 [--ablation no_latent] [--set flow_method=farneback]
    python benchmarks/maam_study.py table OUT [OUT ...] --markdown reports/maam/table.md
    python benchmarks/maam_study.py rescore OUT [OUT ...] --rules paper flow_scale balanced   (issue 22)
    python benchmarks/maam_study.py fusion OUT [OUT ...] --markdown reports/maam22/fusion.md   (issue 22)
    python benchmarks/maam_study.py items FIG.png --group "Eq. 1 cosine" "with L_lat=RUN" "without L_lat=RUN" ...

`run` trains (resuming a run folder that exists) and evaluates one run per seed into OUT/<variant>-s<seed>. `table`
reads every evaluated run below the folders given and prints, per run group (dataset, variant): micro AUC of the
appearance, motion and fused PSCD signals with per-video and with global normalisation (Eq. 11), pixel AUC of the
fused map, the frame-difference baseline on the same frames, items selected per query and per frame (Fig. 5), the
training time, and the raw scale of the two branches (mean per-frame max of psi * e_app and (1 - psi) * e_mot over
the test frames: which branch the fusion listens to).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vadlab import engine  # noqa: E402
from vadlab.analysis.maam import branch_aucs, items_per_query, plot_items_histograms  # noqa: E402
from vadlab.config import parse_set_args  # noqa: E402
from vadlab.data.layout import load_layout  # noqa: E402
from vadlab.registry import create_method  # noqa: E402


def run(args) -> None:
    overrides = parse_set_args(args.set)
    variant = "-".join(args.ablation or ["joint"]) + "".join(f"-{k}={v}" for k, v in sorted(overrides.items()))
    for seed in args.seeds:
        out = Path(args.out) / f"{variant}-s{seed}"
        if (out / "metrics.json").exists():
            print(f"{out}: done already")
            continue
        t0 = time.perf_counter()
        method = create_method("maam", args.preset, ablations=args.ablation or [], **overrides)
        engine.fit(method, args.data, out, seed=seed, device="cpu", resume=True, progress=False,
                   threads=args.threads)
        report = engine.evaluate_run(out, args.data, device="cpu", progress=False, threads=args.threads)
        print(f"{out}: micro AUC {report['micro_auc']:.4f} (baseline same frames "
              f"{report['baseline_frame_difference']['on_method_frames']['micro_auc']:.4f}) "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)


def _row(run_dir: Path) -> dict:
    report = json.loads((run_dir / "metrics.json").read_text())
    info = engine.run_info(run_dir)
    layout = load_layout(report["data"])
    scores = engine.load_scores(run_dir)
    aucs = branch_aucs(scores, layout.labels())
    psi = info["config"]["psi"]
    scale = {}
    if "app" in scores and "mot" in scores:
        app = np.concatenate([v[np.isfinite(v)] for v in scores["app"].values()])
        mot = np.concatenate([v[np.isfinite(v)] for v in scores["mot"].values()])
        scale = {"psi_app": float(psi * app.mean()), "mot_part": float((1 - psi) * mot.mean())}
    return {"data": Path(report["data"]).name, "variant": run_dir.name.rsplit("-s", 1)[0], "seed": info["seed"],
            "aucs": aucs, "micro_auc": report["micro_auc"], "global": report["auc_global_norm"],
            "pixel_auc": report.get("pixel_auc"), "eer": report["eer"],
            "baseline": report["baseline_frame_difference"]["on_method_frames"]["micro_auc"],
            "items_per_query": report.get("items_per_query"), "items_per_frame": report.get("items_per_frame"),
            "train_seconds": report.get("train_seconds"), "frames_left_out": report["frames_left_out"], **scale}


def _fmt(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def table(args) -> None:
    rows = [_row(m.parent) for folder in args.folders for m in sorted(Path(folder).rglob("metrics.json"))]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["data"], r["variant"]), []).append(r)
    lines = ["| data | variant | seeds | App (video) | Mot (video) | PSCD fused (video) | App (global) | "
             "Mot (global) | PSCD fused (global) | pixel AUC | frame-diff baseline | items/query | items/frame | "
             "psi*e_app | (1-psi)*e_mot | train s |", "|" + "---|" * 16]
    for (data, variant), rs in sorted(groups.items()):
        def a(sig, mode, rs=rs):
            return _fmt([r["aucs"].get(sig, {}).get(mode) for r in rs])
        lines.append(f"| {data} | {variant} | {len(rs)} | {a('app', 'video')} | {a('mot', 'video')} | "
                     f"{a('pscd', 'video')} | {a('app', 'global')} | {a('mot', 'global')} | {a('pscd', 'global')} | "
                     f"{_fmt([r['pixel_auc'] for r in rs])} | {_fmt([r['baseline'] for r in rs])} | "
                     f"{_fmt([r['items_per_query'] for r in rs])} | {_fmt([r['items_per_frame'] for r in rs])} | "
                     f"{_fmt([r.get('psi_app') for r in rs])} | {_fmt([r.get('mot_part') for r in rs])} | "
                     f"{_fmt([r['train_seconds'] for r in rs])} |")
    lines.append("")
    lines.append("Per run (fused PSCD, per-video): " + "; ".join(
        f"{r['data']}/{r['variant']}/s{r['seed']} {r['micro_auc']:.3f}" for r in rows))
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def _runs(folders) -> list[Path]:
    return [m.parent for folder in folders for m in sorted(Path(folder).rglob("metrics.json"))]


def rescore(args) -> None:
    """Issue 22: score every evaluated run below the folders again under each psi_rule (test-time only: the same
    trained model; `metrics[psi_rule=RULE].json`, the branch statistics computed once when the run lacks them)."""
    extra = parse_set_args(args.set)
    for run_dir in _runs(args.folders):
        for rule in args.rules:
            overrides = {"psi_rule": rule, **extra}
            if engine.metrics_file(run_dir, overrides).exists():
                continue
            t0 = time.perf_counter()
            report = engine.evaluate_run(run_dir, device="cpu", progress=False, overrides=overrides,
                                         threads=args.threads)
            print(f"{run_dir} {engine.overrides_suffix(overrides)}: fused {report['micro_auc']:.4f} "
                  f"(app {report['per_signal_auc']['app']:.4f}, mot {report['per_signal_auc']['mot']:.4f}) "
                  f"in {time.perf_counter() - t0:.0f} s", flush=True)


def fusion(args) -> None:
    """Issue 22: per run (every seed listed) App, Mot, the fused score under each psi_rule found, frame difference on
    the same frames, and the targets fused >= max(App, Mot) - 0.01 and fused >= frame difference + 0.03."""
    rules = args.rules
    lines = ["| data | variant | seed | App | Mot | " + " | ".join(f"fused ({r})" for r in rules)
             + " | frame diff (same frames) | mean abs F (px) | psi, scales (" + rules[-1] + ") | targets ("
             + rules[-1] + ") |", "|" + "---|" * (8 + len(rules))]
    for run_dir in _runs(args.folders):
        base = json.loads((run_dir / "metrics.json").read_text())
        fused = {}
        last = None
        for rule in rules:
            file = engine.metrics_file(run_dir, {"psi_rule": rule, **parse_set_args(args.set)})
            if file.exists():
                last = json.loads(file.read_text())
                fused[rule] = last["micro_auc"]
        app, mot = base["per_signal_auc"]["app"], base["per_signal_auc"]["mot"]
        fd = base["baseline_frame_difference"]["on_method_frames"]["micro_auc"]
        info = engine.run_info(run_dir)
        flow = last.get("flow_mean_magnitude") if last else None
        fus = last.get("fusion", {}) if last else {}
        target = "-"
        if rules[-1] in fused:
            f = fused[rules[-1]]
            target = (f"{'yes' if f >= max(app, mot) - 0.01 else 'NO'} ({f - max(app, mot):+.3f}), "
                      f"{'yes' if f >= fd + 0.03 else 'NO'} ({f - fd:+.3f})")
        lines.append(f"| {Path(base['data']).name} | {run_dir.name.rsplit('-s', 1)[0]} | {info['seed']} | {app:.3f} | "
                     f"{mot:.3f} | " + " | ".join(f"{fused[r]:.3f}" if r in fused else "-" for r in rules)
                     + f" | {fd:.3f} | {'-' if flow is None else f'{flow:.3f}'} | "
                     + (f"{fus['psi']:.3f}, {fus['scale_app']:.3g}, {fus['scale_mot']:.3g}" if fus else "-")
                     + f" | {target} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text + "\n")


def items(args) -> None:
    """Issue 22, Fig. 5: histograms of the items selected per query on the test frames of runs, grouped in panels
    (e.g. one per similarity), one line per run (e.g. with and without L_lat)."""
    groups, n_items = {}, None
    for panel, *variants in args.group:
        groups[panel] = {}
        for spec in variants:
            label, _, run_dir = spec.partition("=")  # the label holds no "=", a run folder may
            method = engine.load_run(run_dir, "cpu")
            layout = load_layout(engine.run_info(run_dir)["data"])
            counts = items_per_query(method, layout.testing)
            n_items = method.config.memory_items
            groups[panel][label] = counts
            print(f"{panel} / {label}: {run_dir}: mean {counts.mean():.1f}, median {np.median(counts):.0f} of "
                  f"{n_items} items per query ({len(counts)} queries)", flush=True)
    plot_items_histograms(groups, n_items, title=args.title, path=args.figure)
    summary = {p: {k: {"mean": float(v.mean()), "median": float(np.median(v)), "queries": int(len(v))}
                   for k, v in g.items()} for p, g in groups.items()}
    Path(args.figure).with_suffix(".json").write_text(json.dumps(summary, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--ablation", action="append")
    p.add_argument("--set", action="append")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=run)
    p = sub.add_parser("table")
    p.add_argument("folders", nargs="+")
    p.add_argument("--markdown")
    p.add_argument("--json")
    p.set_defaults(func=table)
    p = sub.add_parser("rescore")
    p.add_argument("folders", nargs="+")
    p.add_argument("--rules", nargs="+", default=["paper", "flow_scale", "balanced"])
    p.add_argument("--set", action="append")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=rescore)
    p = sub.add_parser("fusion")
    p.add_argument("folders", nargs="+")
    p.add_argument("--rules", nargs="+", default=["paper", "flow_scale", "balanced"])
    p.add_argument("--set", action="append")
    p.add_argument("--markdown")
    p.set_defaults(func=fusion)
    p = sub.add_parser("items")
    p.add_argument("figure")
    p.add_argument("--group", nargs="+", action="append", required=True, metavar="PANEL LABEL=RUN")
    p.add_argument("--title", default="MAAM-Net Fig. 5: items selected per query (test frames)")
    p.set_defaults(func=items)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
