"""Write notebooks/10_train_mnad.ipynb from the cells below (outputs empty). Rerun after editing the cells."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent.parent / "notebooks"

MNAD = [
    new_markdown_cell(
        "# MNAD: memory-guided normality (Park et al., CVPR 2020)\n\n"
        "Train MNAD-P (predict the 5th frame from 4) or MNAD-R (reconstruct the frame), evaluate it with the common\n"
        "protocol (per-video min-max, micro AUC), and look at a score curve. The parameters cell below is what\n"
        "papermill overrides: `papermill 10_train_mnad.ipynb out.ipynb -p preset smoke`."),
    new_code_cell(
        'variant = "pred"          # "pred" (MNAD-P) or "recon" (MNAD-R)\n'
        "data_root = None          # a common-layout root, or None for the synthetic walkway data\n"
        'synth_preset = "default"  # synthetic preset used when data_root is None\n'
        'preset = "cpu"            # "smoke" (seconds), "cpu" (minutes on 2 cores), "paper" (GPU)\n'
        "epochs = None             # None: as in the preset\n"
        "use_memory = True         # False: the w/o-memory ablation of the paper\n"
        "seed = 0\n"
        "tsne_points = 2000        # queries drawn for the t-SNE of the memory space\n"
        'device = "auto"\n'
        'out_dir = "runs/mnad"',
        metadata={"tags": ["parameters"]}),
    new_code_cell(
        "import numpy as np\n"
        "import scrapbook as sb\n"
        "from vadlab import data, engine, reports, viz\n"
        "from vadlab.models.mnad import memory_diagnostics, sample_queries\n"
        "from vadlab.registry import create_method\n\n"
        "layout = data.prepare(data_root, synth_preset, seed=seed)\n"
        "layout.summary()"),
    new_markdown_cell("## Train (the loss curve redraws after every epoch; rerunning resumes from the checkpoint)"),
    new_code_cell(
        "overrides = {} if epochs is None else {\"epochs\": epochs}\n"
        "method = create_method(f\"mnad_{variant}\", preset, use_memory=use_memory, **overrides)\n"
        "history = engine.fit(method, layout, out_dir, seed=seed, device=device, resume=True,\n"
        "                     on_epoch=viz.LiveLoss(f\"{out_dir}/loss.png\"))"),
    new_markdown_cell("## Evaluate: micro AUC beside the frame-difference baseline"),
    new_code_cell(
        "report = engine.evaluate_run(out_dir, layout, device=device)\n"
        "viz.metrics_table(report)"),
    new_markdown_cell("## Score curve of the test video with the most anomalous frames (ground truth shaded)"),
    new_code_cell(
        "scores = engine.load_scores(out_dir)\n"
        "video = max(layout.testing, key=lambda v: v.n_anomalous).name\n"
        "viz.plot_score_curve(scores[\"score\"][video], scores[\"label\"][video], title=f\"{method.name} on {video}\",\n"
        "                     path=f\"{out_dir}/score_curve.png\");"),
    new_markdown_cell("## Every test video beside the frame-difference baseline (legend: AUC within each video)"),
    new_code_cell(
        "video_aucs = reports.score_curves([f\"{method.name}={out_dir}\"], f\"{out_dir}/video_curves.png\", data=layout)\n"
        "video_aucs"),
    new_markdown_cell(
        "## Inside the memory: the most anomalous frame of that video\n\n"
        "Nearest item per query position (Eq. 11) and its matching probability (Eq. 1); then how the model uses\n"
        "its memory over the training clips (`position_locked` near 1: addressing follows the place in the frame,\n"
        "not its content; `psnr_mean_item` close to `psnr_read`: the decoder hardly needs the memory read)."),
    new_code_cell(
        "trained = engine.load_run(out_dir, device)\n"
        "trained.reset_test_state()\n"
        "frame = int(np.nanargmax(scores[\"score\"][video]))\n"
        "batch = trained.clip(layout.video(video), frame)\n"
        "viz.plot_memory_maps(batch, trained.inspect(batch), title=f\"{video}, frame {frame}\",\n"
        "                     path=f\"{out_dir}/memory_maps.png\");"),
    new_code_cell(
        "diagnostics = memory_diagnostics(trained, layout.training) if use_memory else {}\n"
        "diagnostics"),
    new_markdown_cell(
        "## The memory space (the paper's Fig. 6): t-SNE of test queries and the items (stars)\n\n"
        "Coloured by nearest item, by the query's row in the frame, and by the frame's label. Clusters that follow\n"
        "the row rather than the label are the position-locked addressing measured above."),
    new_code_cell(
        "if use_memory:\n"
        "    sample = sample_queries(trained, layout.testing, n=tsne_points, seed=seed)\n"
        "    viz.plot_memory_tsne(sample, title=f\"{method.name}, test queries\", seed=seed,\n"
        "                         path=f\"{out_dir}/memory_tsne.png\");"),
    new_code_cell(
        "for key in (\"micro_auc\", \"macro_auc\", \"eer\", \"auc_global_norm\", \"frames_left_out\"):\n"
        "    sb.glue(key, report[key])\n"
        "sb.glue(\"baseline_micro_auc\", report[\"baseline_frame_difference\"][\"micro_auc\"])\n"
        "sb.glue(\"final_loss\", history[-1][\"loss\"])\n"
        "if diagnostics:\n"
        "    sb.glue(\"position_locked\", diagnostics[\"position_locked\"])\n"
        "sb.glue(\"figures\", [f\"{out_dir}/loss.png\", f\"{out_dir}/score_curve.png\", f\"{out_dir}/memory_maps.png\",\n"
        "                  f\"{out_dir}/video_curves.png\"] + ([f\"{out_dir}/memory_tsne.png\"] if use_memory else []))"),
]


def write(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{Path(name).stem[:12]}-{i:02d}"
    nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    write("10_train_mnad.ipynb", MNAD)
