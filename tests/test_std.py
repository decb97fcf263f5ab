"""STD (vadlab/models/std.py): the clip split, the architecture, the attention, the cluster space, the freezing of
the alternate steps, the K-means init, the schedule, the score, the label alignment and the staged resume. Each
numbered choice of the module docstring has a test here (named in its docstring)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import assert_same_tensors, checkpoint, write_random_layout
from torch import nn

from vadlab import engine
from vadlab.analysis.std import per_type_signal_auc
from vadlab.data.layout import LayoutWriter, load_layout
from vadlab.errors import ConfigError
from vadlab.eval.metrics import evaluate, frame_auc
from vadlab.models import std as S
from vadlab.models.base import EpochContext
from vadlab.registry import create_method, get_config


def _method(preset="smoke", **overrides) -> S.STD:
    torch.manual_seed(0)
    return create_method("std", preset, **overrides)


def _batch(cfg, b=3, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    h = w = cfg.image_size
    return {"input": torch.rand(b, cfg.frames_in, cfg.channels, h, w, generator=g) * 2 - 1,
            "target": torch.rand(b, cfg.channels, h, w, generator=g) * 2 - 1,
            "label": torch.zeros(b, dtype=torch.long), "video": torch.zeros(b, dtype=torch.long),
            "index": torch.arange(b)}


def _context(method, dataset=None, seed=0) -> EpochContext:
    optimizer, _ = method.configure_optimizers()
    return EpochContext(dataset=dataset, optimizer=optimizer, device=torch.device("cpu"), seed=seed)


def _index_video(root, n_frames=12, size=(16, 16), labels=None):
    """One training and one test video whose frame i is constant = 10 * i grey levels."""
    frames = np.stack([np.full(size, 10 * i, np.uint8) for i in range(n_frames)])
    labels = np.zeros(n_frames, np.uint8) if labels is None else np.asarray(labels, np.uint8)
    with LayoutWriter(root) as w:
        w.add_frames("training", "train00", frames)
        w.add_frames("testing", "test00", frames, labels=labels)
    return root


# --- 1. the clip split (choice 1) ---------------------------------------------------------------------------------
def test_clip_split_first_frame_stacked_frames_and_the_sign_of_the_difference(tmp_path):
    """Frame i constant = 10 i: the spatial input is frame t-4, the motion input frames t-4..t-1 in order, the
    target frame t, and x_diff = x_lif - x_fif = +40 grey levels (the sign of Sec. 3.7), in [0, 1] pixel units."""
    method = _method(frames_in=4, image_size=16)
    layout = load_layout(_index_video(tmp_path / "d"))
    item = method.test_dataset(layout.testing)[3]  # scores frame t = 7
    batch = torch.utils.data.default_collate([item])
    x_fif, x_clips, x_lif = S.split_clip(batch)
    assert int(batch["index"]) == 7
    level = lambda x: round(float(x.mean()) * 255)  # noqa: E731
    assert level(x_fif) == 30
    assert [level(x_clips[:, c]) for c in range(4)] == [30, 40, 50, 60]
    assert level(x_lif) == 70
    assert level(x_lif - x_fif) == 40
    assert x_fif.min() >= 0 and x_lif.max() <= 1


def test_the_predicted_frame_is_the_reconstruction_plus_the_difference():
    """Sec. 3.7: xbar_lif = xbar_fif (the reconstruction, not the real frame) + xbar_diff; perturbing the spatial
    decoder changes the score."""
    method = _method()
    method.model.eval()
    batch = _batch(method.config)
    out = method.inspect(batch)
    torch.testing.assert_close(out["output"], out["recon"] + out["diff"])
    before = method.score_batch(batch)["neg_regularity"]
    with torch.no_grad():
        method.model.spatial.head.bias.add_(0.3)
    assert not torch.allclose(method.score_batch(batch)["neg_regularity"], before)


# --- architecture (choice 2) ---------------------------------------------------------------------------------------
def test_structure_at_the_paper_preset():
    """3 BN in the spatial encoder (one after each block), none in the motion AE nor the decoders, LeakyReLU only,
    pixel shuffle in both decoders, 12 motion input channels, z_a and z_m of equal size, r with C_a + C_m channels."""
    method = _method("paper")
    net = method.model
    spatial_bn = [m for m in net.spatial.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(spatial_bn) == 3 and len(net.spatial.norms) == 3
    assert all(not isinstance(m, nn.BatchNorm2d) for m in net.spatial.up.modules())
    assert all(not isinstance(m, nn.BatchNorm2d) for m in net.motion.modules())
    assert not any(isinstance(m, nn.ReLU) for m in net.modules())
    assert any(isinstance(m, nn.LeakyReLU) for m in net.modules())
    assert all(isinstance(b.shuffle, nn.PixelShuffle) for b in [*net.spatial.up, net.motion.up1, net.motion.up2,
                                                                 net.motion.up3])
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    assert net.motion.stem[0].in_channels == 12
    net.eval()
    with torch.no_grad():
        z_a = net.spatial.encode(torch.rand(1, 3, 256, 256))
        z_m, feats, atts = net.motion.encode(torch.rand(1, 12, 256, 256))
        r = S.representation(z_a, z_m)
    assert z_a.shape == z_m.shape == (1, 256, 32, 32)
    assert r.shape == (1, 512, 32, 32) and net.centres.shape == (32, 512)
    assert [a.shape[-1] for a in atts] == [128, 64, 32] and len(net.motion.attention) == 3


def test_representation_lies_in_the_unit_interval():
    """Choice 4: every entry of r is in [0, 1] (and each location has unit norm) for random inputs."""
    method = _method()
    with torch.no_grad():
        out = method.model(*method._inputs(_batch(method.config, b=5))[:2])
    r = out["r"]
    assert r.min() >= 0 and r.max() <= 1
    torch.testing.assert_close(r.norm(dim=1), torch.ones(r.shape[0], *r.shape[2:]))


# --- variance attention (choice 3) -------------------------------------------------------------------------------
def test_attention_uniform_for_channel_constant_features_and_peaked_at_a_hot_location():
    att = S.VarianceAttention(4)
    with torch.no_grad():
        att.embed.weight.copy_(torch.eye(4)[:, :, None, None])  # f = z
        z = torch.full((1, 4, 5, 6), 0.7)  # the same value in every channel: no variance anywhere
        out, a = att(z)
        torch.testing.assert_close(a, torch.full((1, 5, 6), 1 / 30))
        torch.testing.assert_close(out, z * torch.exp(a)[:, None])  # z <- z * exp(att)
        z[0, 0, 2, 3] = 5.0  # one location differs across channels
        _, a = att(z)
    assert a.sum().item() == pytest.approx(1.0)
    assert a[0].flatten().argmax().item() == 2 * 6 + 3


def test_att_stat_var_and_mad():
    """Eq. 8: variance (prose, default) or mean absolute deviation (as printed), over the D channels."""
    z = torch.tensor([0.0, 2.0, 4.0, 6.0])[None, :, None, None].expand(1, 4, 1, 2).clone()
    for stat, v in (("var", 5.0), ("mad", 2.0)):
        att = S.VarianceAttention(4, stat)
        with torch.no_grad():
            att.embed.weight.copy_(torch.eye(4)[:, :, None, None])
            z2 = z.clone()
            z2[0, :, 0, 1] = 0  # v = 0 there
            _, a = att(z2)
        expected = torch.softmax(torch.tensor([v, 0.0]), 0)
        torch.testing.assert_close(a[0, 0], expected)


# --- losses (choice 5) ----------------------------------------------------------------------------------------------
def test_gradient_loss_by_hand():
    """Eq. 6's gradient term on 3x3 images: mean | |g(target)| - |g(pred)| | over x and y forward differences."""
    target = torch.tensor([[0.0, 1.0, 3.0], [0.0, 0.0, 0.0], [2.0, 2.0, 2.0]])[None, None]
    pred = torch.zeros(1, 1, 3, 3)
    # |g_x(target)|: [1, 2], [0, 0], [0, 0] -> mean 0.5; |g_y(target)|: [0, 1, 3], [2, 2, 2] -> mean 10/6
    assert S.gradient_loss(pred, target).item() == pytest.approx(0.5 + 10 / 6)
    assert S.gradient_loss(-target, target).item() == 0.0  # |g| is taken before the subtraction


