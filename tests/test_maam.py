"""MAAM-Net (vadlab.models.maam): Table 1, Eq. 1-10, PSCD (Algorithm 1) and each choice of the module docstring.

The memory ops (Eq. 1-4, 8, 9) are tested against their loop references in tests/test_memory.py; the flow in
tests/test_flow.py; resume, evaluation and ablation training of every registered method in tests/test_methods.py.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from vadlab import engine, memory
from vadlab.analysis.maam import branch_aucs
from vadlab.data.flow import load_flow
from vadlab.data.layout import load_layout
from vadlab.errors import ConfigError
from vadlab.eval.scores import normalise
from vadlab.models.maam import MAAMNet, items_selected, patch_sums, pscd_map, pscd_scores
from vadlab.registry import create_method, get_config


# --- Table 1 --------------------------------------------------------------------------------------------------------
def test_parameter_counts_match_table_4():
    """8.5 M (N = 500) and 9.22 M (N = 2000): pins the widths, two unshared decoders and N (checklist Sec. 1)."""
    for preset, expected in (("paper", 8_453_061), ("paper_avenue", 9_221_061), ("paper_shanghaitech", 9_221_061)):
        net = MAAMNet(get_config("maam", preset))
        assert sum(p.numel() for p in net.parameters()) == expected


@pytest.mark.parametrize(("size", "grid"), [((240, 360), (15, 23)), ((180, 320), (12, 20)), ((37, 53), (3, 4))])
def test_odd_sizes_round_trip(size, grid):
    cfg = dataclasses.replace(get_config("maam", "smoke"), image_size=size)
    net = MAAMNet(cfg).eval()
    with torch.no_grad():
        z, _ = net.encode(torch.zeros(2, 1, *size))
        out = net(torch.zeros(2, 1, *size))
    assert tuple(z.shape[-2:]) == grid
    assert out["appearance"].shape == (2, 1, *size) and out["motion"].shape == (2, 2, *size)
    assert out["weights"].shape == (2, grid[0] * grid[1], cfg.memory_items)


def test_no_skip_path_the_decoders_see_only_the_memory_read():
    """All items equal and lambda below 1/N: every read is that item, so two different frames decode the same."""
    cfg = dataclasses.replace(get_config("maam", "smoke"), shrink_n=0.5)
    net = MAAMNet(cfg).eval()
    with torch.no_grad():
        net.memory.copy_(torch.randn(1, net.memory.shape[1]).expand_as(net.memory))
        a, b = net(torch.randn(1, 1, 24, 40)), net(torch.randn(1, 1, 24, 40))
        again = net(torch.randn(1, 1, 24, 40))
    for key in ("appearance", "motion"):
        assert torch.allclose(a[key], b[key], atol=1e-6) and torch.allclose(a[key], again[key], atol=1e-6)


def test_eval_is_deterministic_and_dropout_only_in_training():
    net = MAAMNet(get_config("maam", "smoke"))
    x = torch.randn(4, 1, 24, 40)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x)["appearance"], net(x)["appearance"])
    from vadlab.models.blocks import Dropout16

    drops = [m for m in net.modules() if isinstance(m, (torch.nn.Dropout, Dropout16))]
    assert len(drops) == 8 and all(m.p == 0.3 for m in drops)  # 4 blocks in each of the 2 decoders
    assert not any(isinstance(m, (torch.nn.Dropout, Dropout16)) for m in net.encoder.modules())


def test_init_and_batchnorm_follow_the_public_code():
    net = MAAMNet(get_config("maam", "paper"))
    w = net.encoder[0][0].weight.detach()
    assert float(w.abs().max()) <= 0.04 + 1e-7 and abs(float(w.std()) - 0.0176) < 0.003  # trunc normal sd 0.02
    assert float(net.encoder[0][0].bias.detach().abs().max()) == 0.0
    assert float(net.memory.detach().abs().max()) <= 0.04 + 1e-7
    bn = net.encoder[0][1]
    assert bn.momentum == 0.01 and bn.eps == 1e-3


def test_memory_is_a_parameter_learned_by_backprop(random_layout, tmp_path):
    method = create_method("maam", "smoke", epochs=1)
    assert isinstance(method.model.memory, torch.nn.Parameter)
    engine.set_seed(0)
    before = method.build_model().memory.detach().clone()
    engine.fit(method, random_layout, tmp_path / "run", seed=0, device="cpu", progress=False)
    assert not torch.equal(method.model.memory.detach(), before)


def test_config_rules_name_the_fields():
    with pytest.raises(ConfigError, match="frames_in=4"):
        get_config("maam", "smoke", frames_in=4)
    with pytest.raises(ConfigError, match="target_index=-1"):
        get_config("maam", "smoke", target_index=-1)
    with pytest.raises(ConfigError, match="5 encoder"):
        get_config("maam", "smoke", enc_widths=(4, 8))


def test_paper_presets_hold_sec_4_3():
    for preset, size, n, lr in (("paper", (240, 360), 500, 2e-5), ("paper_avenue", (180, 320), 2000, 5e-4),
                                ("paper_shanghaitech", (180, 320), 2000, 1e-5)):
        cfg = get_config("maam", preset)
        assert (cfg.image_size, cfg.memory_items, cfg.lr, cfg.epochs) == (size, n, lr, 50)
        assert (cfg.lambda_m, cfg.alpha, cfg.beta, cfg.zeta, cfg.shrink_n) == (2.0, 3e-4, 1e-3, 0.1, 1.0)
        assert cfg.cosine_schedule is False and cfg.channels == 3
    assert get_config("maam", "paper").patch == (30, 20) and get_config("maam", "paper").patch_stride == (8, 5)


# --- losses (Eq. 5-10) ----------------------------------------------------------------------------------------------
def _batch(cfg, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.image_size
    frame = torch.rand(b, cfg.channels, h, w, generator=g) * 2 - 1
    return {"input": torch.stack([frame, frame.roll(1, -1)], 1), "target": frame,
            "flow": torch.randn(b, 2, h, w, generator=g), "label": torch.zeros(b, dtype=torch.long)}


@pytest.mark.parametrize(("ablation", "spa", "lat"), [([], 1, 1), (["no_sparsity"], 0, 1), (["no_latent"], 1, 0),
                                                      (["no_memory_losses"], 0, 0)])
def test_total_loss_is_eq_10_and_the_flags_drop_exactly_their_term(ablation, spa, lat):
    method = create_method("maam", "smoke", ablations=ablation)
    torch.manual_seed(0)
    method.model = method.train_net = method.build_model()
    method.model.eval()  # no dropout: the same forward for the recomputation below
    batch = _batch(method.config)
    losses = method.training_step(batch)
    out = method.model(batch["target"])
    app = (out["appearance"] - batch["target"]).pow(2).mean()
    mot = (out["motion"] - batch["flow"]).abs().mean()
    l_spa = memory.entropy_loss(out["weights"], item_reduction="mean")
    l_lat = memory.latent_margin_loss(out["read"], out["queries"], 0.1)
    expected = app + 2.0 * mot + spa * 3e-4 * l_spa + lat * 1e-3 * l_lat
    torch.testing.assert_close(losses["loss"], expected)
    torch.testing.assert_close(losses["spa"], l_spa)  # logged even when not in the total
    assert float(l_lat) > 0  # an untrained memory reads close to the query: Eq. 9 is active


def test_entropy_reduction_changes_the_sparsity_term_by_n():
    cfg = get_config("maam", "smoke")
    method_mean = create_method("maam", "smoke")
    method_sum = create_method("maam", "smoke", entropy_reduction="sum")
    method_sum.model.load_state_dict(method_mean.model.state_dict())
    for m in (method_mean, method_sum):
        m.model.eval()
    batch = _batch(cfg)
    torch.testing.assert_close(method_sum.training_step(batch)["spa"],
                               cfg.memory_items * method_mean.training_step(batch)["spa"])


def test_no_memory_and_single_branch_variants():
    batch = _batch(get_config("maam", "smoke"))
    m = create_method("maam", "smoke", ablations=["no_memory"])
    assert not hasattr(m.model, "memory")
    assert set(m.training_step(batch)) == {"app", "mot", "loss"}
    m = create_method("maam", "smoke", ablations=["appearance_only"])
    assert m.model.motion is None and set(m.training_step(batch)) >= {"app"} and "mot" not in m.training_step(batch)
    assert m.fusion_weights() == {"app": 1.0} and m.extra_inputs([], "training") == {}
    m = create_method("maam", "smoke", ablations=["motion_only"])
    assert m.model.appearance is None and "app" not in m.training_step(batch)
    assert m.fusion_weights() == {"mot": 1.0}


def test_items_selected_per_query_and_per_frame():
    w = torch.zeros(2, 3, 5)
    w[0, 0, [0, 1]] = 0.5
    w[0, 1, [1, 2, 3]] = 1 / 3
    w[0, 2, 4] = 1.0
    w[1, :, 0] = 1.0
    per_query, per_frame = items_selected(w)
    assert per_query.tolist() == [2.0, 1.0] and per_frame.tolist() == [5.0, 1.0]


# --- data alignment -------------------------------------------------------------------------------------------------
def test_sample_t_is_frame_t_with_its_flow_to_t_plus_1_and_the_last_frame_is_unscored(random_layout):
    method = create_method("maam", "smoke")
    layout = load_layout(random_layout)
    videos = layout.testing
    data = method.test_dataset(videos)
    assert len(data) == sum(len(v) - 1 for v in videos)  # frames - 1 per video (Sec. 3.2.1)
    flow = load_flow(videos[1], method.frame_size, "dis")
    for i in data.clip_indices(1)[[0, 5, -1]]:
        item = data[int(i)]
        t = item["index"]
        assert torch.equal(item["flow"], torch.from_numpy(flow[t])) and torch.isfinite(item["flow"]).all()
        assert torch.equal(item["input"][0], item["target"])  # the model's input is the scored frame
        assert item["label"] == videos[1].labels[t]  # labels unshifted
    assert max(int(data[int(i)]["index"]) for i in data.clip_indices(1)) == len(videos[1]) - 2


# --- PSCD (Algorithm 1) ---------------------------------------------------------------------------------------------
def test_patch_sums_of_a_hot_pixel_with_same_padding():
    err = torch.zeros(1, 3, 8, 12)
    err[0, :, 0, 11] = 1.0  # top-right corner, 3 channels: patch sum 3 wherever the window covers it
    sums = patch_sums(err, (3, 5), (2, 3))  # output ceil(8/2) x ceil(12/3) = 4 x 4
    assert sums.shape == (1, 4, 4)
    # rows: pad total (4-1)*2+3-8 = 1 -> (0 top, 1 bottom); window rows 2i..2i+2: row 0 only in window 0
    # cols: pad total (4-1)*3+5-12 = 2 -> (1 left, 1 right); window cols 3j-1..3j+3: col 11 in window 3 (8..12)
    expected = torch.zeros(4, 4)
    expected[0, 3] = 3.0
    assert torch.equal(sums[0], expected)


def test_patch_height_and_width_are_not_swapped():
    err = torch.zeros(1, 1, 10, 10)
    err[0, 0, 0, 0] = err[0, 0, 4, 0] = 1.0  # two pixels in one column, 4 rows apart
    assert float(patch_sums(err, (5, 1), (1, 1)).max()) == 2.0  # a tall patch covers both
    assert float(patch_sums(err, (1, 5), (1, 1)).max()) == 1.0  # a wide one never does


def test_pscd_fuses_raw_patch_sums_before_the_max():
    d_app = torch.zeros(1, 3, 8, 8)
    d_mot = torch.zeros(1, 2, 8, 8)
    d_app[0, 0, 1, 1] = 1.0  # appearance error top-left
    d_mot[0, 0, 6, 6] = 4.0  # motion error bottom-right
    s = pscd_scores(d_app, d_mot, (2, 2), (2, 2), psi=0.5)
    assert float(s["app"]) == 1.0 and float(s["mot"]) == 4.0
    assert float(s["pscd"]) == 2.0  # max(0.5 * 1, 0.5 * 4): fusion per patch, then max; not 0.5 * 1 + 0.5 * 4
    full = pscd_map(d_app, d_mot, (2, 2), psi=0.5)
    assert full.shape == (1, 8, 8) and float(full.max()) == 2.0
    only_app = pscd_scores(d_app, None, (2, 2), (2, 2), psi=0.5)
    assert set(only_app) == {"app"}


def test_per_video_scores_span_0_1_and_global_differs():
    scores = {"a": np.array([1.0, 2.0, 3.0, np.nan]), "b": np.array([10.0, 20.0, 30.0, np.nan])}
    per_video = normalise(scores, "video")
    for v in per_video.values():
        assert np.nanmin(v) == 0.0 and np.nanmax(v) == 1.0 and np.isnan(v[-1])
    glob = normalise(scores, "global")
    assert np.nanmax(glob["a"]) < 0.1 and np.nanmax(glob["b"]) == 1.0
    labels = {"a": np.array([0, 0, 1, 0]), "b": np.array([0, 1, 1, 0])}
    aucs = branch_aucs({"pscd": scores}, labels)
    assert aucs["pscd"]["video"] != aucs["pscd"]["global"]


# --- through the engine ---------------------------------------------------------------------------------------------
def test_evaluation_reports_branches_both_normalisations_pixel_auc_and_items(random_layout, tmp_path):
    run = tmp_path / "run"
    engine.fit(create_method("maam", "smoke", epochs=1), random_layout, run, device="cpu", progress=False)
    report = engine.evaluate_run(run, random_layout, device="cpu", progress=False)
    assert set(report["per_signal_auc"]) == {"app", "mot", "pscd"}
    assert report["micro_auc"] == report["per_signal_auc"]["pscd"]  # the frame score is PSCD, per-video Eq. 11
    assert "auc_global_norm" in report and 0 <= report["pixel_auc"] <= 1
    assert report["frames_left_out"] == len(load_layout(random_layout).testing)  # the last frame of each video
    assert 1 <= report["items_per_query"] <= report["items_per_frame"] <= report["memory_items"]
    history = engine.run_info(run)["history"]
    assert 1 <= history[-1]["items_per_query"] <= history[-1]["items_per_frame"]
    layout = load_layout(random_layout)
    aucs = branch_aucs(engine.load_scores(run), layout.labels())
    assert aucs["pscd"]["video"] == pytest.approx(report["micro_auc"])
    assert aucs["pscd"]["global"] == pytest.approx(report["auc_global_norm"])


def test_inspect_gives_every_map_at_frame_size(random_layout, tmp_path):
    method = create_method("maam", "smoke")
    layout = load_layout(random_layout)
    batch = method.clip(layout.testing[0], 3)
    method.model.eval()
    out = method.inspect(batch)
    for key in ("pscd_map", "d_app", "d_mot"):
        assert out[key].shape == (1, 24, 40)
    assert out["output"].shape == (1, 1, 24, 40) and out["flow_pred"].shape == (1, 2, 24, 40)
    assert set(method.memory_spaces(batch)) == {"memory"}


# --- the fusion's units (issue 22) ----------------------------------------------------------------------------------
def _hot_errors():
    """An appearance error of 1 top-left and a motion error of 3 bottom-right, far apart (patch 2x2, stride 2)."""
    d_app, d_mot = torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 8)
    d_app[0, 0, 1, 1] = 1.0
    d_mot[0, 0, 6, 6] = 3.0
    return d_app, d_mot


def test_psi_weighs_the_appearance_branch():
    """Algorithm 1 line 13: e_fuse = psi e_app + (1 - psi) e_mot; psi = 0.8 on e_app gives max(0.8, 0.6) = 0.8,
    psi on e_mot would give max(0.2, 2.4) = 2.4."""
    d_app, d_mot = _hot_errors()
    assert float(pscd_scores(d_app, d_mot, (2, 2), (2, 2), psi=0.8)["pscd"]) == pytest.approx(0.8)
    assert float(pscd_map(d_app, d_mot, (2, 2), psi=0.8).max()) == pytest.approx(0.8)
    # the scales divide their own branch: e_app / 0.5 and e_mot / 6 -> max(0.8 * 2, 0.2 * 0.5)
    assert float(pscd_scores(d_app, d_mot, (2, 2), (2, 2), 0.8, (0.5, 6.0))["pscd"]) == pytest.approx(1.6)
    assert float(pscd_map(d_app, d_mot, (2, 2), 0.8, (6.0, 0.5)).max()) == pytest.approx(0.2 * 6)


def test_the_method_passes_its_psi_to_e_app(monkeypatch):
    """Through MAAM.score_batch: the config's psi (!= 0.5) weighs the appearance errors."""
    method = create_method("maam", "smoke", psi=0.8, patch=(2, 2), patch_stride=(2, 2))
    d_app, d_mot = _hot_errors()
    monkeypatch.setattr(method, "_errors", lambda batch: ({}, d_app, d_mot))
    signals = method.score_batch({})
    assert float(signals["pscd"]) == pytest.approx(0.8)
    assert float(signals["app"]) == 1.0 and float(signals["mot"]) == 3.0  # the branches stay raw


