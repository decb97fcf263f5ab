"""Issue 28: what MNAD's memory does at a real dataset's size. For pairs of MNAD run folders trained on the same data
(with and without memory, `benchmarks/cpu_budget_fullsize.sh` or any `vadlab train`), one row per run: the fused micro
AUC, each signal alone, frame difference on the same frames, the test-time update share, the memory health the run
wrote at the end of training (top item's share, assignment entropy over log M), and from the model itself on its
training clips (`vadlab.analysis.mnad.memory_diagnostics`, the first `--videos` training videos): position locking and
the PSNR of the output with the memory's read, with every read replaced by the mean item, and by zeros (how much the
decoder leans on the read). With `--figure`, the AUC panel and the decoder-reliance panel side by side.

With `--causes`, a second table measures the candidate causes (issue 28, item 2) on each run with a memory:
- the pull of the memory losses on the encoder (`vadlab.analysis.mnad.loss_gradient_shares`): the gradient norm of
  lambda_c L_compact + lambda_s L_separate over that of L_rec, at initialisation (the run's seed) and at the end of
  training, and the cosine between the two gradients at the end;
- the read's sharpness (mean top matching probability on training queries) and whether the read matters on the test
  frames (`read_effect`: the PSNR-alone AUC with the read and with every read the mean item, no test-time update);
- the training's last L_rec (the fit of the prediction), and the signals' AUC pooled over the test videos without
  the per-video min-max of Eq. 17 (`--causes` rows of runs without a memory give these two only);
- the fused AUC without the test-time update when `vadlab evaluate RUN --set test_update=false` wrote it.
`--cause-figure FILE.png` draws them.

    python benchmarks/mnad_memory_study.py RUN [RUN ...] [--videos 4] [--figure FILE.png] [--markdown FILE.md]
        [--causes] [--cause-figure FILE.png] [--json FILE.json]
    python benchmarks/mnad_memory_study.py --replot FILE.json [FILE.json ...] [--figure ...] [--cause-figure ...]
        (no model loaded)

Not a test; it trains nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vadlab import engine
from vadlab.analysis.mnad import loss_gradient_shares, memory_diagnostics, read_effect
from vadlab.data.layout import load_layout
from vadlab.eval.metrics import frame_auc
from vadlab.eval.scores import normalise


def study(run: Path, videos: int) -> dict:
    info = json.loads((run / "run.json").read_text())
    report = json.loads((run / "metrics.json").read_text())
    signals = report.get("per_signal_auc", {})
    row = {"run": str(run), "method": info["method"], "data": Path(info["data"]).name, "seed": info["seed"],
           "memory": info["config"].get("use_memory", True), "auc": report["micro_auc"],
           "neg_psnr": signals.get("neg_psnr"), "distance": signals.get("distance"),
           "fd": report["baseline_frame_difference"]["on_method_frames"]["micro_auc"],
           "updated": report.get("test_time_updates", {}).get("updated_share")}
    health = json.loads((run / "memory_health.json").read_text()) if (run / "memory_health.json").exists() else {}
    for space in health.values():
        row.update(top_share=space.get("top_item_share"), entropy=space.get("entropy_normalised"))
        break
    if row["memory"]:
        method = engine.load_run(run, "cpu")
        layout = load_layout(info["data"])
        row.update(memory_diagnostics(method, layout.training[:videos]))
        row.pop("item_usage", None)
    return row


def _pooled_aucs(run: Path) -> dict:
    """Each signal's AUC over the test frames pooled as raw values (no per-video min-max), from `scores.npz`."""
    arrays = np.load(run / "scores.npz")
    signals: dict[str, dict[str, np.ndarray]] = {}
    for key in arrays.files:
        kind, video = key.split("/", 1)
        signals.setdefault(kind, {})[video] = arrays[key]
    return {f"{kind}_pooled": frame_auc(signals[kind], signals["label"]) for kind in ("neg_psnr", "distance")
            if kind in signals}


def causes(run: Path, videos: int, batches: int = 8) -> dict:
    """The candidate causes of issue 28 measured on one run (module docstring)."""
    info = json.loads((run / "run.json").read_text())
    history = json.loads((run / "history.json").read_text())
    row = {"run": str(run), "method": info["method"], "seed": info["seed"],
           "memory": info["config"].get("use_memory", True), "rec_last": history[-1]["rec"], **_pooled_aucs(run)}
    for no_update in run.glob("metrics[[]test_update=*[]].json"):  # `vadlab evaluate RUN --set test_update=false`
        report = json.loads(no_update.read_text())
        if report.get("overrides", {}).get("test_update") in (False, "false", "False"):
            row["auc_no_test_update"] = report["micro_auc"]
    if not row["memory"]:
        return row
    method = engine.load_run(run, "cpu")
    layout = load_layout(info["data"])
    train = layout.training[:videos]
    end = loss_gradient_shares(method, train, batches=batches)
    engine.set_seed(info["seed"])
    start = loss_gradient_shares(type(method)(method.config), train, batches=batches)  # the run's initialisation
    row.update(pull_init=start["memory_over_rec"], pull_end=end["memory_over_rec"], cosine_end=end["cosine_rec_memory"],
               top_weight=memory_diagnostics(method, train)["top_weight_mean"])
    effect = read_effect(method, layout.testing)
    for name in ("psnr_read", "psnr_mean_item"):
        negated = {video: -values for video, values in effect[name].items()}
        row[f"auc_{name}"] = frame_auc(normalise(negated, "video"), effect["label"])
    return row