# --- the two alternate steps (choice 7) ----------------------------------------------------------------------------
def test_a_step_leaves_the_centres_and_b_step_leaves_the_autoencoders_bitwise():
    method = _method()
    ctx = _context(method)
    method.on_epoch_start(1, ctx)  # smoke: pretrain_epochs=0, so epoch 1 is an alternate epoch without init
    with torch.no_grad():
        method.model.centres.copy_(torch.rand_like(method.model.centres))
    method.model.train()
    batch = _batch(method.config, b=4)
    centres = method.model.centres.clone()
    out = method.training_step(batch)
    assert "cluster" in out
    ctx.optimizer.zero_grad(set_to_none=True)
    out["loss"].backward()
    ctx.optimizer.step()  # (a)
    assert torch.equal(method.model.centres, centres)
    ae = {k: v.clone() for k, v in method.model.state_dict().items() if k != "centres"}  # BN statistics included
    method.after_optimizer_step(out)  # (b)
    assert_same_tensors(ae, {k: v for k, v in method.model.state_dict().items() if k != "centres"})
    assert not torch.equal(method.model.centres, centres)
    assert method.model.training  # back in train mode


def test_scoring_never_changes_the_centres(random_layout, tmp_path):
    method = _method(epochs=1)
    engine.fit(method, random_layout, tmp_path / "run", device="cpu", progress=False)
    trained = engine.load_run(tmp_path / "run", "cpu")
    centres = trained.model.centres.clone()
    engine.infer(trained, random_layout, progress=False)
    assert torch.equal(trained.model.centres, centres)
    assert not trained.model.centres.requires_grad


