"""DREAM's two memory spaces before and after a change, in one figure (issue 23): t-SNE of the test queries and the
items of each run's normality and abnormality memories (`vadlab.analysis.sample_memory_space`,
`vadlab.viz.plot_memory_tsne`), one row per run and memory, coloured by nearest item, by the query's row in the frame
and by the frame's label. Each row's title carries the run's memory health (top item's share on the training clips).

    python benchmarks/dream_memory_figure.py --data data/ped2-mini-k3f0 --out docs/img/dream_memory_before_after.png \
        "paper's update=runs/dream-paper" "Eq. 5 (cpu)=runs/dream-cpu"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vadlab import analysis, engine, viz
from vadlab.data.layout import load_layout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR, in the order of the rows")
    parser.add_argument("--data", required=True, help="the dataset the runs were tested on (its testing/ videos)")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--points", type=int, default=1500, help="queries drawn per memory space")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    videos = load_layout(args.data).testing
    spaces = {}
    for item in args.runs:
        label, _, folder = item.partition("=")
        method = engine.load_run(folder, "cpu")
        health = json.loads((Path(folder) / "metrics.json").read_text()).get("memory_health", {})
        for name in analysis.memory_space_names(method, videos):
            share = health.get(name, {}).get("top_item_share", float("nan"))
            sample = analysis.sample_memory_space(method, videos, name, n=args.points, seed=args.seed)
            spaces[f"{label}: {name}, top item {share:.2f}"] = sample
    viz.plot_memory_tsne(spaces, seed=args.seed, path=args.out)
    print(args.out)


if __name__ == "__main__":
    main()