def test_psi_rules():
    """paper: psi as given; flow_scale: psi' = psi s / (psi s + 1 - psi) with s the size ratio; balanced: 1/2 and
    each branch's stored spread, refused without the statistics."""
    paper = create_method("maam", "cpu", psi_rule="paper", psi=10 / 11)
    assert paper.fusion() == (10 / 11, (1.0, 1.0), (0.0, 0.0))
    scaled = create_method("maam", "cpu", psi_rule="flow_scale", psi=10 / 11)
    s = 64 / 240  # 64x96 against 240x360: both axes 0.2667
    assert scaled.flow_scale() == pytest.approx(s)
    psi, scale, offset = scaled.fusion()
    assert psi == pytest.approx((10 / 11) * s / ((10 / 11) * s + 1 / 11)) and scale == (1.0, 1.0)
    assert offset == (0.0, 0.0)
    assert psi == pytest.approx(0.7273, abs=1e-4)  # e_mot / s against e_app: 10 s / (10 s + 1) = 8 / 11
    at_paper_size = create_method("maam", "paper", psi_rule="flow_scale")
    assert at_paper_size.flow_scale() == 1.0 and at_paper_size.fusion()[0] == pytest.approx(10 / 11)
    balanced = create_method("maam", "cpu", psi_rule="balanced")
    with pytest.raises(ConfigError, match="balanced"):
        balanced.fusion()
    grid = [[1.0, 2.0], [3.0, 4.0]]
    fit = {"patch": list(balanced.config.patch), "patch_stride": list(balanced.config.patch_stride),
           "app": {"frame_max_std": 2.0, "patch_std": 0.5, "position_mean": grid, "position_std": grid},
           "mot": {"frame_max_std": 0.25, "patch_std": 0.1, "position_mean": grid, "position_std": grid}}
    assert not balanced.use_scoring_fit({**fit, "patch": [1, 1]})  # taken at another patch: refused
    assert balanced.use_scoring_fit(fit)
    assert balanced.fusion() == (0.5, (2.0, 0.25), (0.0, 0.0))
    patch = create_method("maam", "cpu", psi_rule="balanced", balance_stat="patch")
    patch.use_scoring_fit(fit)
    assert patch.fusion() == (0.5, (0.5, 0.1), (0.0, 0.0))
    old = {**fit, "app": {"frame_max_std": 2.0, "patch_std": 0.5}}  # a fit from before the per-position statistics
    assert not create_method("maam", "cpu", psi_rule="balanced").use_scoring_fit(old)  # computed again


