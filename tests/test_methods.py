"""Every registered method through the whole pipeline (timm style: the tests walk `list_methods()`).

The throwaway fifth method `toy_dual` (tests/plugins/toy_dual.py, loaded by conftest through $VADLAB_PLUGINS) is
registered for the whole session, so these tests show that a new method is trained, resumed bit-exactly after a
stop and after a real kill, evaluated, listed by the CLI and sampled by the generic memory analysis, with no edit
outside its own file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import assert_same_tensors, checkpoint

from vadlab import engine
from vadlab.analysis import memory_space_names, sample_memory_space
from vadlab.data.layout import load_layout
from vadlab.registry import create_method, get_spec, list_methods

METHODS = list_methods()


def test_the_fixture_method_is_registered_beside_the_built_in_ones():
    assert {"mnad_pred", "mnad_recon", "toy_dual"} <= set(METHODS)


@pytest.mark.parametrize("name", METHODS)
def test_stop_then_resume_gives_the_same_weights_and_optimiser(random_layout, tmp_path, name):
    full, part = tmp_path / "full", tmp_path / "part"
    engine.fit(create_method(name, "smoke", epochs=3), random_layout, full, seed=7, device="cpu", progress=False)
    engine.fit(create_method(name, "smoke", epochs=3), random_layout, part, seed=7, device="cpu", progress=False,
               stop_after=1)
    assert checkpoint(part)["epoch"] == 1
    history = engine.fit(create_method(name, "smoke", epochs=3), random_layout, part, seed=7, device="cpu",
                         progress=False, resume=True)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    a, b = checkpoint(full), checkpoint(part)
    assert_same_tensors(a["model"], b["model"])  # memories included: they are buffers or parameters
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]  # learning rates of every group
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


@pytest.mark.parametrize("name", METHODS)
def test_evaluate_writes_the_protocol_for_every_method(random_layout, tmp_path, name):
    run = tmp_path / "run"
    method = create_method(name, "smoke", epochs=1)
    engine.fit(method, random_layout, run, device="cpu", progress=False)
    report = engine.evaluate_run(run, random_layout, device="cpu", progress=False)
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["micro_auc"] == report["micro_auc"] and 0.0 <= report["micro_auc"] <= 1.0
    assert report["method"] == name and "on_method_frames" in report["baseline_frame_difference"]
    scores = engine.load_scores(run)
    assert set(method.fusion_weights()) | {"score", "label"} == set(scores)
    spec = method.clip_spec()
    for video in load_layout(random_layout).testing:
        scored = np.isfinite(scores["score"][video.name])
        assert scored.sum() == len(spec.scored_range(len(video)))  # the rest left out, never filled in


def test_fixture_method_uses_its_hooks(random_layout, tmp_path):
    """The labelled-anomaly training set, mixed batches, staged groups and the two memory updates all ran."""
    run = tmp_path / "run"
    method = create_method("toy_dual", "smoke", epochs=2)
    layout = load_layout(random_layout)
    engine.fit(method, layout, run, seed=0, device="cpu", progress=False)
    info = json.loads((run / "run.json").read_text())
    n_normal = sum(len(v) - 2 for v in layout.training)  # 2 input frames, predict the next
    n_abnormal = sum(len(v) - 2 for v in layout.abnormal)
    assert info["train_clips"] == n_normal + n_abnormal
    dataset = method.train_dataset(layout)
    batches = method.train_batches(dataset, epoch=0, seed=0, rank=0, world_size=1, batch_size=4)
    for batch in batches:
        labels = [dataset[i]["label"] for i in batch]
        assert labels.count(1) == 1 and labels.count(0) == 3
    state = checkpoint(run)
    lrs = [g["lr"] for g in state["optimizer"]["param_groups"]]
    assert lrs == pytest.approx([1e-3 * 0.25, 1e-3 * 0.25])  # two groups, step decay of 0.5 per epoch
    assert torch.allclose(state["model"]["normality"].norm(dim=1), torch.ones(3))
    # stage 1 (epoch 1) leaves the discriminator head at its seeded init; stage 2 trains it
    engine.set_seed(0)
    init = method.build_model().state_dict()["discriminator.weight"]
    engine.fit(create_method("toy_dual", "smoke", epochs=2), layout, tmp_path / "stage1", seed=0, device="cpu",
               progress=False, stop_after=1)
    assert torch.equal(checkpoint(tmp_path / "stage1")["model"]["discriminator.weight"], init)
    assert not torch.equal(state["model"]["discriminator.weight"], init)


@pytest.mark.parametrize("name", METHODS)
def test_memory_spaces_are_sampled_generically(random_layout, tmp_path, name):
    method = create_method(name, "smoke", epochs=1)
    engine.fit(method, random_layout, tmp_path / "run", device="cpu", progress=False)
    trained = engine.load_run(tmp_path / "run", "cpu")
    videos = load_layout(random_layout).testing
    names = memory_space_names(trained, videos)
    for space in names:
        sample = sample_memory_space(trained, videos, space, n=40, seed=1)
        n, c = sample["queries"].shape
        assert n == 40 and sample["items"].shape[1] == c
        assert sample["nearest"].max() < len(sample["items"]) and len(sample["anomalous"]) == n
        again = sample_memory_space(trained, videos, space, n=40, seed=1)
        assert np.array_equal(sample["queries"], again["queries"])  # seeded


@pytest.mark.parametrize("name", METHODS)
def test_declared_ablations_build_and_train(random_layout, tmp_path, name):
    for ablation in get_spec(name).cls.ablations:
        method = create_method(name, "smoke", epochs=1, ablations=[ablation])
        history = engine.fit(method, random_layout, tmp_path / ablation, device="cpu", progress=False)
        assert np.isfinite(history[-1]["loss"])


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_a_killed_training_process_resumes_to_the_same_weights(tmp_path, name):
    """A real interruption: SIGKILL a `vadlab train` process after its first checkpoint, resume with --resume."""
    from conftest import write_random_layout

    data = write_random_layout(tmp_path / "data", n_train=3, frames=40, size=(32, 32))
    args = [name, "--data", str(data), "--preset", "smoke", "--epochs", "6", "--seed", "3", "--device", "cpu",
            "--quiet"]
    cmd = [sys.executable, "-m", "vadlab.cli", "train"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(cmd + args + ["--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(cmd + args + ["--out", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / engine.CHECKPOINT
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epoch_at_kill = checkpoint(tmp_path / "killed")["epoch"]
    assert epoch_at_kill < 6, "the process finished before it could be killed; make the run longer"
    subprocess.run(cmd + args + ["--out", str(tmp_path / "killed"), "--resume"], check=True, env=env,
                   capture_output=True)
    assert_same_tensors(checkpoint(tmp_path / "full")["model"], checkpoint(tmp_path / "killed")["model"])


def test_the_fixture_method_gives_its_facts_through_its_registration(tmp_path, tiny_synthetic, capsys):
    """The plugin's colour, seconds per step and reported numbers, given only to `register_method` in its own file,
    reach the figures, the reproduce estimate and the table of papers' numbers."""
    from pathlib import Path

    from vadlab import reports, reproduce, viz
    from vadlab.cli import main

    toy = sys.modules["vadlab_plugin_toy_dual"]  # the plugin module, loaded by conftest through $VADLAB_PLUGINS
    spec = get_spec("toy_dual")
    assert (spec.colour, spec.step_seconds, spec.reported) == (toy.COLOUR, toy.STEP_SECONDS, toy.REPORTED)
    # figures: its colour, also for a run label, and no other method's
    assert viz.method_colour("toy_dual") == viz.method_colour("toy_dual seed 1") == toy.COLOUR
    assert toy.COLOUR not in [viz.method_colour(m) for m in METHODS if m != "toy_dual"]
    # reproduce: its seconds per step in the estimate of a dry run
    seconds, source = toy.STEP_SECONDS["smoke"]
    assert reproduce.step_seconds("toy_dual", "smoke") == (seconds, source)
    assert reproduce.step_seconds("toy_dual", "cpu") is None
    table = tmp_path / "toy.toml"
    table.write_text('title = "toy"\npaper = "none"\ntable = "T"\nsection = "S"\ndataset = "synthetic:tiny"\n'
                     'seeds = [0]\npaper_on = "nothing"\n\n[[rows]]\nid = "T"\nlabel = "toy"\nmethod = "toy_dual"\n')
    assert main(["reproduce", str(table), "--preset", "smoke", "--data", str(tiny_synthetic), "--runs",
                 str(tmp_path / "runs"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"toy_dual at smoke: {seconds} s per step ({source})" in out and "no measured step time" not in out
    # the papers' numbers: its row, labelled with its source
    row = reports.reported_table(["toy_dual", "mnad_pred"]).loc["toy_dual"]
    assert row["ped2 (paper's number)"] == toy.REPORTED["ped2"] and row["source"] == toy.REPORTED["source"]
    # and no shared module names it: the plugin needs no edit outside its own file
    package = Path(__file__).resolve().parents[1] / "vadlab"
    assert [p for p in package.rglob("*") if p.is_file() and p.suffix in (".py", ".toml")
            and "toy_dual" in p.read_text()] == []
