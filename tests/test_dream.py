"""DREAM (vadlab/models/dream.py): the paper's pieces (Sec. III, IV-B) and every choice of the module docstring.

Numbers of the memory ops (Eq. 1-4, 5, 7-8, 10-11) are pinned in tests/test_memory.py; here the model wires them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import write_random_layout

from vadlab import engine, memory
from vadlab.analysis.dream import (
    diagnostics,
    memory_distance_ratio,
    r_statistics,
    r_table,
    table_iii,
    train_table_iii,
)
from vadlab.data.clips import ClipSpec
from vadlab.data.layout import load_layout
from vadlab.data.sampling import PureClipDataset, clip_labels, mixed_batches
from vadlab.errors import ConfigError, DataError
from vadlab.models.dream import triplet_indices
from vadlab.registry import create_method


def _batch(b=4, size=32, labels=(0, 0, 0, 1), seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"input": torch.rand(b, 4, 1, size, size, generator=g) * 2 - 1,
            "target": torch.rand(b, 1, size, size, generator=g) * 2 - 1, "label": torch.tensor(labels)}


def _count(method) -> int:
    return sum(p.numel() for p in method.model.parameters())


def test_paper_preset_parameters_against_mnad_p_and_table_iii_rows():
    """Table I: DREAM-UNet - Mem-Guided = 16.83 M - 15.65 M = 1,180,160 with the same U-Net blocks; UNet+Mem (Table
    III) is MNAD-P's network exactly."""
    dream, mnad = create_method("dream", "paper"), create_method("mnad_pred", "paper")
    assert _count(dream) - _count(mnad) == 1_180_160
    assert (_count(dream), _count(mnad)) == (16_827_203, 15_647_043)  # Table I: 16.83 M and 15.65 M
    assert _count(create_method("dream", "paper", ablations=["unet_mem"])) == _count(mnad)
    assert dream.config.feature_dim * 2 == mnad.config.feature_dim  # C halved per memory (Sec. III-B)
    assert dream.model.normality.shape == dream.model.abnormality.shape == (10, 256)


def test_memories_are_buffers_and_not_in_the_optimiser():
    method = create_method("dream", "smoke")
    names = dict(method.model.named_buffers())
    assert {"normality", "abnormality"} <= set(names)
    optimizer, _ = method.configure_optimizers()
    params = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert params == {id(p) for p in method.model.parameters()}  # heads and discriminators included
    assert not any(id(names[k]) in params for k in ("normality", "abnormality"))


@pytest.mark.slow
def test_one_paper_preset_training_step_on_cpu_has_the_papers_shapes():
    """Sec. III-B/IV-B shapes at 256x256 RGB, batch 4 (3 normal + 1 abnormal): queries (4, 1024, 256) of unit norm,
    Q_hat (4, 512, 32, 32) per branch, generator input (., 1024, 32, 32), prediction of the normal clips only."""
    method = create_method("dream", "paper")
    net = method.model.train()
    batch = {"input": torch.rand(4, 4, 3, 256, 256) * 2 - 1, "target": torch.rand(4, 3, 256, 256) * 2 - 1,
             "label": torch.tensor([0, 0, 1, 0])}
    seen = []
    net.decoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    out = net(batch["input"], batch["label"] == 0, True)
    for branch in ("normal", "abnormal"):
        br = out["branches"][branch]
        assert br["queries"].shape == (4, 1024, 256) and br["weights"].shape == (4, 1024, 10)
        assert br["q_hat"].shape == (4, 512, 32, 32)
        torch.testing.assert_close(br["queries"].norm(dim=-1), torch.ones(4, 1024))
        assert out["features"][branch].shape == (4, 256)
    assert seen == [(3, 1024, 32, 32)] and out["output"].shape == (3, 3, 256, 256)
    optimizer, _ = method.configure_optimizers()
    losses = method.training_step(batch)
    optimizer.zero_grad()
    losses["loss"].backward()
    optimizer.step()
    assert torch.isfinite(losses["loss"])


def test_query_maps_are_unit_vectors_and_q_hat_is_read_then_query():
    method = create_method("dream", "smoke")
    net = method.model.eval()
    out = net(_batch()["input"])
    for branch in ("normal", "abnormal"):
        br = out["branches"][branch]
        b, k, c = br["queries"].shape
        torch.testing.assert_close(br["queries"].norm(dim=-1), torch.ones(b, k))
        read, _ = memory.read(br["queries"], net.items(branch))  # Eq. 1-2
        h, w = br["q_hat"].shape[-2:]
        q_hat = br["q_hat"].flatten(2).transpose(1, 2)  # (B, K, 2C)
        torch.testing.assert_close(q_hat[..., :c], read)  # Eq. 2: [read, q]
        torch.testing.assert_close(q_hat[..., c:], br["queries"])