def test_position_balance_standardises_each_patch_position_with_a_floored_spread():
    """balance_stat="position": (e - mean(p)) / max(std(p), position_floor x median std) per branch and position,
    weighted 1/2 and 1/2, at the scoring stride (pscd_scores) and resized to the frame (pscd_map)."""
    method = create_method("maam", "smoke", psi_rule="balanced", balance_stat="position", patch=(2, 2),
                           patch_stride=(2, 2))
    mean_app, std_app = [[1.0, 0.0], [0.0, 0.0]], [[4.0, 1.0], [1.0, 0.01]]  # median spread 1: 0.01 floored to 1
    mean_mot, std_mot = [[0.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]]
    fit = {"patch": [2, 2], "patch_stride": [2, 2],
           "app": {"frame_max_std": 1.0, "patch_std": 1.0, "position_mean": mean_app, "position_std": std_app},
           "mot": {"frame_max_std": 1.0, "patch_std": 1.0, "position_mean": mean_mot, "position_std": std_mot}}
    assert method.use_scoring_fit(fit)
    psi, scale, offset = method.fusion()
    assert psi == 0.5 and torch.equal(scale[0], torch.tensor([[4.0, 1.0], [1.0, 1.0]]))
    d_app = torch.zeros(1, 1, 4, 4)
    d_app[..., :2, :2] = 9.0 / 4  # the top-left patch sums to 9: (9 - 1) / 4 = 2 in its own units
    d_app[..., 2:, 2:] = 2.0 / 4  # bottom right sums to 2: (2 - 0) / 1 = 2 (its spread 0.01 floored to 1)
    d_mot = torch.zeros(1, 2, 4, 4)
    d_mot[:, :, 2:, :2] = 8.0 / 8  # bottom left sums to 8 over 2 channels: 8 / 2 = 4
    out = pscd_scores(d_app, d_mot, (2, 2), (2, 2), psi, scale, offset)
    # z per position: top left app 2, bottom right app 2 (floored spread), bottom left mot 8 / 2 = 4: fused 1, 1, 2
    assert float(out["pscd"]) == pytest.approx(2.0)
    assert float(out["app"]) == 9.0 and float(out["mot"]) == 8.0  # the branches stay raw
    assert pscd_map(d_app, d_mot, (2, 2), psi, scale, offset).shape == (1, 4, 4)


