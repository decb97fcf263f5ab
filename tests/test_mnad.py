"""MNAD's choices (vadlab/models/mnad.py docstring), each tested."""

from __future__ import annotations

import pytest
import torch

from vadlab import memory
from vadlab.errors import ConfigError
from vadlab.models.mnad import MNADNet
from vadlab.registry import create_method


def _batch(cfg, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = cfg.image_size
    return {"input": torch.rand(b, cfg.frames_in, cfg.channels, s, s, generator=g) * 2 - 1,
            "target": torch.rand(b, cfg.channels, s, s, generator=g) * 2 - 1}


def test_architecture_follows_sec_3_1_1():
    pred = create_method("mnad_pred", "smoke")
    recon = create_method("mnad_recon", "smoke")
    assert pred.model.decoder.skip and not recon.model.decoder.skip  # skips removed for reconstruction
    out = pred.model(_batch(pred.config)["input"])
    q = out["queries"]  # (B, K, C): L2-normalised queries, the encoder's last layer has no BN/ReLU
    assert q.shape == (3, (32 // 2) ** 2, 16)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(q.shape[:2]))
    assert (q < 0).any()  # no ReLU cut-off before the L2 norm
    assert out["weights"].shape == (3, 256, 4)
    assert "memory" not in dict(pred.model.named_parameters())  # a buffer: no gradient updates


def test_paper_loss_form_is_eq_8_to_12_as_written():
    m = create_method("mnad_pred", "smoke", lambda_c=0.3, lambda_s=0.2, alpha=0.5)
    batch = _batch(m.config)
    m.model.eval()  # deterministic BN for the recomputation below
    losses = m.training_step(batch)
    out = m.model(batch["input"])
    K = out["queries"].shape[1]
    rec = (out["output"] - batch["target"]).flatten(1).norm(dim=1).mean()  # Eq. 9 per frame, mean over frames
    comp = memory.compactness_loss(out["queries"], m.model.memory) * K  # Eq. 10: a sum over the K queries
    sep = memory.separateness_loss(out["queries"], m.model.memory, 0.5) * K
    torch.testing.assert_close(losses["loss"], rec + 0.3 * comp + 0.2 * sep)
    mean_form = create_method("mnad_pred", "smoke", loss_form="mean")
    mean_form.model.load_state_dict(m.model.state_dict())
    mean_form.model.eval()
    torch.testing.assert_close(mean_form.training_step(batch)["rec"], (out["output"] - batch["target"]).pow(2).mean())
    with pytest.raises(ConfigError, match="loss_form"):  # a Literal field: refused when the config is built
        create_method("mnad_pred", "smoke", loss_form="other")


def test_memory_moves_only_by_the_update_rule():
    m = create_method("mnad_pred", "smoke")
    batch = _batch(m.config)
    before = m.model.memory.clone()
    losses = m.training_step(batch)
    losses["loss"].backward()
    assert m.model.memory.grad is None and torch.equal(m.model.memory, before)
    m.after_optimizer_step(losses)  # Eq. 3-5
    expected = memory.update(losses["_queries"], before)
    torch.testing.assert_close(m.model.memory, expected)
    assert not torch.equal(m.model.memory, before)
    torch.testing.assert_close(m.model.memory.norm(dim=1), torch.ones(len(before)))


def test_no_memory_ablation():
    m = create_method("mnad_pred", "smoke", use_memory=False)
    assert m.model.decoder.entry[0][0].in_channels == m.config.feature_dim  # queries alone, not [q, p_hat]
    batch = _batch(m.config)
    losses = m.training_step(batch)
    assert set(k for k in losses if not k.startswith("_")) == {"rec", "loss"}
    m.model.eval()
    m.reset_test_state()
    assert set(m.score_batch(batch)) == {"neg_psnr", "_map"} and m.fusion_weights() == {"neg_psnr": 1.0}


def test_eq16_weights():
    assert create_method("mnad_pred", "paper").fusion_weights() == {"neg_psnr": 0.6, "distance": pytest.approx(0.4)}
    assert create_method("mnad_recon", "paper").fusion_weights() == {"neg_psnr": 0.7, "distance": pytest.approx(0.3)}


@pytest.mark.parametrize("gamma, test_update, expect_change", [(0.0, True, False), (1e9, True, True),
                                                                (1e9, False, False)])
def test_test_time_update_is_gated_by_the_regular_score(gamma, test_update, expect_change):
    m = create_method("mnad_pred", "smoke", gamma=gamma, test_update=test_update)
    m.model.eval()
    m.reset_test_state()
    trained = m.model.memory.clone()
    batch = _batch(m.config, b=1)
    m.score_batch(batch)
    assert torch.equal(m.model.memory, trained)  # the trained memory is never modified by scoring
    assert (not torch.equal(m._items, trained)) == expect_change
    m.reset_test_state()  # every test video starts from the trained memory
    assert torch.equal(m._items, trained)
    assert m.sequential_test == test_update


def test_scores_do_not_depend_on_the_order_of_test_videos():
    m = create_method("mnad_pred", "smoke", gamma=1e9)
    m.model.eval()
    a, b = _batch(m.config, b=1, seed=1), _batch(m.config, b=1, seed=2)
    m.reset_test_state()
    first = m.score_batch(a)["distance"]
    m.reset_test_state()
    m.score_batch(b)
    m.reset_test_state()
    torch.testing.assert_close(m.score_batch(a)["distance"], first)


def test_net_shapes_at_the_paper_size():
    cfg = create_method("mnad_pred", "paper").config
    net = MNADNet(cfg).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 4, 3, 256, 256))
    assert out["queries"].shape == (1, 32 * 32, 512)  # Sec. 4.1: H = W = 32, C = 512
    assert out["weights"].shape == (1, 1024, 10) and out["output"].shape == (1, 3, 256, 256)


def test_memory_diagnostics(random_layout):
    from vadlab.analysis.mnad import memory_diagnostics
    from vadlab.data.layout import load_layout

    m = create_method("mnad_pred", "smoke")
    diag = memory_diagnostics(m, load_layout(random_layout).training)
    assert len(diag["item_usage"]) == 4 and abs(sum(diag["item_usage"]) - 1) < 1e-9
    assert 0.0 < diag["position_locked"] <= 1.0
    assert all(torch.isfinite(torch.tensor(diag[k])) for k in ("psnr_read", "psnr_mean_item", "psnr_zero_read"))
    with pytest.raises(ValueError, match="use_memory"):
        memory_diagnostics(create_method("mnad_pred", "smoke", use_memory=False), load_layout(random_layout).training)


def test_read_temperature_is_a_validated_field_the_model_reads_with():
    """read_temperature (vadlab's, Eq. 1 is 1) divides the logits of the model's read, its matching weights in
    memory_spaces too; 0 is refused by the field's range."""
    base = create_method("mnad_pred", "smoke")
    sharp = create_method("mnad_pred", "smoke", read_temperature=0.1)
    sharp.model.load_state_dict(base.model.state_dict())
    batch = _batch(base.config)
    w1, w01 = base.model(batch["input"])["weights"], sharp.model(batch["input"])["weights"]
    assert torch.equal(w1.argmax(-1), w01.argmax(-1))
    assert w01.max(-1).values.mean() > w1.max(-1).values.mean()
    space = sharp.memory_spaces(batch)["memory"]
    torch.testing.assert_close(space.weights, w01)
    with pytest.raises(ConfigError, match="read_temperature"):
        create_method("mnad_pred", "smoke", read_temperature=0.0)


def test_loss_gradient_shares_and_read_effect(random_layout):
    """The issue-28 study helpers: each loss term's pull on the encoder (the model itself untouched), and the PSNR
    per test frame with the read and with the mean item, beside the labels of the frames a clip scores."""
    import numpy as np

    from vadlab.analysis.mnad import loss_gradient_shares, read_effect
    from vadlab.data.layout import load_layout

    layout = load_layout(random_layout)
    m = create_method("mnad_pred", "smoke")
    before = {k: v.clone() for k, v in m.model.state_dict().items()}
    shares = loss_gradient_shares(m, layout.training, batches=2, batch_size=4)
    assert shares["batches"] == 2
    assert shares["grad_rec"] > 0 and shares["grad_separate"] >= 0 and shares["grad_compact"] > 0
    assert -1.0 <= shares["cosine_rec_memory"] <= 1.0
    assert shares["memory_over_rec"] > 0
    assert all(torch.equal(v, m.model.state_dict()[k]) for k, v in before.items())  # the method is left as it was
    # with the memory losses weighted 0, their pull is 0
    off = create_method("mnad_pred", "smoke", lambda_c=0.0, lambda_s=0.0)
    assert loss_gradient_shares(off, layout.training, batches=1, batch_size=4)["memory_over_rec"] == 0.0
    effect = read_effect(m, layout.testing)
    spec = m.clip_spec()
    for video in layout.testing:
        n = len(spec.scored_range(len(video.labels)))
        assert effect["psnr_read"][video.name].shape == effect["psnr_mean_item"][video.name].shape == (n,)
        np.testing.assert_array_equal(effect["label"][video.name],
                                      np.asarray(video.labels)[spec.first_scored:])
        assert np.isfinite(effect["psnr_read"][video.name]).all()
    for helper in (loss_gradient_shares, read_effect):
        with pytest.raises(ValueError, match="use_memory"):
            helper(create_method("mnad_pred", "smoke", use_memory=False), layout.training)


def test_memory_space_sample_for_the_tsne(random_layout, tmp_path):
    import numpy as np

    from vadlab import viz
    from vadlab.analysis import sample_memory_space
    from vadlab.data.clips import ClipDataset
    from vadlab.data.layout import load_layout

    layout = load_layout(random_layout)
    m = create_method("mnad_pred", "smoke")  # 32x32, 2 stages: 16x16 = 256 queries per clip, M = 4
    sample = sample_memory_space(m, layout.testing, "memory", n=300, seed=1)
    assert sample["queries"].shape == (300, 16) and sample["items"].shape == (4, 16)
    assert sample["row"].min() >= 0 and sample["row"].max() <= 15
    np.testing.assert_allclose(np.linalg.norm(sample["queries"], axis=1), 1.0, atol=1e-5)  # queries are L2-normed
    # nearest item (Eq. 11) is the argmax of cosine similarity with the items
    expected = (sample["queries"] @ sample["items"].T).argmax(1)
    assert (sample["nearest"] == expected).mean() > 0.99  # ties at float precision aside
    # anomalous flags come from the labels of the frames the clips score
    data = ClipDataset(layout.testing, m.clip_spec(), 32)
    share = np.mean([layout.testing[v].labels[t] for v, t in data.index])
    assert 0.0 < sample["anomalous"].mean() < 1.0 and abs(sample["anomalous"].mean() - share) < 0.15
    again = sample_memory_space(m, layout.testing, n=300, seed=1)
    np.testing.assert_array_equal(sample["queries"], again["queries"])  # seeded
    fig = viz.plot_memory_tsne(sample, path=tmp_path / "tsne.png")
    assert len(fig.axes) == 5  # nearest item (+ item colour bar), row (+ colour bar), label
    assert (tmp_path / "tsne.png").read_bytes()[:4] == b"\x89PNG"


# --- the public code's choices (issue 15) ---------------------------------------------------------------------------

def _reference_count(net: torch.nn.Module, unused_norm: int = 0) -> int:
    """Parameters as the public code counts them: vadlab drops the bias of every conv in front of batch norm
    (the norm's shift makes it redundant); the public code keeps it. Its encoder also defines a BatchNorm2d(C)
    (`moduleBatchNorm`) that forward never uses: `unused_norm` = C adds its 2C parameters."""
    dropped = sum(m.out_channels for m in net.modules()
                  if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.bias is None)
    return sum(p.numel() for p in net.parameters()) + dropped + 2 * unused_norm


def test_parameter_counts_match_the_public_code():
    # Counted from cvlab-yonsei/MNAD's model files at these widths (issue 15): the prediction network at widths
    # (16, 32, 64, 128), C = 128, 3 channels, 4 frames in has 982,275 parameters; vadlab's decoder before the
    # parity work ("lite") gave 517,203; the reference reconstruction decoder at paper widths has about 12.5 M.
    cfg = create_method("mnad_pred", "smoke", image_size=32, channels=3, widths=(16, 32, 64, 128),
                        feature_dim=128, memory_items=10).config
    assert _reference_count(MNADNet(cfg), unused_norm=128) == 982_275
    # the public reconstruction network (model/Reconstruction.py) at the same widths, counted by running that code
    recon_cfg = create_method("mnad_recon", "smoke", image_size=32, channels=3, widths=(16, 32, 64, 128),
                              feature_dim=128, memory_items=10).config
    assert _reference_count(MNADNet(recon_cfg), unused_norm=128) == 1_078_083
    lite = MNADNet(create_method("mnad_pred", "smoke", image_size=32, channels=3, widths=(16, 32, 64, 128),
                                 feature_dim=128, memory_items=10, decoder="lite").config)
    assert sum(p.numel() for p in lite.parameters()) == 517_203  # vadlab's own count, biases dropped as before
    recon = MNADNet(create_method("mnad_recon", "paper").config)
    assert round(_reference_count(recon.decoder) / 1e6, 1) == 12.5
    lite_recon = MNADNet(create_method("mnad_recon", "paper", decoder="lite").config).decoder
    assert round(sum(p.numel() for p in lite_recon.parameters()) / 1e6, 2) == 2.77


def test_reference_decoder_mixes_query_and_read_before_upsampling():
    for name in ("mnad_pred", "mnad_recon"):
        m = create_method(name, "smoke")
        dec, cfg = m.model.decoder, m.config
        first = dec.entry[0][0]  # a 3x3 conv from [q, p_hat] (2C) to the last width, at the bottleneck
        assert (first.in_channels, first.out_channels, first.kernel_size) == (2 * cfg.feature_dim, cfg.widths[-1],
                                                                                (3, 3))
        up = dec.ups[0][0]
        assert (up.kernel_size, up.stride, up.padding, up.output_padding) == ((3, 3), (2, 2), (1, 1), (1, 1))
        # with skips an upsampling goes to the next width; without, it keeps its width (Reconstruction.py)
        assert up.out_channels == (cfg.widths[-2] if cfg.skip else cfg.widths[-1])
        out = m.model(_batch(cfg)["input"])["output"]
        assert out.shape == (3, cfg.channels, cfg.image_size, cfg.image_size)


def test_gate_on_a_constructed_error_image():
    # one channel, 2x2 pixels, errors 0.1, 0.2, 0, 0.3 on [0, 1] images
    target = torch.zeros(1, 1, 2, 2)
    pred = torch.tensor([[[[0.1, 0.2], [0.0, 0.3]]]])
    # squared (public code's point_score): e = .01 .04 0 .09; w = 1 - exp(-e) = .0099502 .0392106 0 .0860688;
    # sum(w e) = .0000995 + .0015684 + .0077462 = .0094141; sum(w) = .1352296; score = .069616
    assert float(memory.weighted_regular_score(pred, target, squared=True)) == pytest.approx(0.069616, abs=2e-6)
    # norm (Eq. 6-7 as written): e = .1 .2 0 .3; w = .0951626 .1812692 0 .2591818;
    # sum(w e) = .0095163 + .0362538 + .0777545 = .1235246; sum(w) = .5356136; score = .230623
    assert float(memory.weighted_regular_score(pred, target)) == pytest.approx(0.230623, abs=2e-6)
    # three channels: squared errors count per pixel *and* channel, norms per pixel over channels
    pred3, target3 = pred.expand(1, 3, 2, 2), target.expand(1, 3, 2, 2)
    assert float(memory.weighted_regular_score(pred3, target3, squared=True)) == pytest.approx(0.069616, abs=2e-6)


def test_gate_lets_a_26_db_frame_update_the_memory_only_in_the_squared_form():
    # a uniform error of 0.05 on [0, 1] images is 26 dB: squared score .0025 < gamma .01, norm score .05 > .01
    target = torch.full((1, 1, 8, 8), 0.5)
    pred = target + 0.05
    assert float(memory.weighted_regular_score(pred, target, squared=True)) < 0.01
    assert float(memory.weighted_regular_score(pred, target)) > 0.01
    for gate, fires in (("squared", True), ("norm", False)):
        m = create_method("mnad_pred", "smoke", gate_error=gate)
        m.model.eval()
        m.begin_scoring(["v"])
        m.reset_test_state()
        net_out = m.model(_batch(m.config, b=1)["input"])["output"].detach()
        m.score_batch({"input": _batch(m.config, b=1)["input"], "target": (net_out + 0.1).clamp(-1, 1)})
        assert (m.test_statistics()["test_time_updates"]["total"] == 1) == fires


def test_reference_loss_form_reproduces_the_public_code_scaling():
    m = create_method("mnad_pred", "smoke", loss_form="reference", lambda_c=0.3, lambda_s=0.2, alpha=1.0)
    batch = _batch(m.config)
    m.model.eval()
    losses = m.training_step(batch)
    out = m.model(batch["input"])
    q = out["queries"].reshape(-1, m.config.feature_dim)  # (B*K, C)
    items = m.model.memory
    top2 = (q @ items.T).topk(2, dim=1).indices  # the public code's gathering indices
    pos, neg = items[top2[:, 0]], items[top2[:, 1]]
    compact = torch.nn.MSELoss()(q, pos)
    separate = torch.nn.TripletMarginLoss(margin=1.0)(q, pos, neg)
    rec = torch.nn.MSELoss()(out["output"], batch["target"])
    torch.testing.assert_close(losses["compact"], compact)
    torch.testing.assert_close(losses["separate"], separate, atol=1e-5, rtol=1e-5)  # torch's eps=1e-6 in the norm
    torch.testing.assert_close(losses["loss"], rec + 0.3 * compact + 0.2 * separate, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("detach", [False, True])
def test_read_weight_detaching(detach):
    m = create_method("mnad_pred", "smoke", detach_read_weights=detach)
    net = m.model.eval()
    qmap, _ = net.encode(_batch(m.config)["input"])
    qmap = qmap.detach().requires_grad_(True)
    queries = qmap.flatten(2).transpose(1, 2)
    read, weights = memory.read(queries, net.memory)
    if detach:  # what MNADNet.forward does with the option on
        read = weights.detach() @ net.memory
    assert read.requires_grad != detach  # detached: the read passes no gradient to the queries (items are a buffer)
    if not detach:
        read.sum().backward()
        assert qmap.grad.abs().sum() > 0
    # the network's own forward: its input gradient is the one of the formula (read with or without detaching)
    torch.manual_seed(0)
    clip = _batch(m.config)["input"]

    def input_grad(fn):
        x = clip.clone().requires_grad_(True)
        fn(x).pow(2).sum().backward()
        return x.grad

    def by_formula(x, detached):
        qmap2, skips = net.encode(x)
        q2 = qmap2.flatten(2).transpose(1, 2)
        r2, w2 = memory.read(q2, net.memory)
        return net.decode(qmap2, w2.detach() @ net.memory if detached else r2, skips)

    own = input_grad(lambda x: net(x)["output"])
    torch.testing.assert_close(own, input_grad(lambda x: by_formula(x, detach)))
    assert not torch.allclose(own, input_grad(lambda x: by_formula(x, not detach)))


def test_item_initialisation():
    torch.manual_seed(0)
    positive = create_method("mnad_pred", "smoke", item_init="positive", feature_dim=512, memory_items=10).model.memory
    sphere = create_method("mnad_pred", "smoke", feature_dim=512, memory_items=10).model.memory
    for items in (positive, sphere):
        torch.testing.assert_close(items.norm(dim=1), torch.ones(10))
    assert (positive >= 0).all() and (sphere < 0).any()

    def mean_cosine(x):
        return float(((x @ x.T).sum() - x.shape[0]) / (x.shape[0] * (x.shape[0] - 1)))
    # E[x]^2 / E[x^2] = (1/4) / (1/3) = 0.75 for uniform [0, 1) entries; about 0 on the sphere (std ~ 1/sqrt(C))
    assert mean_cosine(positive) == pytest.approx(0.75, abs=0.03)
    assert abs(mean_cosine(sphere)) < 0.05


def test_test_time_update_counters_start_at_zero_each_pass():
    m = create_method("mnad_pred", "smoke", gamma=1e9)
    m.model.eval()
    batches = [_batch(m.config, b=1, seed=s) for s in range(3)]
    for _ in range(2):  # two scoring passes: the second must not add to the first
        m.begin_scoring(["a", "b"])
        m.reset_test_state()
        for batch in batches[:2]:
            m.score_batch(batch)
        m.reset_test_state()
        m.score_batch(batches[2])
        stats = m.test_statistics()["test_time_updates"]
        assert stats == {"per_video": {"a": 2, "b": 1}, "total": 3, "frames_scored": 3, "updated_share": 1.0}
    assert create_method("mnad_pred", "smoke", test_update=False).test_statistics() == {}


def test_reference_ablation_switches_every_public_code_choice():
    m = create_method("mnad_pred", "smoke", ablations=["reference"])
    cfg = m.config
    assert (cfg.loss_form, cfg.decoder, cfg.gate_error, cfg.detach_read_weights, cfg.item_init,
            cfg.score_distance) == ("reference", "reference", "squared", True, "positive", "squared")


def test_checkpoints_written_before_the_options_load_as_they_were_trained(random_layout, tmp_path):
    """A run from before the parity options has no `decoder`/`gate_error` in its config: it was trained with the
    lite decoder and scored with the norm gate, and loads as such; resuming it with today's defaults is refused."""
    from vadlab import engine
    from vadlab.errors import DataError
    from vadlab.runs import read_checkpoint, save_checkpoint

    run = tmp_path / "old"
    m = create_method("mnad_pred", "smoke", decoder="lite", gate_error="norm")
    engine.fit(m, random_layout, run, seed=0, device="cpu", progress=False)
    ckpt = run / engine.CHECKPOINT
    state = read_checkpoint(ckpt, "cpu")
    for new in ("decoder", "gate_error", "detach_read_weights", "item_init", "score_distance"):
        del state["config"][new]
    state["config"]["loss_form"] = "paper"
    save_checkpoint(ckpt, state)
    loaded = engine.load_run(run, "cpu")
    assert (loaded.config.decoder, loaded.config.gate_error) == ("lite", "norm")
    with pytest.raises(DataError, match="decoder 'lite' -> 'reference'"):
        engine.fit(create_method("mnad_pred", "smoke", epochs=2), random_layout, run, seed=0, device="cpu",
                   resume=True, progress=False)


def test_memory_comparison_reads_each_signal_of_both_reports(tmp_path):
    """Issue 28: the with/without-memory rows come from each report's own fields, the distance only with a memory,
    and the figure is drawn from them."""
    from vadlab.analysis.mnad import memory_comparison, plot_memory_comparison

    with_memory = {"micro_auc": 0.91, "per_signal_auc": {"neg_psnr": 0.905, "distance": 0.74},
                   "baseline_frame_difference": {"micro_auc": 0.912}, "test_time_updates": {"updated_share": 0.6}}
    without = {"micro_auc": 0.933, "per_signal_auc": {"neg_psnr": 0.933},
               "baseline_frame_difference": {"micro_auc": 0.912}}
    rows = memory_comparison(with_memory, without)
    assert rows[0][1:] == (0.91, 0.933) and rows[1][1:] == (0.905, 0.933) and rows[2][1:] == (0.74, None)
    assert rows[3][1:] == (0.912, 0.912) and rows[4][1:] == (0.6, None)
    path = plot_memory_comparison(rows, path=tmp_path / "cmp.png")
    assert (tmp_path / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path is not None
