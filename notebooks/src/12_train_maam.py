# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # MAAM-Net: memory-augmented appearance-motion network (Wang et al., PR 2023)
#
# One frame in; a shared encoder and a memory of N items read with hard shrinkage (Eq. 1-4); one decoder
# reconstructs the frame, the other predicts its optical flow to the next frame (OpenCV DIS or Farneback instead of
# FlowNet2, computed once and cached). Frames are scored by PSCD (Algorithm 1): appearance and motion errors summed
# over patches, fused with weight psi, max over patches, min-max per video (and, as the public code, over the whole
# test set). `papermill 12_train_maam.ipynb out.ipynb -p preset smoke`.

# %% tags=["parameters"]
data_root = None          # a common-layout root, or None for the synthetic walkway data
synth_preset = "default"  # synthetic preset used when data_root is None
preset = "cpu"            # "smoke" (seconds), "cpu" (minutes on 2 cores), "paper" (GPU)
epochs = None             # None: as in the preset
ablations = []            # e.g. ["no_latent"], ["appearance_only"] (Table 5, training level)
n_frames = 4              # frames in the error-map figure
seed = 0
device = "auto"
out_dir = "runs/maam"

# %%
import scrapbook as sb

from vadlab import analysis, data, engine, reports, viz
from vadlab.analysis import maam
from vadlab.registry import create_method

reports.smoke_banner(preset)
layout = data.prepare(data_root, synth_preset, seed=seed)
layout.summary()

# %% [markdown]
# ## Train (the optical flow is computed and cached on first use; rerunning resumes from the checkpoint)

# %%
overrides = {} if epochs is None else {"epochs": epochs}
method = create_method("maam", preset, ablations=ablations, **overrides)
history = engine.fit(method, layout, out_dir, seed=seed, device=device, resume=True,
                     on_epoch=viz.LiveLoss(f"{out_dir}/loss.png"))

# %% [markdown]
# ## Evaluation beside the frame-difference baseline (items_per_query / items_per_frame: Fig. 5's statistic)

# %%
report = engine.evaluate_run(out_dir, layout, device=device)
viz.metrics_table(report)

# %% [markdown]
# ## Memory health (vadlab's diagnostic, not the papers'): how the training clips' queries spread over the items
#
# The top item's share is 1/M when every item is used alike and 1 when one item takes every query (collapse); the
# entropy over log M is 1 and 0 there. DREAM adds the share of Eq. 5 triplets still active (a positive loss).

# %%
analysis.health_table(report)

# %% [markdown]
# ## Branch ablation (Table 5 at the score level): appearance only, motion only, fused; per-video and global min-max

# %%
scores = engine.load_scores(out_dir)
aucs = maam.branch_aucs(scores, layout.labels())
rows = maam.branch_rows(aucs, report["baseline_frame_difference"]["on_method_frames"]["micro_auc"])
viz.plot_comparison(rows, path=f"{out_dir}/branches.png")
rows

# %% [markdown]
# ## Frame, flow (colour wheel: hue = direction), error maps and the fused PSCD map; ground truth in cyan

# %%
trained = engine.load_run(out_dir, device)
picks = maam.pick_frames(scores, layout, n_frames)
viz.plot_flow_error_maps(maam.map_rows(trained, layout, picks), path=f"{out_dir}/maps.png")

# %% [markdown]
# ## How the memory is used: selections per item over the test frames (any memory size)

# %%
counts = maam.item_usage(trained, layout.testing)
viz.plot_item_usage(counts, title=f"{len(counts)} items, test split", path=f"{out_dir}/item_usage.png")

# %%
for key in ("micro_auc", "auc_global_norm", "pixel_auc", "items_per_query", "items_per_frame", "frames_left_out"):
    sb.glue(key, report.get(key))
sb.glue("memory_health", report.get("memory_health", {}))
sb.glue("baseline_micro_auc", report["baseline_frame_difference"]["on_method_frames"]["micro_auc"])
sb.glue("branch_aucs", aucs)
sb.glue("final_loss", history[-1]["loss"])
sb.glue("figures", [f"{out_dir}/{name}.png" for name in ("loss", "branches", "maps", "item_usage")])
