"""MAAM-Net (vadlab.models.maam): Table 1, Eq. 1-10, PSCD (Algorithm 1) and each choice of the module docstring.

The memory ops (Eq. 1-4, 8, 9) are tested against their loop references in tests/test_memory.py; the flow in
tests/test_flow.py; resume, evaluation and ablation training of every registered method in tests/test_methods.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vadlab import engine, memory
from vadlab.analysis.maam import branch_aucs
from vadlab.data.flow import load_flow
from vadlab.data.layout import load_layout
from vadlab.errors import ConfigError
from vadlab.eval.scores import normalise, patch_sums, pscd_map, pscd_scores
from vadlab.models.maam import MAAMNet, items_selected
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
    drops = [m for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 8 and all(m.p == 0.3 for m in drops)  # 4 blocks in each of the 2 decoders
    assert not any(isinstance(m, torch.nn.Dropout) for m in net.encoder.modules())


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
