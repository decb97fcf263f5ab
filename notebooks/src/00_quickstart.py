# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Quickstart: synthetic videos to a first score curve and the explorer
#
# Synthesises the walkway dataset (once), trains one registered method for a few epochs, scores the test videos
# with the common protocol (per-video min-max, micro AUC beside the frame-difference baseline), draws a score curve
# and the error maps of the most and least anomalous frames, and opens the interactive explorer. With the defaults
# it takes a few minutes on a 2-core laptop. `vadlab list` shows the methods.

# %% tags=["parameters"]
method = "mnad_pred"       # any registered method (`vadlab list`)
data_root = None           # a common-layout root, or None for the synthetic walkway data
synth_preset = "default"   # synthetic preset used when data_root is None
preset = "cpu"             # "smoke" (seconds), "cpu" (minutes on 2 cores), "paper" (GPU)
epochs = 4                 # a quick first model; None: the preset's epochs
seed = 0
device = "auto"
out_dir = "runs/quickstart"

# %%
import scrapbook as sb

from vadlab import data, engine, explore, reports, viz
from vadlab.registry import create_method

reports.smoke_banner(preset)
layout = data.prepare(data_root, synth_preset, seed=seed)
layout.summary()

# %% [markdown]
# ## Train (the loss curve redraws after every epoch; rerunning resumes from the checkpoint)

# %%
overrides = {} if epochs is None else {"epochs": epochs}
history = engine.fit(create_method(method, preset, **overrides), layout, out_dir, seed=seed, device=device,
                     resume=True, on_epoch=viz.LiveLoss(f"{out_dir}/loss.png"))

# %% [markdown]
# ## Evaluate beside the frame-difference baseline

# %%
report = engine.evaluate_run(out_dir, layout, device=device)
viz.metrics_table(report)

# %% [markdown]
# ## A first score curve: the test video with the most anomalous frames (ground truth shaded)

# %%
scores = engine.load_scores(out_dir)
video = max(layout.testing, key=lambda v: v.n_anomalous).name
viz.plot_score_curve(scores["score"][video], scores["label"][video], method=method, title=f"{method} on {video}",
                     path=f"{out_dir}/score_curve.png");

# %% [markdown]
# ## Error maps: the most and least anomalous frames of that video
#
# Frame, prediction (or reconstruction), squared error, the method's own anomaly map, and the ground-truth mask
# outlined in cyan.

# %%
trained = engine.load_run(out_dir, device)
maps = explore.video_maps(trained, layout.video(video))
explore.plot_video_error_maps(maps, path=f"{out_dir}/error_maps.png");

# %% [markdown]
# ## The explorer
#
# Pick a test video, drag the slider or press play; hover over a frame to see the matching weights of the memory
# query under the mouse; click the score curve to jump to that frame. `explore.Explorer(run, data,
# compare=other_run)` lays a second run beside this one.

# %%
explorer = explore.Explorer(out_dir, layout, device=device, video=video)
explorer

# %%
for key in ("micro_auc", "macro_auc", "eer", "frames_left_out"):
    sb.glue(key, report[key])
sb.glue("baseline_micro_auc", report["baseline_frame_difference"]["micro_auc"])
sb.glue("explorer_frames", len(explorer.maps(0, video).frames))
sb.glue("explorer_step_ms", max(explorer.step_ms))
sb.glue("data_root", str(layout.root))
sb.glue("figures", [f"{out_dir}/loss.png", f"{out_dir}/score_curve.png", f"{out_dir}/error_maps.png"])