# --- K-means init (choice 6) --------------------------------------------------------------------------------------
def test_kmeans_init_equals_sklearn_on_the_documented_sample(random_layout):
    from sklearn.cluster import KMeans

    method = _method(kmeans_clips=6, kmeans_samples=20, clusters=3, kmeans_n_init=2)
    dataset = method.train_dataset(load_layout(random_layout))
    method.init_centres(dataset, seed=4, epoch=2, device="cpu")
    gen = torch.Generator().manual_seed(4 * 1000 + 2)
    picks = torch.randperm(len(dataset), generator=gen)[:6].tolist()
    batch = torch.utils.data.default_collate([dataset[i] for i in picks])
    method.model.eval()
    with torch.no_grad():
        r = method.model.represent(*method._inputs(batch)[:2])
    pool = r.permute(0, 2, 3, 1).reshape(-1, r.shape[1])
    sample = pool[torch.randperm(len(pool), generator=gen)[:20]]
    expected = KMeans(3, init="k-means++", n_init=2, random_state=4).fit(sample.numpy()).cluster_centers_
    torch.testing.assert_close(method.model.centres, torch.as_tensor(expected, dtype=torch.float32))
    assert method.model.centres.min() >= -1e-6 and method.model.centres.max() <= 1  # in r-space


# --- schedule (choice 8) ------------------------------------------------------------------------------------------
def test_paper_schedule_per_stage():
    cfg = get_config("std", "paper")
    assert (cfg.pretrain_epochs, cfg.epochs, cfg.clusters, cfg.frames_in + 1, cfg.image_size) == (50, 150, 32, 5, 256)
    method = S.STD.__new__(S.STD)
    method.config = cfg
    assert [method.stage(e) for e in (0, 49, 50, 149)] == ["pretrain", "pretrain", "alternate", "alternate"]
    assert {method.learning_rates(e) for e in range(150)} == {(1e-4, 1e-5)}  # Ped2: "epoch 100" never comes
    import dataclasses

    method.config = dataclasses.replace(cfg, epochs=300, pretrain_epochs=100)  # Avenue / ShanghaiTech
    assert method.learning_rates(199) == (1e-4, 1e-5) and method.learning_rates(200) == (1e-5, 1e-5)


def test_optimiser_groups_and_lrs_after_each_stage(random_layout, tmp_path):
    kw = dict(pretrain_epochs=1, epochs=3, ae_lr_decay_epoch=1, lr=1e-3, lr_ae_late=2e-4, lr_centres=5e-4)
    for stop, lrs in ((1, [1e-3, 5e-4]), (2, [1e-3, 5e-4]), (3, [2e-4, 5e-4])):
        engine.fit(_method(**kw), random_layout, tmp_path / str(stop), device="cpu", progress=False, stop_after=stop)
        groups = checkpoint(tmp_path / str(stop))["optimizer"]["param_groups"]
        assert [g["name"] for g in groups] == ["autoencoders", "centres"]
        assert [g["lr"] for g in groups] == pytest.approx(lrs)