def test_the_generator_decodes_both_branches_and_only_normal_clips_in_training():
    method = create_method("dream", "smoke")
    seen = []
    method.model.decoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    method.training_step(_batch(labels=(0, 1, 0, 1)))
    c = method.config.feature_dim
    assert seen == [(2, 4 * c, 4, 4)]  # 2 normal clips, [Q_hat^N, Q_hat^A] = 2(C + C) channels


def test_reconstruction_loss_ignores_the_abnormal_samples_targets():
    """Eq. 6 on normal samples only: the loss and its gradient do not depend on the abnormal clips' targets."""
    method = create_method("dream", "smoke")
    grads = []
    for noise in (0.0, 5.0):
        batch = _batch()
        batch["target"][3] += noise  # the abnormal clip's target
        method.model.zero_grad()
        losses = method.training_step(batch)
        losses["rec"].backward()
        grads.append((float(losses["rec"].detach()), method.model.decoder.head.weight.grad.clone()))
    assert grads[0][0] == grads[1][0] and torch.equal(grads[0][1], grads[1][1])


def test_loss_form_paper_sums_pixels_and_queries_mean_averages_them():
    batch = _batch()
    paper = create_method("dream", "smoke", loss_form="paper")
    mean = create_method("dream", "smoke", loss_form="mean")
    mean.model.load_state_dict(paper.model.state_dict())
    lp, lm = paper.training_step(batch), mean.training_step(batch)
    pixels, k = 32 * 32, 16
    torch.testing.assert_close(lp["rec"], lm["rec"] * pixels)
    torch.testing.assert_close(lp["compact_normal"], lm["compact_normal"] * k)
    torch.testing.assert_close(lp["triplet_normal"], lm["triplet_normal"])  # Eq. 5 is per sample in both


def test_memory_losses_are_squared_and_routed_by_default():
    """Eq. 7-8 with squared distances; "routed": L^N on normal samples, L^A on abnormal samples; "all": every one."""
    batch = _batch(labels=(0, 0, 1, 1))
    routed = create_method("dream", "smoke", loss_form="mean")
    every = create_method("dream", "smoke", loss_form="mean", memory_loss_samples="all")
    every.model.load_state_dict(routed.model.state_dict())
    lr, la = routed.training_step(batch), every.training_step(batch)
    branches = routed.model(batch["input"], batch["label"] == 0)["branches"]  # train mode: the step's queries
    qn, qa = branches["normal"]["queries"], branches["abnormal"]["queries"]
    pn, pa = routed.model.normality, routed.model.abnormality
    torch.testing.assert_close(lr["compact_normal"], memory.compactness_loss(qn[:2], pn, squared=True))
    torch.testing.assert_close(lr["compact_abnormal"], memory.compactness_loss(qa[2:], pa, squared=True))
    torch.testing.assert_close(la["compact_normal"], memory.compactness_loss(qn, pn, squared=True))
    torch.testing.assert_close(lr["separate_abnormal"],
                               memory.separateness_loss(qa[2:], pa, 1.0, squared=True))


def test_triplets_anchor_and_positive_are_normal_and_different_negative_abnormal():
    labels = torch.tensor([0, 1, 0, 0, 1, 0])
    a, p, n = triplet_indices(labels)
    assert a.tolist() == [0, 2, 3, 5] and (a != p).all()
    assert (labels[p] == 0).all() and (labels[n] == 1).all()
    assert len(triplet_indices(torch.tensor([0, 0, 0]))[0]) == 0  # no negative: no triplet
    method = create_method("dream", "smoke")
    losses = method.training_step(_batch())
    for branch in ("normal", "abnormal"):  # Eq. 5 on both branches (Fig. 4)
        assert float(losses[f"triplet_{branch}"]) > 0


