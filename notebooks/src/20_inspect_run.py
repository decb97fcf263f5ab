# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Inside a trained run: scores, every test video, and the memory spaces of any method
#
# Works on a run folder of any registered method (`vadlab train METHOD --out RUN`): it evaluates the run with the
# common protocol, draws each test video's score curve beside the frame-difference baseline, and, for every
# memory space the method exposes (MNAD's memory, DREAM's normality and abnormality memories, STD's cluster
# centres...), a t-SNE of sampled test queries with the items and the matching probabilities of one frame.
# `papermill 20_inspect_run.ipynb out.ipynb -p run_dir runs/p`.

# %% tags=["parameters"]
run_dir = "runs/mnad"   # a run folder written by `vadlab train` or `engine.fit`
data_root = None        # None: the dataset the run was trained on (run.json)
out_dir = None          # where figures go; None: RUN/inspect
tsne_points = 2000      # queries drawn per memory space for the t-SNE
seed = 0
device = "auto"
preset = None           # the preset the run was trained at (the demo passes it): "smoke" shows a banner

# %%
import numpy as np
import scrapbook as sb

from vadlab import analysis, data, engine, explore, reports, viz

info = engine.run_info(run_dir)
layout = data.prepare(data_root or info["data"])
figures = f"{run_dir}/inspect" if out_dir is None else out_dir
trained = engine.load_run(run_dir, device)
reports.smoke_banner(preset)
print(f"{trained.name}, trained {viz.plural(trained.epochs_trained, 'epoch')} on {layout.root}")

# %% [markdown]
# ## Training loss and the evaluation beside the frame-difference baseline

# %%
viz.plot_history(info["history"], path=f"{figures}/loss.png")
report = engine.evaluation(run_dir, layout, device=device)  # metrics.json when it scored this checkpoint
viz.metrics_table(report)

# %% [markdown]
# ## Every test video (legend: AUC within each video)

# %%
video_aucs = reports.score_curves([f"{trained.name}={run_dir}"], f"{figures}/video_curves.png", data=layout)
viz.video_auc_table(video_aucs)

# %% [markdown]
# ## Memory spaces: matching probabilities at the most anomalous frame, and a t-SNE of test queries
#
# Each space is drawn from the method's `memory_spaces` hook; a method without a memory shows none.

# %%
scores = engine.load_scores(run_dir)
video = max(layout.testing, key=lambda v: v.n_anomalous).name
frame = int(np.nanargmax(scores["score"][video]))
batch = trained.clip(layout.video(video), frame)
spaces = analysis.memory_space_names(trained, layout.testing)
spaces

# %% [markdown]
# ## Error maps of that video: its most and least anomalous frames
#
# Frame, prediction or reconstruction, squared error, the method's own anomaly map (where it has one), and the
# ground-truth mask outlined in cyan.

# %%
maps = explore.video_maps(trained, layout.video(video))
explore.plot_video_error_maps(maps, path=f"{figures}/error_maps.png");

# %%
space_figures = []
for space in spaces:
    sample = analysis.sample_memory_space(trained, layout.testing, space, n=tsne_points, seed=seed)
    viz.plot_memory_tsne(sample, title=f"{trained.name}: {space}", seed=seed, path=f"{figures}/tsne_{space}.png")
    viz.plot_space_maps(batch, trained.memory_spaces(batch)[space], title=f"{space}: {video}, frame {frame}",
                        path=f"{figures}/maps_{space}.png")
    space_figures += [f"{figures}/tsne_{space}.png", f"{figures}/maps_{space}.png"]

# %%
for key in ("micro_auc", "macro_auc", "eer", "frames_left_out"):
    sb.glue(key, report[key])
sb.glue("baseline_micro_auc", report["baseline_frame_difference"]["micro_auc"])
sb.glue("memory_spaces", spaces)
sb.glue("data_root", str(layout.root))
sb.glue("figures", [f"{figures}/loss.png", f"{figures}/video_curves.png", f"{figures}/error_maps.png"] + space_figures)