def test_pretraining_leaves_the_centres_alone_and_the_init_opens_the_alternate_stage(random_layout, tmp_path):
    method = _method(pretrain_epochs=1, epochs=2)
    engine.fit(method, random_layout, tmp_path / "a", device="cpu", progress=False, stop_after=1)
    state = checkpoint(tmp_path / "a")
    assert torch.equal(state["model"]["centres"], torch.zeros_like(state["model"]["centres"]))
    assert "cluster" not in state["history"][0]
    history = engine.fit(_method(pretrain_epochs=1, epochs=2), random_layout, tmp_path / "a", device="cpu",
                         progress=False, resume=True)
    assert "cluster" in history[1] and checkpoint(tmp_path / "a")["model"]["centres"].abs().sum() > 0


# --- resume at the stage boundaries (the issue) ----------------------------------------------------------------------
@pytest.mark.parametrize("stop", [1, 2])
def test_stopped_in_each_stage_resumes_bit_exactly(random_layout, tmp_path, stop):
    """pretrain (epoch 0), K-means init at the start of epoch 1, alternate (epochs 1, 2): a run stopped after the
    pretraining (the init then runs on resume: a kill during the init restarts from here) or inside the alternate
    stage ends with the same weights, centres and Adam state as one that never stopped."""
    kw = dict(pretrain_epochs=1, epochs=3)
    engine.fit(_method(**kw), random_layout, tmp_path / "full", seed=2, device="cpu", progress=False)
    engine.fit(_method(**kw), random_layout, tmp_path / "part", seed=2, device="cpu", progress=False,
               stop_after=stop)
    engine.fit(_method(**kw), random_layout, tmp_path / "part", seed=2, device="cpu", progress=False, resume=True)
    a, b = checkpoint(tmp_path / "full"), checkpoint(tmp_path / "part")
    assert_same_tensors(a["model"], b["model"])
    for (ka, va), (kb, vb) in zip(a["optimizer"]["state"].items(), b["optimizer"]["state"].items()):
        assert ka == kb
        assert_same_tensors(va, vb)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_a_signal_inside_the_first_alternate_epoch_resumes_bit_exactly(random_layout, tmp_path):
    """SIGTERM after the 2nd step of epoch 1 (the epoch the K-means init opens): the resume replays the epoch's start
    (the init runs again, then the checkpoint's centres are restored) and ends as a run that never stopped."""
    import signal

    from vadlab.errors import Interrupted

    kw = dict(pretrain_epochs=1, epochs=3)
    engine.fit(_method(**kw), random_layout, tmp_path / "full", seed=2, device="cpu", progress=False)
    method = _method(**kw)
    step, calls = method.training_step, []

    def stop_at_step(batch):
        calls.append(1)
        if len(calls) == n_steps + 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(batch)

    n_steps = len(method.train_dataset(load_layout(random_layout))) // method.config.batch_size
    method.training_step = stop_at_step
    with pytest.raises(Interrupted):
        engine.fit(method, random_layout, tmp_path / "part", seed=2, device="cpu", progress=False)
    assert checkpoint(tmp_path / "part")["position"]["batches_done"] == 2
    engine.fit(_method(**kw), random_layout, tmp_path / "part", seed=2, device="cpu", progress=False, resume=True)
    assert_same_tensors(checkpoint(tmp_path / "full")["model"], checkpoint(tmp_path / "part")["model"])


# --- score (choice 9) --------------------------------------------------------------------------------------------
def test_distance_map_is_nearest_upsampled_and_s_is_the_reciprocal_mean():
    d = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (1, 2, 2)
    e = torch.rand(1, 16, 16)
    d_u = d.repeat_interleave(8, 1).repeat_interleave(8, 2)  # 8x8 constant blocks
    assert S.regularity(e, d).item() == pytest.approx(1 / (d_u * e).mean().item(), rel=1e-6)
    assert S.regularity(e, None).item() == pytest.approx(1 / e.mean().item(), rel=1e-6)