def test_branch_statistics_are_stored_at_the_end_of_training_and_used_by_balanced(random_layout, tmp_path):
    run = tmp_path / "run"
    engine.fit(create_method("maam", "smoke", epochs=1), random_layout, run, device="cpu", progress=False)
    fit = __import__("json").loads((run / engine.SCORING_FIT).read_text())
    layout = load_layout(random_layout)
    assert fit["frames"] == sum(len(v) - 1 for v in layout.training)  # every training frame with a flow
    for branch in ("app", "mot"):
        stats = fit[branch]
        assert stats["frame_max_std"] > 0 and stats["patch_std"] > 0
        assert stats["frame_max_mean"] >= stats["patch_mean"] > 0  # the max of a frame's patches >= their mean
    flows = [load_flow(v, (24, 40), "dis") for v in layout.training]
    expected = np.mean(np.concatenate([np.linalg.norm(f[:len(v) - 1], axis=1).ravel()
                                       for f, v in zip(flows, layout.training)]))
    assert fit["flow_mean_magnitude"] == pytest.approx(float(expected), rel=1e-3)

    report = engine.evaluate_run(run, random_layout, device="cpu", progress=False)
    assert report["fusion"] == {"psi_rule": "paper", "psi": pytest.approx(10 / 11), "scale_app": 1.0,
                                "scale_mot": 1.0, "balance_stat": "frame_max"}
    assert report["flow_mean_magnitude"] > 0 and report["frame_size"] == [24, 40]
    (run / engine.SCORING_FIT).unlink()  # a run from before the file: an evaluation computes it again
    balanced = engine.evaluate_run(run, random_layout, device="cpu", progress=False,
                                   overrides={"psi_rule": "balanced"})
    assert (run / engine.SCORING_FIT).exists()
    assert balanced["fusion"]["scale_app"] == pytest.approx(fit["app"]["frame_max_std"], rel=1e-5)
    assert balanced["fusion"]["psi"] == 0.5
    assert balanced["per_signal_auc"]["app"] == report["per_signal_auc"]["app"]  # the branches are unchanged
    assert (run / "metrics[psi_rule=balanced].json").exists() and (run / "metrics.json").exists()
    position = engine.evaluate_run(run, random_layout, device="cpu", progress=False,
                                   overrides={"psi_rule": "balanced", "balance_stat": "position"})
    h, w = np.array(json.loads((run / engine.SCORING_FIT).read_text())["app"]["position_std"]).shape
    assert (h, w) == patch_sums(torch.zeros(1, 1, 24, 40), (6, 4), (2, 1)).shape[1:]  # one value per patch position
    assert position["fusion"]["balance_stat"] == "position" and np.isfinite(position["micro_auc"])
    assert position["per_signal_auc"]["app"] == report["per_signal_auc"]["app"]


