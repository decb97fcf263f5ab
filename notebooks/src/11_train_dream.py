# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # DREAM: dual normality/abnormality memory with a few labelled anomalies (Guo et al.)
#
# A fold of the few-anomaly protocol (Sec. IV-C, cut by anomalous segments with a margin), DREAM trained on it with
# the labelled anomalies, the Table III ablation on the same data, the r statistics of Sec. IV-G, the two memory
# spaces, and the score curve with the anomalies that joined training marked. Parameters below are what papermill
# overrides: `papermill 11_train_dream.ipynb out.ipynb -p preset smoke`.

# %% tags=["parameters"]
data_root = None          # a common-layout root, or None for the synthetic walkway data (`default`)
preset = "cpu"            # "smoke" (seconds), "cpu" (minutes on 2 cores), "paper" (GPU)
backbone = "dream"        # "dream" (U-Net) or "dream_convlstm"
epochs = None             # None: as in the preset
folds = 2                 # K of the fold protocol (the paper: 10)
fold = 0                  # which fold joins training
margin = 5                # frames left out of test on each side of a segment moved to training
ablation = True           # train the Table III rows too
seed = 0
tsne_points = 2000        # queries drawn per memory space for the t-SNE
device = "auto"
out_dir = "runs/dream"

# %%
import scrapbook as sb

from vadlab import analysis, data, engine, reports, viz
from vadlab.analysis import dream
from vadlab.data import splits
from vadlab.registry import create_method

reports.smoke_banner(preset)
source = data.prepare(data_root, "default", seed=seed)
layout = splits.kfold_split(source.root, f"{out_dir}/data-k{folds}-f{fold}", k=folds, fold=fold, margin=margin,
                            overwrite=True)
layout.summary()

# %% [markdown]
# ## Train DREAM on the fold (normal training videos + the fold's anomalous segments), evaluate on the rest

# %%
overrides = {} if epochs is None else {"epochs": epochs}
method = create_method(backbone, preset, **overrides)
run = f"{out_dir}/{backbone}"
history = engine.fit(method, layout, run, seed=seed, device=device, resume=True,
                     on_epoch=viz.LiveLoss(f"{out_dir}/loss.png"))
report = engine.evaluate_run(run, layout, device=device)
viz.metrics_table(report)

# %% [markdown]
# ## Memory health (vadlab's diagnostic, not the papers'): how the training clips' queries spread over the items
#
# The top item's share is 1/M when every item is used alike and 1 when one item takes every query (collapse); the
# entropy over log M is 1 and 0 there. DREAM adds the share of Eq. 5 triplets still active (a positive loss).

# %%
analysis.health_table(report)

# %% [markdown]
# ## Table III on the same fold: UNet+Mem, UNet+Disc, UNet+Mem+Disc, DREAM, and the frame-difference baseline

# %%
rows = dream.TABLE_III_ROWS if ablation else {"UNet+DualMem+Disc (DREAM)": None}
table = dream.table_iii(dream.train_table_iii(layout, out_dir, name=backbone, preset=preset, seed=seed,
                                              device=device, rows=rows, **overrides))
viz.plot_comparison(table, path=f"{out_dir}/table_iii.png")
table

# %% [markdown]
# ## r statistics (Sec. IV-G, Eq. 13-18) beside the paper's Table IV
#
# As written, a working model gives r < 1 (the distance to a branch's own memory over that to the other); the
# paper's values (all > 1) match the inverse ratio.

# %%
trained = engine.load_run(run, device)
r_stats = dream.r_statistics(trained, layout.testing)
dream.r_table(r_stats)

# %% [markdown]
# ## The two memory spaces (the paper's Fig. 6 c, d): t-SNE of test queries and items, normal and abnormal apart

# %%
spaces = {name: analysis.sample_memory_space(trained, layout.testing, name, n=tsne_points, seed=seed)
          for name in analysis.memory_space_names(trained, layout.testing)}
viz.plot_memory_tsne(spaces, seed=seed, path=f"{out_dir}/memory_spaces.png");

# %% [markdown]
# ## Score curve of the test video a segment was taken from (orange: moved to training; grey: margin)

# %%
scores = engine.load_scores(run)
moved_from = splits.derived_meta(layout.root)["units"][0][0]
timeline = splits.source_timeline(layout.root, scores["score"], moved_from)
viz.plot_fold_curve(timeline, source.video(moved_from).labels, title=f"{backbone} on {moved_from}, fold {fold}",
                    path=f"{out_dir}/fold_curve.png");

# %%
video_aucs = reports.score_curves([f"{backbone}={run}"], f"{out_dir}/video_curves.png", data=layout)
for key in ("micro_auc", "macro_auc", "frames_left_out"):
    sb.glue(key, report[key])
sb.glue("memory_health", report.get("memory_health", {}))
sb.glue("baseline_micro_auc", report["baseline_frame_difference"]["on_method_frames"]["micro_auc"])
sb.glue("r_normal", r_stats.get("r_normal", float("nan")))
sb.glue("table_iii", table)
sb.glue("figures", [f"{out_dir}/loss.png", f"{out_dir}/table_iii.png", f"{out_dir}/memory_spaces.png",
                    f"{out_dir}/fold_curve.png", f"{out_dir}/video_curves.png"])