def test_the_anomaly_score_is_one_minus_minmax_of_the_reciprocal_per_video():
    """Eq. 13-14 on a hand toy of 2 videos: pooled AUC of 1 - minmax(s) per video is 0.3125, where min-max of the
    product D_u e (no reciprocal) would give 0.25; the method's signal fused by the engine gives the former."""
    products = {"a": [4.0, 2.0, 3.0], "b": [1.0, 5.0, 3.0]}
    labels = {"a": np.array([0, 1, 0]), "b": np.array([0, 0, 1])}
    signals = {"neg_regularity": {}}
    for v, p in products.items():
        e = torch.tensor(p)[:, None, None].expand(3, 8, 8)  # D = 1 everywhere: the product is p
        signals["neg_regularity"][v] = (-S.regularity(e, torch.ones(3, 1, 1))).double().numpy()
    report = evaluate(signals, {"neg_regularity": 1.0}, labels)
    assert report["micro_auc"] == pytest.approx(0.3125)
    product_minmax = {v: (np.array(p) - min(p)) / (max(p) - min(p)) for v, p in products.items()}
    assert frame_auc(product_minmax, labels) == pytest.approx(0.25)


# --- labels aligned with the predicted frame (choice 11) ------------------------------------------------------------
class _LastFrameProbe(S.STD):
    """A fake STD whose score of a clip is the grey level of the frame it predicts (x_lif)."""

    def score_batch(self, batch):
        _, _, x_lif = S.split_clip(batch)
        return {"neg_regularity": x_lif.flatten(1).mean(1)}


def test_scores_land_on_the_predicted_frame_and_the_public_shift_would_fail(tmp_path):
    """Frames whose grey level is their label: AUC 1 only when the clip ending at frame t is paired with label t over
    frames frames_in..N-1. The public code pairs it with label t + 1 and never scores frame N-1: that gives < 1."""
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1])
    frames = np.stack([np.full((16, 16), 200 if y else 20, np.uint8) for y in labels])
    with LayoutWriter(tmp_path / "d") as w:
        w.add_frames("training", "train00", frames)
        w.add_frames("testing", "test00", frames, labels=labels.astype(np.uint8))
    probe = _LastFrameProbe(get_config("std", "smoke", frames_in=4, image_size=16))
    signals = engine.infer(probe, tmp_path / "d", progress=False)
    s = signals["neg_regularity"]["test00"]
    assert np.isnan(s[:4]).all() and np.isfinite(s[4:]).all()  # frames 4..N-1 scored, the last one too
    assert evaluate(signals, {"neg_regularity": 1.0}, {"test00": labels})["micro_auc"] == 1
    public = {"test00": s[4:-1]}, {"test00": labels[5:]}  # clip ending at t scored against label t + 1
    assert frame_auc(*public) < 1


# --- ablations (choice 10, Table 2 / 3) -----------------------------------------------------------------------------
def test_table2_rows_map_to_flag_sets_and_streams_build_only_their_parameters():
    rows = {name: create_method("std", "smoke", ablations=[name]).config for name in S.STD.ablations
            if name.startswith("t2_")}
    flags = {name: (c.streams, c.attention, c.use_kmeans) for name, c in rows.items()}
    assert flags == {"t2_app": ("appearance", False, False), "t2_mot": ("motion", False, False),
                     "t2_both": ("both", False, False), "t2_both_att": ("both", True, False),
                     "t2_both_km": ("both", False, True)}
    assert set(S.STD.TABLE2) == {n for n in S.STD.ablations if n.startswith("t2_")} | {"full"}
    app = create_method("std", "smoke", ablations=["t2_app"])
    assert app.model.motion is None and not any("motion" in n for n, _ in app.model.named_parameters())
    mot = create_method("std", "smoke", ablations=["t2_mot"])
    assert mot.model.spatial is None and mot.model.motion.attention is None
    assert "cluster" not in app.fusion_weights() and "cluster" in create_method("std", "smoke").fusion_weights()
    assert create_method("std", "smoke", clusters=8).model.centres.shape[0] == 8  # Table 3: --set clusters=K


def test_scores_of_the_one_stream_rows():
    """Motion only: xbar_lif = x_fif (real) + xbar_diff; appearance only: frame t reconstructed; no K-means: no D."""
    for name in ("t2_app", "t2_mot"):
        method = create_method("std", "smoke", ablations=[name])
        method.model.eval()
        batch = _batch(method.config)
        x_fif, _, x_lif = S.split_clip(batch)
        out = method.inspect(batch)
        if name == "t2_mot":
            torch.testing.assert_close(out["output"], x_fif + out["diff"])
        else:
            torch.testing.assert_close(out["output"], out["recon"])
        signals = method.score_batch(batch)
        err = (x_lif - out["output"]).square().sum(1).flatten(1).mean(1)
        torch.testing.assert_close(signals["neg_regularity"], -1 / err)