# --- the paper's tables as `vadlab reproduce` specs ------------------------------------------------------------------
def test_table5_spec_carries_all_four_rows_and_each_branch():
    """Table 5, Ped2 (App / Mot / App+Mot): rows without L_spa and L_lat, L_spa only, L_lat only, both."""
    from vadlab import reproduce

    spec = reproduce.load_spec("maam_table5")
    table5 = {"none": ("no_memory_losses", .826, .972, .974), "spa": ("no_latent", .855, .972, .974),
              "lat": ("no_sparsity", .830, .972, .975), "both": (None, .778, .972, .977)}
    for key, (ablation, app, mot, fused) in table5.items():
        trained = spec.row(f"T5.{key}")
        assert trained.method == "maam" and trained.ablation == ablation and trained.paper == fused
        assert (spec.row(f"T5.{key}.app").metric, spec.row(f"T5.{key}.app").paper) == ("per_signal_auc.app", app)
        assert (spec.row(f"T5.{key}.mot").metric, spec.row(f"T5.{key}.mot").paper) == ("per_signal_auc.mot", mot)
        assert spec.row(f"T5.{key}.app").scored_from == spec.row(f"T5.{key}.mot").scored_from == f"T5.{key}"
    cfg = {r.id: get_config("maam", "cpu", ablations=[r.ablation] if r.ablation else []) for r in spec.rows
           if r.scored_from is None}
    assert [(c.sparsity_loss, c.latent_loss) for c in cfg.values()] == [(False, False), (True, False), (False, True),
                                                                        (True, True)]