def test_updates_route_normal_queries_to_p_n_and_abnormal_ones_to_p_a_without_eq_5():
    method = create_method("dream", "smoke")
    net = method.model
    before = {k: getattr(net, k).clone() for k in ("normality", "abnormality")}
    out = method.training_step(_batch(labels=(1, 1, 1, 1)))  # abnormal only
    method.after_optimizer_step(out)
    assert torch.equal(net.normality, before["normality"])
    assert not torch.equal(net.abnormality, before["abnormality"])
    expected = memory.update(out["_queries_abnormal"], before["abnormality"], max_renorm=False)  # Eq. 4
    torch.testing.assert_close(net.abnormality, expected)
    before_a = net.abnormality.clone()
    out = method.training_step(_batch(labels=(0, 0, 0, 0)))  # normal only
    method.after_optimizer_step(out)
    assert torch.equal(net.abnormality, before_a)
    assert not torch.equal(net.normality, before["normality"])


def test_the_single_memory_of_unet_mem_disc_takes_both_kinds():
    method = create_method("dream", "smoke", ablations=["unet_mem_disc"])
    net = method.model
    assert not hasattr(net, "normality") and net.memory.shape[1] == 2 * method.config.feature_dim  # 2C (Sec. IV-D)
    before = net.memory.clone()
    out = method.training_step(_batch(labels=(1, 1, 1, 1)))
    method.after_optimizer_step(out)
    assert not torch.equal(net.memory, before)


def test_score_uses_psnr_and_the_squared_normality_distance_only():
    """Eq. 10-12: S = 0.6 (1 - g(P)) + 0.4 g(D), D on P^N with squared distances; P^A plays no part."""
    method = create_method("dream", "smoke")
    assert method.fusion_weights() == {"neg_psnr": 0.6, "distance": 0.4}
    batch = _batch()
    method.model.eval()
    first = method.score_batch(batch)
    qn = method.model(batch["input"])["branches"]["normal"]["queries"]
    torch.testing.assert_close(first["distance"], memory.feature_distance(qn, method.model.normality, squared=True))
    method.model.abnormality.copy_(torch.nn.functional.normalize(torch.randn_like(method.model.abnormality), dim=1))
    assert torch.equal(method.score_batch(batch)["distance"], first["distance"])
    assert create_method("dream", "smoke", ablations=["unet_disc"]).fusion_weights() == {"neg_psnr": 1.0}


def test_eq_13_18_distance_ratio_numbers():
    """Checklist 7: U = {(1, 0), (0.6, 0.8)}, M^N = {e1, e2}, M^A = {(-1, 0)}."""
    u = torch.tensor([[[1.0, 0.0], [0.6, 0.8]]])
    mn, ma = torch.eye(2), torch.tensor([[-1.0, 0.0]])
    own, other = memory_distance_ratio(u, mn, ma)
    assert float(own) == pytest.approx(0.3162, abs=1e-4) and float(other) == pytest.approx(1.8944, abs=1e-4)
    own, other = memory_distance_ratio(u, mn, ma, reduce="max")  # 001's "sup"
    assert float(own) == pytest.approx(0.6325, abs=1e-4) and float(other) == pytest.approx(2.0, abs=1e-4)


def test_clip_labels_need_every_frame_and_mixed_clips_are_dropped(random_layout):
    spec = ClipSpec(4, True)
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    assert clip_labels(labels, spec, 4) == 0 and clip_labels(labels, spec, 5) == -1
    assert clip_labels(labels, spec, 8) == -1 and clip_labels(labels, spec, 9) == 1
    layout = load_layout(random_layout)
    data = PureClipDataset(layout.testing, spec, 16)  # 12 frames, second half anomalous
    assert data.mixed_dropped == 2 * 4 and sorted(set(data.clip_label.tolist())) == [0, 1]
    assert all(data[i]["label"] == data.clip_label[i] for i in range(len(data)))


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_mixed_batches_hold_both_kinds_on_every_rank(world_size):
    labels = np.array([0] * 50 + [1] * 4)
    per_rank = [mixed_batches(labels, batch_size=5, abnormal_per_batch=1, epoch=2, seed=3, rank=r,
                              world_size=world_size) for r in range(world_size)]
    assert len({len(b) for b in per_rank}) == 1  # same step count on every rank
    normals = []
    for batches in per_rank:
        for batch in batches:
            kinds = labels[batch]
            assert len(batch) == 5 and (kinds == 0).sum() >= 2 and (kinds == 1).sum() == 1
            normals += [i for i in batch if labels[i] == 0]
    assert len(normals) == len(set(normals))  # each normal clip at most once per epoch, ranks disjoint
    again = mixed_batches(labels, batch_size=5, abnormal_per_batch=1, epoch=2, seed=3, rank=0, world_size=world_size)
    assert again == per_rank[0]
    with pytest.raises(ConfigError, match="batch_size=2"):
        mixed_batches(labels, batch_size=2, abnormal_per_batch=1, epoch=0, seed=0)
    with pytest.raises(DataError, match="no abnormal"):
        mixed_batches(np.zeros(10), batch_size=4, abnormal_per_batch=1, epoch=0, seed=0)