def test_score_frame_real_is_a_test_time_diagnostic_without_the_reconstruction():
    method = create_method("std", "smoke", score_frame="real")
    method.model.eval()
    batch = _batch(method.config)
    x_fif, _, _ = S.split_clip(batch)
    out = method.inspect(batch)
    torch.testing.assert_close(out["output"], x_fif + out["diff"])


# --- config rules ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("overrides", "message"), [
    (dict(pretrain_epochs=2, epochs=2), "never starts"),
    (dict(widths=(4, 6, 8)), "divisible by 4"),
    (dict(image_size=20), "multiple of 8"),
    (dict(predict=False), "predict"),
    (dict(cosine_schedule=True), "stages"),
    (dict(kmeans_samples=2), "kmeans_samples"),
    (dict(cluster_reduction="max"), "cluster_reduction"),
    (dict(lambda_r_rule="auto"), "lambda_r_rule"),
    (dict(cluster_fraction=0.0), "cluster_fraction"),
    (dict(motion_weighting="flow"), "motion_weighting"),
    (dict(zero_motion_tolerance=1.5), "zero_motion_tolerance"),
    (dict(att_temperature=0.0), "att_temperature"),
])
def test_bad_configs_are_refused_with_a_value_that_works(overrides, message):
    with pytest.raises(ConfigError, match=message):
        get_config("std", "smoke", **overrides)


def test_per_type_signal_auc_on_synthetic(tiny_synthetic, tmp_path):
    engine.fit(_method(epochs=1), tiny_synthetic, tmp_path / "run", device="cpu", progress=False)
    report = engine.evaluate_run(tmp_path / "run", tiny_synthetic, device="cpu", progress=False)
    per_type = per_type_signal_auc(tmp_path / "run", tiny_synthetic)
    assert {"neg_regularity", "app_error", "mot_error", "cluster", "score"} <= set(per_type)
    assert per_type["score"] == pytest.approx(report["per_type_auc"])  # the fused score: the engine's own numbers
    assert all(0 <= a <= 1 for per in per_type.values() for a in per.values())


# --- torchrun --------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_torchrun_two_processes_through_every_stage(tmp_path):
    """Two gloo processes through pretraining, the K-means init and alternate steps: the per-epoch in-step check
    (weights and centres equal on both ranks) passes, and the centres were initialised and trained."""
    data = write_random_layout(tmp_path / "data", n_train=3, frames=20, size=(32, 32))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vadlab.cli", "train", "std", "--data", str(data), "--out", str(run), "--preset", "smoke",
           "--epochs", "3", "--set", "pretrain_epochs=1", "--seed", "1", "--device", "cpu", "--quiet"]
    proc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 3 and json.loads((run / "run.json").read_text())["processes"] == 2
    assert state["model"]["centres"].abs().sum() > 0 and "cluster" in state["history"][-1]


# --- figure -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ablation", [None, "t2_app", "t2_mot"])
def test_clip_figure_shows_the_panels_of_each_variant(tmp_path, ablation):
    from vadlab import viz

    method = create_method("std", "smoke", ablations=[ablation] if ablation else [])
    method.model.eval()
    batch = _batch(method.config, b=1)
    fig = viz.plot_std_clip(batch, method.inspect(batch), title="t", path=tmp_path / "clip.png")
    titles = {ax.get_title() for ax in fig.axes if ax.get_title()}
    assert ("reconstruction of x_fif" in titles) == (ablation != "t2_mot")
    assert ("predicted difference" in titles) == (ablation != "t2_app")
    assert ("attention, block 3" in titles) == (ablation is None)
    assert ("cluster distance D (Eq. 10)" in titles) == (ablation is None)
    assert (tmp_path / "clip.png").read_bytes()[:4] == b"\x89PNG"


