# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Memory spaces of any method: t-SNE of queries and items, matching probabilities
#
# For every memory space a trained run declares (`Method.memory_spaces`: MNAD's memory, DREAM's normality and
# abnormality memories, MAAM-Net's items, STD's cluster centres): a t-SNE of sampled test queries with the items
# (stars), and the matching probabilities of sampled queries over the items. Give `other_run_dir` (e.g. the same
# method trained with `--ablation no_separateness`) to see both side by side, with and without the separateness
# loss. A method without a memory shows nothing here. `papermill 30_memory_spaces.ipynb out.ipynb -p run_dir runs/p`.

# %% tags=["parameters"]
run_dir = "runs/mnad"       # a run folder written by `vadlab train` or `engine.fit`
other_run_dir = None        # a second run shown beside it (e.g. trained without the separateness loss)
other_label = "without separateness loss"
data_root = None            # None: the dataset the run was trained on (run.json)
out_dir = None              # where figures go; None: RUN/memory
tsne_points = 2000          # queries drawn per memory space for the t-SNE
heatmap_queries = 24        # queries in each matching-probability heatmap (half from anomalous frames)
seed = 0
device = "auto"

# %%
import scrapbook as sb

from vadlab import analysis, data, engine, viz

info = engine.run_info(run_dir)
layout = data.prepare(data_root or info["data"])
figures = f"{run_dir}/memory" if out_dir is None else out_dir
paths = {info["method"]: run_dir, **({other_label: other_run_dir} if other_run_dir else {})}
trained = {label: engine.load_run(path, device) for label, path in paths.items()}
samples = analysis.sample_spaces(trained, layout.testing, n=tsne_points, seed=seed)
{label: list(spaces) for label, spaces in samples.items()}

# %% [markdown]
# ## How sharply queries pick an item, and how many items they use
#
# `max_prob_mean`: the mean over queries of the largest matching probability (the separateness loss should raise
# it); `items_used` and `usage_entropy` (bits) of the nearest-item histogram.

# %%
summary = analysis.matching_summary(samples)
summary

# %% [markdown]
# ## t-SNE of test queries and the items, then the matching probabilities of sampled queries

# %%
figure_paths = []
for label, spaces in samples.items():
    for space, sample in spaces.items():
        stem = f"{figures}/{label.replace(' ', '_')}_{space}"
        viz.plot_memory_tsne(sample, title=f"{label}: {space}", seed=seed, path=f"{stem}_tsne.png")
        figure_paths.append(f"{stem}_tsne.png")
        if "weights" in sample:
            rows = analysis.heatmap_rows(sample, heatmap_queries, seed=seed)
            viz.plot_matching_heatmap(sample["weights"][rows], anomalous=sample["anomalous"][rows],
                                      title=f"{label}: {space}", path=f"{stem}_matching.png")
            figure_paths.append(f"{stem}_matching.png")

# %%
sb.glue("memory_spaces", list(next(iter(samples.values()))))
for label, spaces in summary.items():
    for space, row in spaces.items():
        if "max_prob_mean" in row:  # a space without matching weights (nearest by distance) has none
            sb.glue(f"max_prob_mean[{label}][{space}]", row["max_prob_mean"])
sb.glue("data_root", str(layout.root))
sb.glue("figures", figure_paths)
