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
    assert m.model.decoder.ups[0][0].in_channels == m.config.feature_dim  # queries alone, not [q, p_hat]
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
    from vadlab.data.layout import load_layout
    from vadlab.models.mnad import memory_diagnostics

    m = create_method("mnad_pred", "smoke")
    diag = memory_diagnostics(m, load_layout(random_layout).training)
    assert len(diag["item_usage"]) == 4 and abs(sum(diag["item_usage"]) - 1) < 1e-9
    assert 0.0 < diag["position_locked"] <= 1.0
    assert all(torch.isfinite(torch.tensor(diag[k])) for k in ("psnr_read", "psnr_mean_item", "psnr_zero_read"))
    with pytest.raises(ValueError, match="use_memory"):
        memory_diagnostics(create_method("mnad_pred", "smoke", use_memory=False), load_layout(random_layout).training)


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