def causes_table(rows: list[dict]) -> str:
    lines = ["| run | seed | memory | last L_rec | PSNR AUC pooled raw | distance AUC pooled raw | fused AUC, no test "
             "update | memory-loss pull / L_rec's, init -> end | cosine(L_rec, memory losses) at end | mean top "
             "weight | PSNR AUC: read / every read the mean item |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pull = f"{r['pull_init']:.2f} -> {r['pull_end']:.2f}" if "pull_end" in r else "-"
        reads = f"{r['auc_psnr_read']:.3f} / {r['auc_psnr_mean_item']:.3f}" if "auc_psnr_read" in r else "-"
        lines.append(f"| {r['run']} | {r['seed']} | {'yes' if r['memory'] else 'no'} | {r['rec_last']:.2f} | "
                     f"{_f(r.get('neg_psnr_pooled'))} | {_f(r.get('distance_pooled'))} | "
                     f"{_f(r.get('auc_no_test_update'))} | {pull} | {_f(r.get('cosine_end'))} | "
                     f"{_f(r.get('top_weight'))} | {reads} |")
    return "\n".join(lines)


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def table(rows: list[dict]) -> str:
    lines = ["| run | data | seed | memory | micro AUC | PSNR alone | distance alone | frame diff. | test update "
             "share | top item | entropy / log M | position locked | PSNR read / mean item / zero (dB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        psnrs = (f"{r['psnr_read']:.2f} / {r['psnr_mean_item']:.2f} / {r['psnr_zero_read']:.2f}"
                 if "psnr_read" in r else "-")
        lines.append(f"| {Path(r['run']).name} | {r['data']} | {r['seed']} | {'yes' if r['memory'] else 'no'} | "
                     f"{_f(r['auc'])} | {_f(r['neg_psnr'])} | {_f(r['distance'])} | {_f(r['fd'])} | "
                     f"{_f(r.get('updated'))} | {_f(r.get('top_share'))} | {_f(r.get('entropy'))} | "
                     f"{_f(r.get('position_locked'))} | {psnrs} |")
    return "\n".join(lines)


def figure(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    labels = [f"{r['method']}\n{r['data']} s{r['seed']}\n{'memory' if r['memory'] else 'no memory'}" for r in rows]
    x = np.arange(len(rows))
    for k, (key, name) in enumerate((("auc", "fused"), ("neg_psnr", "PSNR alone"), ("distance", "distance alone"),
                                     ("fd", "frame difference, same frames"))):
        values = [np.nan if r.get(key) is None else r[key] for r in rows]
        bars = ax.bar(x + (k - 1.5) * 0.2, values, width=0.2, label=name)
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.3f}" for v in values], fontsize=6, rotation=90)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0.6, 1.08)
    ax.set_ylabel("micro AUC")
    ax.legend(fontsize=7, loc="upper center", ncol=4, frameon=False)
    ax.set_title("Each signal alone, with and without the memory")
    mem = [r for r in rows if "psnr_read" in r]
    y = np.arange(len(mem))
    for k, (key, name) in enumerate((("psnr_read", "memory read (Eq. 2)"), ("psnr_mean_item", "every read = mean item"),
                                     ("psnr_zero_read", "every read = 0"))):
        bx.barh(y + (k - 1) * 0.27, [r[key] for r in mem], height=0.27, label=name)
    bx.set_yticks(y, [f"{r['method']} {r['data']} s{r['seed']}\nlocked {r['position_locked']:.2f}" for r in mem],
                  fontsize=7)
    lo = min(r["psnr_zero_read"] for r in mem) if mem else 0
    bx.set_xlim(max(0, lo - 3), None)
    bx.set_xlabel("PSNR of the output on training clips (dB)")
    bx.legend(fontsize=7)
    bx.set_title("How much the decoder leans on the read")
    fig.tight_layout()
    fig.savefig(path, dpi=130)


#: How the cause figure names a variant (a run folder's name); any other folder is shown by its name.
LABELS = {"mnad_pred": "memory\n(Eq. 1: the paper)", "mnad_pred-no_memory": "no memory",
          "no_losses": "memory,\nno memory losses", "read_t0.1": "memory,\nread temperature 0.1",
          "mnad_recon": "MNAD-R\nmemory", "mnad_recon-no_memory": "MNAD-R\nno memory"}


def _label(run: str) -> str:
    return LABELS.get(Path(run).name, Path(run).name)


def cause_figure(rows: list[dict], cause_rows: list[dict], path: str) -> None:
    """Three panels: each variant's fused and PSNR-alone AUC (bars the mean over seeds, dots the seeds; a variant is
    a run folder's name), the memory losses' pull on the encoder at initialisation and at the end, and the PSNR-alone
    AUC with the read against every read the mean item."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [3, 2, 2]})
    variants = list(dict.fromkeys(Path(r["run"]).name for r in rows))
    x = np.arange(len(variants))
    for k, (key, name) in enumerate((("auc", "fused (Eq. 16)"), ("neg_psnr", "PSNR alone"))):
        for i, v in enumerate(variants):
            values = [r[key] for r in rows if Path(r["run"]).name == v and r.get(key) is not None]
            if not values:
                continue
            ax.bar(i + (k - 0.5) * 0.38, np.mean(values), width=0.38, color=f"C{k}", label=name if i == 0 else None)
            ax.plot([i + (k - 0.5) * 0.38] * len(values), values, "o", color="k", markersize=3)
            ax.text(i + (k - 0.5) * 0.38, np.mean(values) + 0.004, f"{np.mean(values):.3f}", ha="center", fontsize=7)
    fd = np.mean([r["fd"] for r in rows])
    ax.axhline(fd, color="0.3", linestyle="--", linewidth=1, label=f"frame difference {fd:.3f}")
    ax.set_xticks(x, [LABELS.get(v, v) for v in variants], fontsize=7)
    ax.set_ylim(0.8, 0.98)
    ax.set_ylabel("micro AUC (per-video min-max)")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("Each variant: mean over seeds (dots: each seed)")
    mem = [r for r in cause_rows if "pull_end" in r]
    labels = [f"{_label(r['run'])} s{r['seed']}".replace("\n", " ") for r in mem]
    y = np.arange(len(mem))
    bx.barh(y - 0.2, [r["pull_init"] for r in mem], height=0.4, label="at initialisation", color="C2")
    bx.barh(y + 0.2, [r["pull_end"] for r in mem], height=0.4, label="at the end of training", color="C3")
    bx.axvline(1.0, color="0.3", linestyle=":", linewidth=1)
    for i, r in enumerate(mem):
        if r["pull_end"] == 0:
            bx.text(0.02, i, "memory losses off", va="center", fontsize=6, color="0.4")
    bx.set_yticks(y, labels, fontsize=7)
    bx.set_xlabel("|grad of the memory losses| / |grad of L_rec| at the encoder")
    bx.legend(fontsize=7)
    bx.set_title("How hard the memory losses pull")
    cx.barh(y - 0.2, [r["auc_psnr_read"] for r in mem], height=0.4, label="with the memory's read", color="C0")
    cx.barh(y + 0.2, [r["auc_psnr_mean_item"] for r in mem], height=0.4, label="every read = the mean item",
            color="C7")
    for i, r in enumerate(mem):
        cx.text(r["auc_psnr_read"] + 0.002, i - 0.2, f"{r['auc_psnr_read']:.3f}", va="center", fontsize=6)
        cx.text(r["auc_psnr_mean_item"] + 0.002, i + 0.2, f"{r['auc_psnr_mean_item']:.3f}", va="center", fontsize=6)
    cx.set_yticks(y, labels, fontsize=7)
    lo = min(min(r["auc_psnr_read"], r["auc_psnr_mean_item"]) for r in mem) if mem else 0.8
    cx.set_xlim(lo - 0.03, 1.0)
    cx.set_xlabel("PSNR-alone AUC, test frames, no test-time update")
    cx.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    cx.set_title("Does the read matter on test frames?")
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--videos", type=int, default=4, help="training videos for the model diagnostics")
    parser.add_argument("--figure")
    parser.add_argument("--markdown")
    parser.add_argument("--causes", action="store_true", help="measure the candidate causes too (second table)")
    parser.add_argument("--cause-figure")
    parser.add_argument("--json", help="write the rows measured, for --replot")
    parser.add_argument("--replot", nargs="+", metavar="FILE.json",
                        help="the rows of earlier --json files, joined: tables and figures without loading a model")
    args = parser.parse_args()
    if args.replot:
        saved = [json.loads(Path(f).read_text()) for f in args.replot]
        rows = [r for part in saved for r in part["rows"]]
        cause_rows = [r for part in saved for r in part["causes"]]
    else:
        if not args.runs:
            parser.error("give run folders, or --replot FILE.json")
        rows = [study(Path(r), args.videos) for r in args.runs]
        cause_rows = [causes(Path(r), args.videos) for r in args.runs] if args.causes or args.cause_figure else []
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "causes": cause_rows}, indent=1) + "\n")
    text = table(rows)
    if cause_rows:
        text += "\n\n" + causes_table(cause_rows)
        if args.cause_figure:
            cause_figure(rows, cause_rows, args.cause_figure)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.figure:
        figure(rows, args.figure)


if __name__ == "__main__":
    main()
