"""The engine: checkpoints, resume (same final weights), history, scoring bookkeeping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_same_tensors, checkpoint

from vadlab import engine
from vadlab.data.layout import load_layout
from vadlab.errors import DataError
from vadlab.eval.baselines import evaluate_frame_difference
from vadlab.registry import create_method


def test_different_seed_gives_different_weights(random_layout, tmp_path):
    engine.fit(create_method("mnad_pred", "smoke"), random_layout, tmp_path / "a", seed=1, device="cpu", progress=False)
    engine.fit(create_method("mnad_pred", "smoke"), random_layout, tmp_path / "b", seed=2, device="cpu", progress=False)
    a, b = checkpoint(tmp_path / "a")["model"], checkpoint(tmp_path / "b")["model"]
    assert not torch.equal(a["memory"], b["memory"])


@pytest.mark.parametrize("name", ["mnad_pred", "dream"])
def test_the_model_is_built_once_under_the_seed_and_training_is_unchanged(random_layout, tmp_path, name):
    """create_method builds no model; engine.fit builds it once, right after seeding. Before, Method.__init__ built
    one and engine.fit built it again under the seed: a model built (used) before the seed is still built again,
    and both paths give bit-identical weights, memory and optimiser after training (the same as before the change:
    the hashes of one smoke epoch of mnad_pred, dream, maam and std matched the old code's)."""
    builds = []

    def counted(method):
        build = method.build_model
        method.build_model = lambda: builds.append(name) or build()
        return method

    once = counted(create_method(name, "smoke", epochs=1))
    assert not once.model_built
    engine.fit(once, random_layout, tmp_path / "once", seed=5, device="cpu", progress=False)
    assert len(builds) == 1

    twice = counted(create_method(name, "smoke", epochs=1))
    twice.model.eval()  # used before the run: built with the RNG wherever it was
    torch.rand(7)  # and the RNG moved on
    engine.fit(twice, random_layout, tmp_path / "twice", seed=5, device="cpu", progress=False)
    assert len(builds) == 3  # its own first build, then again under the seed
    a, b = checkpoint(tmp_path / "once"), checkpoint(tmp_path / "twice")
    assert_same_tensors(a["model"], b["model"])
    assert_same_tensors(a["optimizer"]["state"][0], b["optimizer"]["state"][0])


def test_existing_run_is_not_overwritten(random_layout, tmp_path):
    run = tmp_path / "run"
    engine.fit(create_method("mnad_pred", "smoke"), random_layout, run, device="cpu", progress=False)
    before = (run / engine.CHECKPOINT).read_bytes()
    with pytest.raises(DataError, match="--resume"):
        engine.fit(create_method("mnad_pred", "smoke"), random_layout, run, device="cpu", progress=False)
    assert (run / engine.CHECKPOINT).read_bytes() == before


def test_checkpoint_holds_everything_needed_to_resume(random_layout, tmp_path):
    run = tmp_path / "run"
    engine.fit(create_method("mnad_pred", "smoke", epochs=2), random_layout, run, device="cpu", progress=False)
    state = torch.load(run / engine.CHECKPOINT, weights_only=True)  # tensors and plain data only
    assert {"model", "optimizer", "scheduler", "rng", "epoch", "history", "config", "method", "format"} <= set(state)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert state["format"] == 2 and state["position"] is None  # written at an epoch's end, not inside one
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temp files
    run_info = json.loads((run / "run.json").read_text())
    assert run_info["method"] == "mnad_pred" and run_info["config"]["epochs"] == 2


def test_evaluate_run_leaves_out_unscorable_frames(random_layout, tmp_path):
    run = tmp_path / "run"
    engine.fit(create_method("mnad_pred", "smoke"), random_layout, run, device="cpu", progress=False)
    report = engine.evaluate_run(run, random_layout, device="cpu", progress=False)
    # 2 test videos of 12 frames, 4 input frames: 4 frames per video cannot be predicted
    assert report["frames_left_out"] == 8 and report["left_out_per_video"] == {"test00": 4, "test01": 4}
    assert report["frames_scored"] == 16
    scores = engine.load_scores(run)
    assert np.isnan(scores["score"]["test00"][:4]).all() and np.isfinite(scores["score"]["test00"][4:]).all()
    assert set(scores) == {"neg_psnr", "distance", "score", "label"}
    assert 0.0 <= report["micro_auc"] <= 1.0
    assert "baseline_frame_difference" in report
    assert 0.0 <= report["pixel_auc"] <= 1.0 and report["pixel_auc_videos"] == 2
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["micro_auc"] == report["micro_auc"]
    # like for like: the baseline on the 16 frames the predictor scored, not on the 22 it scores itself
    base = report["baseline_frame_difference"]
    assert base["frames_scored"] == 22 and base["on_method_frames"]["frames_scored"] == 16
    only = {v: np.isfinite(scores["score"][v]) for v in ("test00", "test01")}
    expected = evaluate_frame_difference(load_layout(random_layout), size=32, only=only)["micro_auc"]
    assert base["on_method_frames"]["micro_auc"] == pytest.approx(expected)


def test_reconstruction_with_motion_cues_scores_the_middle_frames(random_layout, tmp_path):
    # MNAD Sec. 4.3: T frames in, the frame at target_index reconstructed; frames without a full window left out
    run = tmp_path / "run"
    method = create_method("mnad_recon", "smoke", frames_in=5, target_index=2)
    engine.fit(method, random_layout, run, device="cpu", progress=False)
    report = engine.evaluate_run(run, random_layout, device="cpu", progress=False)
    assert report["left_out_per_video"] == {"test00": 4, "test01": 4}
    score = engine.load_scores(run)["score"]["test00"]
    assert np.isnan(score[[0, 1, 10, 11]]).all() and np.isfinite(score[2:10]).all()


@pytest.mark.slow
def test_train_and_evaluate_on_real_ped2_mini(ped2_mini, tmp_path):
    """A short real run on real video: bookkeeping of the protocol on 3 test videos of 180/180/150 frames."""
    run = tmp_path / "run"
    engine.fit(create_method("mnad_pred", "smoke", image_size=32, epochs=1), ped2_mini, run, device="cpu",
               progress=False)
    report = engine.evaluate_run(run, ped2_mini, device="cpu", progress=False)
    assert report["frames_total"] == 510 and report["frames_left_out"] == 12  # 4 per video, never filled in
    assert report["pixel_auc_videos"] == 3 and 0.0 <= report["pixel_auc"] <= 1.0
    assert report["baseline_frame_difference"]["frames_left_out"] == 3


def test_resume_after_a_kill_between_checkpoint_and_history_rewrites_the_history(random_layout, tmp_path):
    run = tmp_path / "run"
    engine.fit(create_method("mnad_pred", "smoke", epochs=2), random_layout, run, device="cpu", progress=False)
    (run / "history.json").write_text(json.dumps(json.loads((run / "history.json").read_text())[:1]))  # one behind
    engine.fit(create_method("mnad_pred", "smoke", epochs=2), random_layout, run, device="cpu", progress=False,
               resume=True)
    assert len(json.loads((run / "history.json").read_text())) == 2


def test_resume_refuses_a_different_config(random_layout, tmp_path):
    run = tmp_path / "run"
    engine.fit(create_method("mnad_pred", "smoke"), random_layout, run, device="cpu", progress=False)
    with pytest.raises(DataError, match="memory_items 4 -> 5"):
        engine.fit(create_method("mnad_pred", "smoke", memory_items=5), random_layout, run, device="cpu",
                   progress=False, resume=True)


def test_evaluation_reads_the_evaluation_of_the_last_checkpoint(random_layout, tmp_path):
    """A report after the comparison reads its metrics.json instead of scoring the test split again; a newer
    checkpoint (or other data) is scored afresh."""
    import os

    run = tmp_path / "run"
    engine.fit(create_method("mnad_pred", "smoke"), random_layout, run, device="cpu", progress=False)
    report = engine.evaluate_run(run, random_layout, device="cpu", progress=False)
    stamp = (run / "metrics.json").stat().st_mtime_ns
    assert engine.evaluation(run, random_layout, device="cpu", progress=False) == json.loads(
        (run / "metrics.json").read_text())
    assert (run / "metrics.json").stat().st_mtime_ns == stamp
    later = stamp + 10**9
    os.utime(run / "checkpoint.pt", ns=(later, later))  # a checkpoint newer than the evaluation
    again = engine.evaluation(run, random_layout, device="cpu", progress=False)
    assert (run / "metrics.json").stat().st_mtime_ns != stamp and again["micro_auc"] == report["micro_auc"]
    assert report["inference_seconds"] > 0


# --- steps_per_epoch: the cpu presets' budget by steps (issue 27) --------------------------------------------------
def _count_steps(method):
    calls = []
    original = method.training_step
    method.training_step = lambda batch: calls.append(len(batch["input"])) or original(batch)
    return calls


@pytest.mark.parametrize("name", ["mnad_pred", "dream"])
def test_steps_per_epoch_cuts_each_epoch_to_its_first_steps_of_a_fresh_shuffle(random_layout, tmp_path, name):
    full = create_method(name, "smoke", epochs=1)
    steps = len(engine._train_loader(full, full.train_dataset(load_layout(random_layout)), 0, 0,
                                     _one_process(), True, torch.device("cpu")))
    assert steps >= 3, "the fixture needs epochs of 3 steps or more"
    method = create_method(name, "smoke", epochs=2, steps_per_epoch=2)
    calls = _count_steps(method)
    engine.fit(method, random_layout, tmp_path / "cut", device="cpu", progress=False)
    assert len(calls) == 4  # 2 epochs of 2 steps
    # the two epochs' batches: the first two of each epoch's own shuffle (the uncut loader's)
    dataset = method.train_dataset(load_layout(random_layout))
    for epoch in (0, 1):
        cut = engine._train_loader(method, dataset, epoch, 0, _one_process(), True, torch.device("cpu"))
        uncut = engine._train_loader(full, dataset, epoch, 0, _one_process(), True, torch.device("cpu"))
        assert len(cut) == 2 and list(cut.batch_sampler) == list(uncut.batch_sampler)[:2]


def test_a_cut_above_the_epoch_trains_bit_for_bit_as_without_one(random_layout, tmp_path):
    """What keeps ped2-mini and the demo sets training as before: their epochs are shorter than the cpu cut."""
    engine.fit(create_method("mnad_pred", "smoke", epochs=2), random_layout, tmp_path / "a", device="cpu",
               progress=False)
    engine.fit(create_method("mnad_pred", "smoke", epochs=2, steps_per_epoch=10_000), random_layout, tmp_path / "b",
               device="cpu", progress=False)
    a, b = checkpoint(tmp_path / "a"), checkpoint(tmp_path / "b")
    assert_same_tensors(a["model"], b["model"])
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_the_cpu_presets_budget_is_a_step_count_and_the_estimate_knows_it(random_layout):
    from vadlab.config import CPU_STEPS_PER_EPOCH
    from vadlab.registry import get_spec, list_methods
    from vadlab.reproduce.plan import steps_per_epoch

    builtin = [m for m in list_methods() if get_spec(m).cls.__module__.startswith("vadlab.")]
    assert {m: get_spec(m).presets["cpu"].steps_per_epoch for m in builtin} == dict.fromkeys(builtin,
                                                                                           CPU_STEPS_PER_EPOCH)
    assert all(get_spec(m).presets["paper"].steps_per_epoch == 0 for m in builtin)  # the papers: every clip
    layout = load_layout(random_layout)
    cfg = create_method("mnad_pred", "smoke").config
    uncut = steps_per_epoch("mnad_pred", cfg, layout)
    assert uncut >= 3
    assert steps_per_epoch("mnad_pred", create_method("mnad_pred", "smoke", steps_per_epoch=2).config, layout) == 2
    assert steps_per_epoch("mnad_pred", create_method("mnad_pred", "smoke", steps_per_epoch=99).config, layout) == uncut


def _one_process():
    from vadlab import distributed

    return distributed.Group(0, 1, torch.device("cpu"))
