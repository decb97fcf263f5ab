# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # One dataset, every registered method and the frame-difference baseline
#
# Trains each registered method at `preset` (a run that exists and is finished is reused), evaluates it with the
# common protocol and lays them side by side: micro and macro AUC, EER, pixel AUC, AUC per anomaly type (synthetic
# data), parameters, training time and inference frames per second; the ROC curves on one plot; and the numbers the
# papers report on their own datasets, labelled as theirs. `vadlab report notebooks/40_compare.ipynb -p preset cpu`.

# %% tags=["parameters"]
data_root = None            # a common-layout root, or None for the synthetic walkway data
synth_preset = "default"    # synthetic preset used when data_root is None
runs_dir = "runs/compare"   # one run folder per method: RUNS_DIR/<method>
methods = None              # None: every registered method (`vadlab list`)
preset = "cpu"
epochs = None               # None: the preset's epochs
train = True                # False: only reuse finished runs
seed = 0
device = "auto"
out_dir = None              # where figures go; None: RUNS_DIR/figures

# %%
import scrapbook as sb

from vadlab import data, reports, viz

reports.smoke_banner(preset)
layout = data.prepare(data_root, synth_preset, seed=seed)
figures = f"{runs_dir}/figures" if out_dir is None else out_dir
result = reports.compare_methods(layout, runs_dir, methods, preset=preset, train=train, seed=seed, device=device,
                                 epochs=epochs)
reports.comparison_table(result)

# %% [markdown]
# ## ROC curves on one plot (pooled frames, per-video min-max; the baseline grey and dashed)

# %%
viz.plot_roc(result["roc"], title=f"{layout.root.name}: frame-level ROC", path=f"{figures}/roc.png");

# %% [markdown]
# ## Micro AUC, and AUC per anomaly type (types recorded by the synthetic generator)

# %%
viz.plot_comparison({layout.root.name: {name: row["micro_auc"] for name, row in result["rows"].items()}},
                    path=f"{figures}/comparison.png");

# %%
per_type = reports.per_type_table(result)
if not per_type.empty:
    viz.plot_comparison(per_type.T.to_dict(orient="index"), metric_label="AUC within the type",
                        path=f"{figures}/per_type.png");
per_type

# %% [markdown]
# ## What the papers report (their datasets, their GPUs; not reproduced here)

# %%
reports.reported_table(list(result["rows"]))

# %%
for name, row in result["rows"].items():
    sb.glue(f"micro_auc[{name}]", row["micro_auc"])
sb.glue("methods", list(result["rows"]))
sb.glue("data_root", str(layout.root))
sb.glue("figures", [f"{figures}/roc.png", f"{figures}/comparison.png"]
        + ([f"{figures}/per_type.png"] if not per_type.empty else []))
