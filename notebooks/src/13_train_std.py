# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # STD: spatio-temporal dissociation (Chang et al., Pattern Recognition 2021)
#
# A spatial autoencoder reconstructs the first frame of a 5-frame clip, a motion U-Net with variance attention
# predicts the RGB difference between the last and the first frame, and a deep K-means cluster pulls their joint
# representation towards K centres. Training runs in stages (pretrain, K-means init, alternate); the score fuses
# the cluster distance with the prediction error of the last frame at the pixel level (Eq. 13-14). The parameters
# cell below is what papermill overrides: `papermill 13_train_std.ipynb out.ipynb -p preset smoke`.

# %% tags=["parameters"]
data_root = None          # a common-layout root, or None for the synthetic walkway data
synth_preset = "default"  # synthetic preset used when data_root is None
preset = "cpu"            # "smoke" (seconds), "cpu" (minutes on 2 cores), "paper" (GPU)
epochs = None             # None: as in the preset
ablation = None           # None (full model) or a Table 2 row: t2_app, t2_mot, t2_both, t2_both_att, t2_both_km
clusters = None           # None: as in the preset (Table 3 sweeps 4..64)
seed = 0
tsne_points = 2000        # representations drawn for the t-SNE of the cluster space
device = "auto"
out_dir = "runs/std"

# %%
import numpy as np
import scrapbook as sb

from vadlab import analysis, data, engine, reports, viz
from vadlab.analysis.std import attention_spread, loss_term_balance, stage_seconds
from vadlab.registry import create_method

reports.smoke_banner(preset)
layout = data.prepare(data_root, synth_preset, seed=seed)
layout.summary()

# %% [markdown]
# ## Train (pretrain, K-means init, alternate; rerunning resumes from the checkpoint)

# %%
overrides = {k: v for k, v in {"epochs": epochs, "clusters": clusters}.items() if v is not None}
method = create_method("std", preset, ablations=[ablation] if ablation else [], **overrides)
history = engine.fit(method, layout, out_dir, seed=seed, device=device, resume=True,
                     on_epoch=viz.LiveLoss(f"{out_dir}/loss.png"))
stage_seconds(history, method.config.pretrain_epochs)

# %% [markdown]
# ## The weighted loss terms of Eq. 12 per epoch: L_a, L_m and lambda_r * L_cluster
# Under `lambda_r_rule="fraction"` lambda_r is set from the first alternate steps so that the cluster term is
# `cluster_fraction` of L_a + L_m; the dotted line is mean(x_diff^2), the motion loss of predicting no motion.

# %%
viz.plot_std_loss_terms(history, pretrain_epochs=method.config.pretrain_epochs, path=f"{out_dir}/loss_terms.png")
loss_term_balance(history, method.config.pretrain_epochs)

# %% [markdown]
# ## Evaluate: micro AUC beside the frame-difference baseline; every signal alone (`per_signal_auc`); lambda_r in
# use and the zero-motion check (`motion_ratio`: the motion L2 loss over mean(x_diff^2) after pretraining)

# %%
report = engine.evaluate_run(out_dir, layout, device=device)
print({k: report.get(k) for k in ("lambda_r", "motion_ratio", "zero_motion")})
viz.metrics_table(report)

# %% [markdown]
# ## Score curve of the test video with the most anomalous frames (ground truth shaded)

# %%
scores = engine.load_scores(out_dir)
video = max(layout.testing, key=lambda v: v.n_anomalous).name
viz.plot_score_curve(scores["score"][video], scores["label"][video], title=f"std on {video}",
                     path=f"{out_dir}/score_curve.png");

# %% [markdown]
# ## One clip: reconstruction, predicted RGB difference, attention maps (Fig. 9), cluster distance, error

# %%
trained = engine.load_run(out_dir, device)
frame = int(np.nanargmax(scores["score"][video]))
batch = trained.clip(layout.video(video), frame)
viz.plot_std_clip(batch, trained.inspect(batch), title=f"{video}, frame {frame}", path=f"{out_dir}/clip.png");
attention_spread(trained, layout.testing, seed=seed)  # H*W*att per block: 1 everywhere is a uniform att

# %% [markdown]
# ## The cluster space: nearest centre per location, and a t-SNE of test representations and the centres (stars)

# %%
spaces = analysis.memory_space_names(trained, layout.testing)
figures = [f"{out_dir}/loss.png", f"{out_dir}/loss_terms.png", f"{out_dir}/score_curve.png", f"{out_dir}/clip.png"]
if spaces:
    viz.plot_space_maps(batch, trained.memory_spaces(batch)["clusters"], title="nearest cluster centre",
                        path=f"{out_dir}/cluster_map.png")
    sample = analysis.sample_memory_space(trained, layout.testing, "clusters", n=tsne_points, seed=seed)
    viz.plot_memory_tsne(sample, title="std, test representations", seed=seed, path=f"{out_dir}/cluster_tsne.png")
    figures += [f"{out_dir}/cluster_map.png", f"{out_dir}/cluster_tsne.png"]

# %%
for key in ("micro_auc", "macro_auc", "eer", "frames_left_out"):
    sb.glue(key, report[key])
sb.glue("baseline_micro_auc", report["baseline_frame_difference"]["micro_auc"])
sb.glue("final_loss", history[-1]["loss"])
sb.glue("zero_motion", report.get("zero_motion"))
sb.glue("memory_spaces", spaces)
sb.glue("figures", figures)