def test_config_rules_and_a_dataset_without_anomalies(tmp_path):
    with pytest.raises(ConfigError, match="batch_size=2"):
        create_method("dream", "smoke", batch_size=2)
    with pytest.raises(ConfigError, match="widths"):
        create_method("dream", "smoke", widths=(8, 16))
    with pytest.raises(ConfigError, match="image_size=36"):
        create_method("dream", "smoke", image_size=36)
    data = write_random_layout(tmp_path / "d", n_abnormal=0)
    with pytest.raises(DataError, match="abnormal/"):
        engine.fit(create_method("dream", "smoke"), data, tmp_path / "run", device="cpu", progress=False)
    # UNet+Mem (Mem-Guided*) trains on the normal videos alone
    engine.fit(create_method("dream", "smoke", ablations=["unet_mem"]), data, tmp_path / "mem", device="cpu",
               progress=False)


def test_training_moves_heads_and_discriminators_and_scoring_leaves_memories_alone(random_layout, tmp_path):
    run = tmp_path / "run"
    method = create_method("dream", "smoke", epochs=1)
    engine.set_seed(0)
    init = method.build_model().state_dict()
    engine.fit(method, random_layout, run, seed=0, device="cpu", progress=False)
    trained = engine.load_run(run, "cpu")
    state = {k: v.clone() for k, v in trained.model.state_dict().items()}
    for key in ("heads.normal.body.1.weight", "heads.abnormal.body.1.weight", "discriminators.normal.conv.weight",
                "discriminators.abnormal.conv.weight"):
        assert not torch.equal(state[key], init[key]), key
    engine.infer(trained, random_layout, progress=False)  # no test-time update (Sec. III-B)
    for key in ("normality", "abnormality"):
        assert torch.equal(trained.model.state_dict()[key], state[key])
    stats = r_statistics(trained, load_layout(random_layout).testing)
    assert stats["r_normal"] * stats["r_normal_inverse"] == pytest.approx(1.0)
    assert stats["normal_clips"] > 0 and stats["abnormal_clips"] > 0


def test_convlstm_variant_shares_the_heads_memories_and_losses():
    method = create_method("dream_convlstm", "smoke")
    assert method.config.backbone == "convlstm"
    out = method.training_step(_batch())
    assert out["_queries_normal"].shape == (4, 16, method.config.feature_dim)  # 32x32 frames: 4x4 queries
    assert {"triplet_normal", "triplet_abnormal", "compact_normal", "compact_abnormal"} <= set(out)
    paper = create_method("dream_convlstm", "paper")
    assert paper.model.normality.shape == (10, 256)


@pytest.mark.slow
def test_torchrun_with_two_processes_trains_dream(tmp_path):
    data = write_random_layout(tmp_path / "data", n_train=3, n_abnormal=2, frames=20, size=(32, 32))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vadlab.cli", "train", "dream", "--data", str(data), "--out", str(run), "--preset", "smoke",
           "--epochs", "2", "--seed", "1", "--device", "cpu", "--quiet"]
    proc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((run / "run.json").read_text())
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert info["processes"] == 2 and state["epoch"] == 2
    for key in ("normality", "abnormality"):
        torch.testing.assert_close(state["model"][key].norm(dim=1), torch.ones(4))


def test_diagnostics_measure_the_triplets_usage_and_drift_from_the_seeded_init(random_layout):
    method = create_method("dream", "smoke")
    engine.set_seed(3)
    method.model = method.build_model()  # built under seed 3, as engine.fit builds it
    layout = load_layout(random_layout)
    diag = diagnostics(method, layout, seed=3)
    assert diag["item_drift_normality"] == pytest.approx([0.0] * 4, abs=1e-6)  # untrained: the init itself
    assert 0 <= diag["triplet_active_normal"] <= 1 and diag["d_pos_abnormal"] >= 0
    assert sum(diag["item_usage_abnormality"]) == pytest.approx(1.0) and 0 < diag["anomaly_area"] < 1