# --- Eq. 11-12's balance, the zero-motion answer, the attention temperature (choices 3, 5, 12; issue 21) --------------
def test_mean_reduction_keeps_the_balance_when_the_map_doubles_and_sum_doubles_it():
    """Choice 5: the same content on a map with twice the locations: `mean` gives the same L_cluster (so lambda_r
    keeps the same balance against the per-pixel means L_a + L_m), `sum` (Eq. 11 as printed) twice as much."""
    from vadlab import memory

    g = torch.Generator().manual_seed(0)
    r = torch.nn.functional.normalize(torch.rand(2, 6, 4, 4, generator=g), dim=1)  # (B, D, h, w)
    wide = torch.cat([r, r], dim=3)  # (B, D, h, 2w): the map doubled
    centres = torch.rand(5, 6, generator=g)
    loss = {red: [memory.cluster_loss(x, centres, 25.0, red) for x in (r, wide)] for red in ("sum", "mean")}
    torch.testing.assert_close(loss["mean"][1], loss["mean"][0])
    torch.testing.assert_close(loss["sum"][1], 2 * loss["sum"][0])
    torch.testing.assert_close(loss["sum"][0], 16 * loss["mean"][0])
    with pytest.raises(ValueError, match="reduction"):
        memory.cluster_loss(r, centres, 25.0, "max")


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_the_fraction_rule_sets_lambda_r_once_from_the_first_alternate_steps(reduction):
    """Choice 5: lambda_r * L_cluster = cluster_fraction * (L_a + L_m), means over the first lambda_r_batches (a)
    steps, whatever the reduction; then frozen, and kept in the model's state (so in the checkpoint)."""
    method = _method(lambda_r_rule="fraction", cluster_fraction=0.25, cluster_reduction=reduction,
                     lambda_r_batches=2)
    method._stage = "alternate"
    with torch.no_grad():
        method.model.centres.copy_(torch.rand_like(method.model.centres))
    outs = [method.training_step(_batch(method.config, b=4, seed=i)) for i in range(3)]
    recon = [float(o["l_a"] + o["l_m_l2"] + o["l_m_grad"]) for o in outs[:2]]
    cluster = [float(o["cluster"]) for o in outs[:2]]
    lam = float(method.model.lambda_r)
    assert lam == pytest.approx(0.25 * sum(recon) / sum(cluster), rel=1e-5)
    assert float(outs[0]["lambda_r"]) == pytest.approx(0.25 * recon[0] / cluster[0], rel=1e-5)
    assert float(outs[2]["lambda_r"]) == pytest.approx(lam)  # frozen after 2 steps
    assert float(method.model.state_dict()["lambda_r"]) == lam
    out = outs[2]
    assert float(out["w_cluster"]) == pytest.approx(lam * float(out["cluster"]), rel=1e-5)
    assert float(out["loss"]) == pytest.approx(float(out["w_app"] + out["w_mot"] + out["w_cluster"]), rel=1e-5)


def test_fixed_lambda_r_is_the_configured_weight():
    method = _method(lambda_r=0.3)
    method._stage = "alternate"
    with torch.no_grad():
        method.model.centres.copy_(torch.rand_like(method.model.centres))
    out = method.training_step(_batch(method.config, b=4))
    assert float(out["w_cluster"]) == pytest.approx(0.3 * float(out["cluster"].detach()), rel=1e-6)


def _zero_motion_fixture(random_layout):
    method = _method(kmeans_clips=6, kmeans_samples=20, clusters=3, kmeans_n_init=1, pretrain_epochs=1)
    return method, method.train_dataset(load_layout(random_layout))


def test_the_zero_motion_detector_fires_on_a_motion_autoencoder_that_predicts_no_difference(random_layout):
    """Choice 12: a constructed run whose motion decoder outputs 0 (the zero answer): warned, flagged, and the flag
    reaches metrics.json through test_statistics."""
    from vadlab.errors import VadlabWarning

    method, dataset = _zero_motion_fixture(random_layout)
    with torch.no_grad():
        method.model.motion.head.weight.zero_()
        method.model.motion.head.bias.zero_()
    with pytest.warns(VadlabWarning, match="zero answer"):
        method.init_centres(dataset, seed=0, epoch=1, device=torch.device("cpu"))
    assert method.boundary["motion_ratio"] == pytest.approx(1.0)
    assert method.test_statistics()["zero_motion"] is True


def test_the_zero_motion_detector_stays_silent_on_a_trained_motion_autoencoder(random_layout):
    """Choice 12: the motion AE trained (on the clips the check samples) until it predicts the difference: no
    warning, the flag False."""
    import warnings

    method, dataset = _zero_motion_fixture(random_layout)
    clips = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    opt = torch.optim.Adam(method.model.motion.parameters(), lr=3e-3)
    x_fif, x_clips, x_lif = S.split_clip(clips)
    for _ in range(150):
        opt.zero_grad()
        S.F.mse_loss(method.model.motion.decode(*method.model.motion.encode(x_clips)[:2]), x_lif - x_fif).backward()
        opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        method.init_centres(dataset, seed=0, epoch=1, device=torch.device("cpu"))
    assert method.boundary["motion_ratio"] < 1 - method.config.zero_motion_tolerance
    assert method.test_statistics()["zero_motion"] is False


