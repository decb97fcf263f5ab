"""Issue 28: what MNAD's memory does at a real dataset's size. For pairs of MNAD run folders trained on the same data
(with and without memory, `benchmarks/cpu_budget_fullsize.sh` or any `vadlab train`), one row per run: the fused micro
AUC, each signal alone, frame difference on the same frames, the test-time update share, the memory health the run
wrote at the end of training (top item's share, assignment entropy over log M), and from the model itself on its
training clips (`vadlab.analysis.mnad.memory_diagnostics`, the first `--videos` training videos): position locking and
the PSNR of the output with the memory's read, with every read replaced by the mean item, and by zeros (how much the
decoder leans on the read). With `--figure`, the AUC panel and the decoder-reliance panel side by side.

    python benchmarks/mnad_memory_study.py RUN [RUN ...] [--videos 4] [--figure FILE.png] [--markdown FILE.md]

Not a test; it trains nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vadlab import engine
from vadlab.analysis.mnad import memory_diagnostics
from vadlab.data.layout import load_layout


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


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def table(rows: list[dict]) -> str:
    lines = ["| run | data | seed | memory | micro AUC | PSNR alone | distance alone | frame diff. | test update "
             "share | top item | entropy / log M | position locked | PSNR read / mean item / zero (dB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        psnrs = (f"{r['psnr_read']:.2f} / {r['psnr_mean_item']:.2f} / {r['psnr_zero_read']:.2f}"
                 if "psnr_read" in r else "-")
        lines.append(f"| {r['method']} | {r['data']} | {r['seed']} | {'yes' if r['memory'] else 'no'} | "
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--videos", type=int, default=4, help="training videos for the model diagnostics")
    parser.add_argument("--figure")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    rows = [study(Path(r), args.videos) for r in args.runs]
    text = table(rows)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.figure:
        figure(rows, args.figure)


if __name__ == "__main__":
    main()