def test_table_iii_rows_train_evaluate_and_are_read_back(random_layout, tmp_path):
    rows = {"UNet+Disc": "unet_disc", "DREAM": None}
    reports = train_table_iii(random_layout, tmp_path, preset="smoke", device="cpu", rows=rows)
    assert (tmp_path / "unet_disc" / "metrics.json").exists() and (tmp_path / "dream" / "metrics.json").exists()
    table = table_iii(reports)["micro_auc"]
    assert set(table) == {"UNet+Disc", "DREAM", "frame_difference"}
    assert train_table_iii(random_layout, tmp_path, preset="smoke", device="cpu", rows=rows) == reports  # read back
    stats = {"r_normal": 0.5, "r_normal_inverse": 2.0}
    assert r_table(stats)[0]["inverse"] == 2.0 and r_table(stats)[0]["paper ped2"] == 8.76


# --- issue 23: Table III's UNet+Mem row is MNAD's Mem-Guided*; options against memory collapse ----------------------
def test_unet_mem_row_is_mnads_mem_guided_update_and_losses():
    """The paper ran UNet+Mem with [8]'s code: MNAD's update (with its Eq. 5) and MNAD's unsquared losses."""
    method = create_method("dream", "smoke", ablations=["unet_mem"])
    assert method.config.update_weights == "mnad_eq5"
    engine.set_seed(0)
    method.model = method.build_model()
    method.train_net = method.model
    batch = _batch(labels=(0, 0, 0, 0))
    out = method.training_step(batch)
    queries, items = out["_queries_single"], method.model.memory.clone()
    k = queries.shape[1]
    # MNAD Eq. 10, 12 (unsquared norms, summed over the K queries): not DREAM's squared Eq. 7-8
    mnad_c = memory.compactness_loss(queries, items) * k
    mnad_s = memory.separateness_loss(queries, items, 1.0) * k
    dream_c = memory.compactness_loss(queries, items, squared=True) * k
    assert float(out["compact_single"].detach()) == pytest.approx(float(mnad_c), rel=1e-5)
    assert float(out["separate_single"].detach()) == pytest.approx(float(mnad_s), rel=1e-5)
    assert abs(float(mnad_c) - float(dream_c)) > 1e-3 * float(mnad_c)  # the two rules are told apart here
    # MNAD Eq. 9: the unsquared norm of the error per frame, not DREAM's squared Eq. 6
    with torch.no_grad():
        pred = method.model(batch["input"])["output"]
    rec = (pred - batch["target"]).flatten(1).norm(dim=1).mean()
    assert float(out["rec"].detach()) == pytest.approx(float(rec), rel=1e-4)
    # MNAD Eq. 3-5: the update renormalises by the max over U_m (DREAM's Eq. 3-4 would not)
    method.after_optimizer_step(out)
    mnad = memory.update(queries, items, frame_mask=torch.ones(4, dtype=torch.bool), max_renorm=True)
    dream = memory.update(queries, items, frame_mask=torch.ones(4, dtype=torch.bool), max_renorm=False)
    assert torch.allclose(method.model.memory, mnad, atol=1e-6)
    assert not torch.allclose(method.model.memory, dream, atol=1e-4)
    # score: MNAD's Eq. 14 (unsquared distance)
    signals = method.score_batch(batch)
    assert torch.allclose(signals["distance"], memory.feature_distance(
        method.model(batch["input"])["branches"]["single"]["queries"], method.model.memory), atol=1e-6)
    with pytest.raises(ConfigError, match="Mem-Guided"):
        create_method("dream", "smoke", variant="mem")  # the row never falls back to DREAM's update


def test_update_options_reach_both_memories_and_the_default_is_the_papers():
    for ablations, rule in (([], {"max_renorm": False}), (["update_eq5"], {"max_renorm": True}),
                            (["update_balanced"], {"max_renorm": False, "assign": "balanced"}),
                            (["update_eq5", "update_balanced"], {"max_renorm": True, "assign": "balanced"})):
        method = create_method("dream", "smoke", ablations=ablations)
        engine.set_seed(0)
        method.model = method.build_model()
        method.train_net = method.model
        out = method.training_step(_batch())
        before = {b: method.model.items(b).clone() for b in ("normal", "abnormal")}
        method.after_optimizer_step(out)
        labels = out["_labels"]
        for branch, mask in (("normal", labels == 0), ("abnormal", labels == 1)):
            want = memory.update(out[f"_queries_{branch}"], before[branch], frame_mask=mask, **rule)
            assert torch.allclose(method.model.items(branch), want, atol=1e-6), (ablations, branch)
    paper = create_method("dream", "paper").config  # the paper's rule stays the default
    assert (paper.update_weights, paper.update_assignment, paper.item_init, paper.normalize_features) == (
        "dream", "nearest", "random", False)
    with pytest.raises(ConfigError, match="nearest"):
        create_method("dream", "smoke", ablations=["unet_mem", "update_balanced"])