@pytest.mark.parametrize("name,key,values", [
    ("maam_fig6_zeta", "zeta", {0.025: .972, 0.05: .974, 0.1: .977, 0.2: .973, 0.4: .975}),
    ("maam_fig6_beta", "beta", {0.00025: .973, 0.0005: .975, 0.001: .977, 0.002: .972, 0.004: .973})])
def test_fig6_sweeps_are_specs_with_the_plotted_numbers(name, key, values):
    from vadlab import reproduce

    spec = reproduce.load_spec(name)
    assert {r.set[key]: r.paper for r in spec.rows} == values
    assert spec.row(f"F6.{key}{'0.1' if key == 'zeta' else '0.001'}").paper == 0.977  # = Table 2's Ours


def test_items_per_query_counts_every_query_of_every_scored_frame(random_layout, tmp_path):
    from vadlab.analysis.maam import items_per_query, plot_items_histograms

    method = create_method("maam", "smoke")
    layout = load_layout(random_layout)
    counts = items_per_query(method, layout.testing[:1])
    z, _ = method.model.encode(torch.zeros(1, 1, 24, 40))
    assert len(counts) == (len(layout.testing[0]) - 1) * z.shape[-2] * z.shape[-1]  # the last frame is unscored
    assert counts.min() >= 1 and counts.max() <= method.config.memory_items
    batch = method.clip(layout.testing[0], 0)
    per_query, _ = items_selected(method.model(batch["input"][:, 0])["weights"])
    assert float(per_query[0]) == pytest.approx(counts[:z.shape[-2] * z.shape[-1]].mean())
    fig = plot_items_histograms({"cosine": {"a": counts, "b": counts // 2}}, 20, path=tmp_path / "f5.png")
    assert (tmp_path / "f5.png").stat().st_size > 0 and len(fig.axes) == 1


def test_a_damaged_scoring_fit_is_named(tmp_path):
    from vadlab.errors import DataError

    (tmp_path / engine.SCORING_FIT).write_text("{not json")
    with pytest.raises(DataError, match="scoring_fit.json: cannot read"):
        engine.ensure_scoring_fit(create_method("maam", "smoke"), tmp_path, tmp_path)
    assert engine.ensure_scoring_fit(create_method("mnad_pred", "smoke"), tmp_path, tmp_path) is None  # none needed


def test_the_cpu_preset_balances_the_branches_and_the_paper_presets_keep_the_codes_psi():
    assert get_config("maam", "cpu").psi_rule == "balanced"
    for preset, size in (("paper", (240, 360)), ("paper_avenue", (180, 320)), ("paper_shanghaitech", (180, 320))):
        cfg = get_config("maam", preset)
        assert (cfg.psi_rule, cfg.psi_size, cfg.image_size, cfg.similarity) == ("paper", size, size, "cosine")


# --- Dropout16: the same dropout, masks from 16-bit words (issue 27) ----------------------------------------------
def test_dropout16_is_element_dropout_with_the_same_rate_scale_and_gradient():
    from vadlab.models.blocks import Dropout16

    torch.manual_seed(0)
    p, n = 0.3, 2_000_000
    drop = Dropout16(p).train()
    x = torch.ones(n, requires_grad=True)
    y = drop(x)
    kept = y != 0
    rate = 1 - kept.float().mean().item()
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(rate - p) < 5 * sigma  # 0.3 within 5 standard errors (p is 0.3000031 after rounding)
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)))  # the kept ones scaled by 1/(1-p)
    y.sum().backward()
    assert torch.equal(x.grad, kept.float() / (1 - p))  # the gradient is the mask, scaled
    # the two halves of one 32-bit draw are independent: no correlation between neighbours
    a, b = kept[0::2].float(), kept[1::2].float()
    corr = ((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std())
    assert abs(corr.item()) < 5 / (n / 2) ** 0.5
    # a fresh mask each call, off in eval mode and at p = 0
    assert not torch.equal(drop(torch.ones(1000)) != 0, drop(torch.ones(1000)) != 0)
    z = torch.randn(4, 8, 5, 7)
    assert drop.eval()(z) is z and Dropout16(0.0).train()(z) is z


def test_maam_decoders_draw_masks_as_the_config_says():
    from vadlab.models.blocks import Dropout16

    def kinds(method):
        return {type(m).__name__ for m in method.model.modules() if isinstance(m, (Dropout16, nn.Dropout))}

    assert kinds(create_method("maam", "cpu")) == {"Dropout16"}
    assert kinds(create_method("maam", "cpu", dropout_masks="bernoulli")) == {"Dropout"}
    from vadlab.models.maam import MAAMConfig

    assert MAAMConfig.from_saved({})["dropout_masks"] == "bernoulli"  # checkpoints from before keep their draws