def test_zero_motion_rule_and_an_unmeasured_run():
    assert S.zero_motion(1.04, 0.05) and S.zero_motion(0.96, 0.05)
    assert not S.zero_motion(0.90, 0.05) and not S.zero_motion(1.2, 0.05)
    stats = _method().test_statistics()
    assert stats["motion_ratio"] is None and stats["zero_motion"] is None


def test_moving_weights_balance_moving_and_still_pixels_and_the_weighted_loss():
    """Choice 12, motion_weighting="moving": pixels above the batch's RMS of x_diff carry half the weight."""
    x_diff = torch.zeros(1, 1, 8, 8)
    x_diff[..., 2:4, 2:4] = 0.5  # 4 moving pixels of 64
    w = S.moving_weights(x_diff)
    assert w.mean().item() == pytest.approx(1.0)
    assert w[x_diff > 0].sum().item() == pytest.approx(w[x_diff == 0].sum().item())
    assert torch.equal(S.moving_weights(torch.zeros(1, 1, 4, 4)), torch.ones(1, 1, 4, 4))
    l2, grad = S.motion_loss(torch.zeros_like(x_diff), x_diff, w)
    assert l2.item() == pytest.approx((w * x_diff.square()).mean().item())
    plain = S.motion_loss(torch.zeros_like(x_diff), x_diff)
    assert l2 > plain[0] and grad > plain[1]  # the zero answer costs more once moving pixels weigh more
    ones = S.motion_loss(torch.zeros_like(x_diff), x_diff, torch.ones_like(x_diff))
    torch.testing.assert_close(torch.stack(ones), torch.stack(plain))


def test_attention_temperature_sharpens_att_and_one_is_the_paper():
    g = torch.Generator().manual_seed(0)
    z = torch.rand(2, 8, 6, 6, generator=g)
    att = {}
    for t in (1.0, 0.01):
        torch.manual_seed(0)
        module = S.VarianceAttention(8, "var", t)
        att[t] = module(z)[1]
        torch.testing.assert_close(att[t].sum(dim=(1, 2)), torch.ones(2))
    assert (att[0.01].amax(dim=(1, 2)) > att[1.0].amax(dim=(1, 2))).all()
    torch.manual_seed(0)
    torch.testing.assert_close(S.VarianceAttention(8, "var")(z)[1], att[1.0])


def test_every_weighted_term_and_the_boundary_reach_the_history_and_metrics(random_layout, tmp_path):
    # lambda_r_batches=1: lambda_r is set at the first alternate step and frozen, so the epoch's mean in the history
    # is the value the run keeps (with more batches the epoch mean also holds the running estimates before it froze)
    method = _method(epochs=2, pretrain_epochs=1, lambda_r_rule="fraction", lambda_r_batches=1)
    history = engine.fit(method, random_layout, tmp_path / "run", device="cpu", progress=False)
    assert {"w_app", "w_mot", "x_diff_sq"} <= set(history[0]) and "w_cluster" not in history[0]
    assert {"w_app", "w_mot", "w_cluster", "lambda_r"} <= set(history[1])
    report = engine.evaluate_run(tmp_path / "run", random_layout, device="cpu", progress=False)
    assert report["lambda_r"] == pytest.approx(history[1]["lambda_r"])
    assert report["motion_ratio"] > 0 and isinstance(report["zero_motion"], bool)


def test_the_faithful_balance_and_eq6_are_one_ablation_away():
    """Issue 21: `fixed_lambda_r` is Eq. 11's printed sum with the public lambda_r = 0.1; `plain_motion_loss` is Eq. 6
    as printed; the paper preset keeps the printed sum and sets lambda_r by the rule (module choice 5)."""
    paper = get_config("std", "paper")
    assert (paper.cluster_reduction, paper.lambda_r_rule, paper.cluster_fraction) == ("sum", "fraction", 0.1)
    fixed = create_method("std", "paper", ablations=["fixed_lambda_r", "plain_motion_loss"]).config
    assert (fixed.cluster_reduction, fixed.lambda_r_rule, fixed.lambda_r, fixed.motion_weighting) == \
        ("sum", "fixed", 0.1, "none")