def test_kmeanspp_items_come_from_the_routed_queries(random_layout):
    method = create_method("dream", "smoke", ablations=["items_kmeanspp"], init_batches=2)
    assert method.config.item_init == "kmeanspp"
    engine.set_seed(0)
    method.model = method.build_model()
    random_items = {b: method.model.items(b).clone() for b in ("normal", "abnormal")}
    data = method.train_dataset(load_layout(random_layout))
    first = method.init_items(data, seed=0, device="cpu")
    again = method.init_items(data, seed=0, device="cpu")
    for branch, label in (("normal", 0), ("abnormal", 1)):
        items = method.model.items(branch)
        assert torch.allclose(items.norm(dim=1), torch.ones(len(items)), atol=1e-5)
        assert torch.equal(first[branch], again[branch])  # seeded
        assert not torch.allclose(items, random_items[branch])
        clips = torch.utils.data.default_collate([data[i] for i in np.flatnonzero(data.clip_label == label)[:4]])
        with torch.no_grad():
            q = method.model.eval().encode(clips["input"])[0][branch].flatten(2).transpose(1, 2).reshape(-1, 8)
        # the seeded items sit among the queries: each query is nearer its nearest item than under the random init
        assert (q @ items.T).amax(1).mean() > (q @ random_items[branch].T).amax(1).mean()
    with pytest.raises(ConfigError, match="no memory"):
        create_method("dream", "smoke", variant="disc", item_init="kmeanspp")


def test_kmeanspp_runs_inside_fit_and_disc_normalise_is_an_ablation(random_layout, tmp_path):
    assert create_method("dream", "smoke", ablations=["disc_normalise"]).config.normalize_features
    method = create_method("dream", "smoke", ablations=["items_kmeanspp"], init_batches=1, epochs=2)
    seeded = []
    real = method.init_items
    method.init_items = lambda *a, **k: seeded.append(real(*a, **k)) or seeded[-1]
    engine.fit(method, random_layout, tmp_path / "run", seed=0, device="cpu", progress=False)
    assert len(seeded) == 1  # once, at the first epoch's start, not again at the second


@pytest.mark.parametrize("order", ["sliding", "shuffled"])
def test_the_convlstm_scoring_path_is_the_training_forward(order):
    """Without gradients the ConvLSTM encoder shares the frames of consecutive clips and splits the gates'
    convolution; its output equals the forward that training runs, up to float rounding, on a scoring batch
    (a sliding window over one video) and on clips in any order."""
    from vadlab.registry import create_method

    torch.manual_seed(0)
    encoder = create_method("dream_convlstm", "smoke").model.eval().encoder
    video = torch.rand(12, 1, 32, 32) * 2 - 1
    clips = torch.stack([video[k:k + 4] for k in range(9)])
    if order == "shuffled":
        clips = clips[torch.randperm(len(clips))]
    reference = encoder(clips).detach()  # gradients on: the training forward
    with torch.no_grad():
        shared = encoder(clips)
    torch.testing.assert_close(shared, reference, rtol=1e-5, atol=1e-5)


def test_cpu_preset_takes_eq5_and_the_papers_update_is_one_ablation_away():
    """issue 23: the `cpu` presets take MNAD's Eq. 5 in DREAM's update (ours, chosen by memory health); the
    paper's rule is `--ablation update_paper`; the `paper` preset keeps the paper's rule."""
    for name in ("dream", "dream_convlstm"):
        assert create_method(name, "cpu").config.update_weights == "mnad_eq5"
        assert create_method(name, "cpu", ablations=["update_paper"]).config.update_weights == "dream"
        assert create_method(name, "paper").config.update_weights == "dream"
    method = create_method("dream", "cpu", ablations=["update_paper"], image_size=32)
    engine.set_seed(0)
    method.model = method.build_model()
    method.train_net = method.model
    out = method.training_step(_batch(size=32))
    before = method.model.normality.clone()
    method.after_optimizer_step(out)
    want = memory.update(out["_queries_normal"], before, frame_mask=out["_labels"] == 0, max_renorm=False)
    assert torch.allclose(method.model.normality, want, atol=1e-6)
