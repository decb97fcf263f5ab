"""vadlab.eval (scores, metrics) and vadlab.models.ops.psnr: hand-computed cases and sklearn cross-checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from vadlab.eval import metrics as M
from vadlab.eval import scores as S
from vadlab.eval.metrics import MetricsError
from vadlab.models.ops import PSNR_CAP_DB, psnr

NAN = np.nan


# ----------------------------------------------------------------------------------------------- psnr


def test_psnr_hand_computed():
    # 2x2 image, one pixel off by 0.1: mse = 0.01 / 4 = 0.0025 -> 10*log10(1/0.0025) = 26.0206 dB
    target = np.zeros((2, 2))
    pred = np.array([[0.1, 0.0], [0.0, 0.0]])
    assert psnr(pred, target) == pytest.approx(10 * math.log10(400.0))
    assert psnr(pred, target) == pytest.approx(26.020599913, abs=1e-8)
    # peak 255 on the same relative error gives the same PSNR
    assert psnr(pred * 255, target * 255, peak=255.0) == pytest.approx(10 * math.log10(400.0))


def test_psnr_torch_numpy_agree_and_batch_shape():
    rng = np.random.default_rng(0)
    pred = rng.random((5, 3, 8, 6)).astype(np.float32)
    target = rng.random((5, 3, 8, 6)).astype(np.float32)
    out_np = psnr(pred, target)
    out_t = psnr(torch.from_numpy(pred), torch.from_numpy(target))
    assert isinstance(out_t, torch.Tensor) and out_t.shape == (5,)
    assert isinstance(out_np, np.ndarray) and out_np.shape == (5,) and out_np.dtype == np.float64
    np.testing.assert_allclose(out_t.numpy(), out_np, rtol=1e-5)
    # each batch element is the PSNR of that frame alone
    assert out_np[2] == pytest.approx(psnr(pred[2], target[2]))
    # half inputs are computed in float32
    assert psnr(torch.from_numpy(pred).half(), torch.from_numpy(target).half()).dtype == torch.float32


def test_psnr_perfect_reconstruction_is_finite_cap():
    x = np.random.default_rng(1).random((3, 1, 4, 4))
    np.testing.assert_array_equal(psnr(x, x), np.full(3, PSNR_CAP_DB))
    t = torch.from_numpy(x).float()
    out = psnr(t, t)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.full((3,), PSNR_CAP_DB))
    # a tiny but non-zero error never exceeds the cap either
    assert psnr(x + 1e-12, x).max() <= PSNR_CAP_DB


def test_psnr_bad_shapes():
    with pytest.raises(MetricsError, match="shape"):
        psnr(np.zeros((2, 1, 4, 4)), np.zeros((2, 1, 4, 5)))
    with pytest.raises(MetricsError, match="dimensions"):
        psnr(np.zeros(4), np.zeros(4))


# ------------------------------------------------------------------------------------ minmax / normalise


def test_minmax_by_hand_nan_and_constant():
    np.testing.assert_allclose(S.minmax([2.0, 4.0, 3.0, 6.0]), [0.0, 0.5, 0.25, 1.0])
    out = S.minmax([NAN, 1.0, 3.0, NAN, 2.0])
    assert np.isnan(out[0]) and np.isnan(out[3])
    np.testing.assert_allclose(out[[1, 2, 4]], [0.0, 1.0, 0.5])
    const = S.minmax([NAN, 5.0, 5.0, 5.0])
    assert np.isnan(const[0])
    np.testing.assert_array_equal(const[1:], [0.0, 0.0, 0.0])
    assert np.isnan(S.minmax([NAN, NAN])).all()
    # the input is not modified
    x = np.array([1.0, 2.0])
    S.minmax(x)
    np.testing.assert_array_equal(x, [1.0, 2.0])


def test_normalise_modes():
    sig = {"a": np.array([0.0, 1.0, NAN]), "b": np.array([2.0, 4.0])}
    video = S.normalise(sig, "video")
    np.testing.assert_allclose(video["a"][:2], [0.0, 1.0])
    assert np.isnan(video["a"][2])
    np.testing.assert_allclose(video["b"], [0.0, 1.0])
    glob = S.normalise(sig, "global")  # pooled min 0, max 4
    np.testing.assert_allclose(glob["a"][:2], [0.0, 0.25])
    assert np.isnan(glob["a"][2])
    np.testing.assert_allclose(glob["b"], [0.5, 1.0])
    raw = S.normalise(sig, "none")
    np.testing.assert_array_equal(raw["b"], [2.0, 4.0])
    assert raw["b"].dtype == np.float64
    const = S.normalise({"a": np.array([3.0, 3.0]), "b": np.array([3.0, NAN])}, "global")
    np.testing.assert_array_equal(const["a"], [0.0, 0.0])
    assert const["b"][0] == 0.0 and np.isnan(const["b"][1])
    with pytest.raises(MetricsError, match="unknown normalisation mode 'per-video'"):
        S.normalise(sig, "per-video")


# ------------------------------------------------------------------------------------ fuse


def test_fuse_eq16_identity():
    # Eq. 16: S = lam * (1 - g(P)) + (1 - lam) * g(D), and 1 - g(P) == g(-P) under min-max
    rng = np.random.default_rng(2)
    lam = 0.6
    P = {"v1": 20 + 10 * rng.random(30), "v2": 25 + 5 * rng.random(20)}
    D = {"v1": rng.random(30), "v2": 3 * rng.random(20)}
    fused = S.fuse({"neg_psnr": {v: -p for v, p in P.items()}, "distance": D}, {"neg_psnr": lam, "distance": 1 - lam})
    for v in P:
        np.testing.assert_allclose(1 - S.minmax(P[v]), S.minmax(-P[v]), atol=1e-12)
        expected = lam * (1 - S.minmax(P[v])) + (1 - lam) * S.minmax(D[v])
        np.testing.assert_allclose(fused[v], expected, atol=1e-12)


def test_fuse_weights_sum_and_scale():
    rng = np.random.default_rng(3)
    sig = {"x": {"v": rng.random(50)}, "y": {"v": rng.random(50)}}
    labels = {"v": (rng.random(50) > 0.7).astype(int)}
    fused = S.fuse(sig, {"x": 0.3, "y": 0.7})
    # weights summing to 1 over [0, 1] signals keep the score in [0, 1]
    assert fused["v"].min() >= 0.0 and fused["v"].max() <= 1.0
    # weights need not sum to 1: a common scale changes nothing but the scale
    scaled = S.fuse(sig, {"x": 3.0, "y": 7.0})
    np.testing.assert_allclose(scaled["v"], 10 * fused["v"])
    assert M.frame_auc(scaled, labels) == pytest.approx(M.frame_auc(fused, labels))
    # a single signal with weight 1 is its normalised self
    np.testing.assert_allclose(S.fuse(sig, {"x": 1.0, "y": 0.0})["v"], S.minmax(sig["x"]["v"]))


def test_fuse_global_mode_and_nan():
    sig = {
        "x": {"a": np.array([NAN, 0.0, 2.0]), "b": np.array([4.0, 1.0])},
        "y": {"a": np.array([1.0, 1.0, 3.0]), "b": np.array([NAN, 2.0])},
    }
    out = S.fuse(sig, {"x": 0.5, "y": 0.5}, mode="global")
    # x pooled over [0, 4], y pooled over [1, 3]
    assert np.isnan(out["a"][0]) and np.isnan(out["b"][0])  # NaN in any weighted signal -> NaN
    np.testing.assert_allclose(out["a"][1:], [0.5 * 0.0 + 0.5 * 0.0, 0.5 * 0.5 + 0.5 * 1.0])
    np.testing.assert_allclose(out["b"][1:], [0.5 * 0.25 + 0.5 * 0.5])
    # a zero-weight signal's NaN does not leak into the fusion
    only_x = S.fuse(sig, {"x": 1.0, "y": 0.0}, mode="none")
    np.testing.assert_array_equal(only_x["b"], [4.0, 1.0])


def test_fuse_errors():
    sig = {"x": {"a": np.zeros(3)}, "y": {"a": np.zeros(3)}}
    with pytest.raises(MetricsError, match="no weight for signal"):
        S.fuse(sig, {"x": 1.0})
    with pytest.raises(MetricsError, match="unknown signal"):
        S.fuse(sig, {"x": 1.0, "y": 0.0, "z": 1.0})
    with pytest.raises(MetricsError, match=">= 0"):
        S.fuse(sig, {"x": 1.0, "y": -1.0})
    with pytest.raises(MetricsError, match="all weights are 0"):
        S.fuse(sig, {"x": 0.0, "y": 0.0})
    with pytest.raises(MetricsError, match="different videos"):
        S.fuse({"x": {"a": np.zeros(3)}, "y": {"b": np.zeros(3)}}, {"x": 1.0, "y": 1.0})
    with pytest.raises(MetricsError, match="video 'a' has 4 frames in signal 'y'"):
        S.fuse({"x": {"a": np.zeros(3)}, "y": {"a": np.zeros(4)}}, {"x": 1.0, "y": 1.0})
    with pytest.raises(MetricsError, match="video 'a'.*signal 'x'.*infinite"):
        S.fuse({"x": {"a": np.array([0.0, np.inf])}}, {"x": 1.0})


# ------------------------------------------------------------------------------------ frame AUC


def test_frame_auc_by_hand_counted_pairs():
    # positives 0.8, 0.4, 0.6; negatives 0.1, 0.5, 0.4, 0.3 -> 12 pairs.
    # 0.8 beats all 4 (4); 0.4 beats 0.1 and 0.3, ties 0.4 (2.5); 0.6 beats all 4 (4): 10.5 / 12 = 0.875.
    # Spread over two videos with unscored (NaN) frames in front, as a predictor leaves them.
    scores = {"v1": np.array([NAN, 0.8, 0.1, 0.5]), "v2": np.array([NAN, NAN, 0.4, 0.6, 0.4, 0.3])}
    labels = {"v1": np.array([1, 1, 0, 0]), "v2": np.array([0, 1, 1, 1, 0, 0])}
    assert M.frame_auc(scores, labels) == pytest.approx(10.5 / 12)
    # the NaN frames' labels (a positive and a negative here) take no part
    report = M.evaluate({"s": scores}, {"s": 1.0}, labels)
    assert report["frames_left_out"] == 3 and report["left_out_per_video"] == {"v1": 1, "v2": 2}
    assert report["frames_total"] == 10 and report["frames_scored"] == 7


def test_frame_auc_matches_sklearn_random():
    rng = np.random.default_rng(4)
    scores, labels = {}, {}
    for i in range(5):
        n = int(rng.integers(20, 60))
        y = (rng.random(n) > 0.6).astype(int)
        s = rng.normal(size=n) + y
        s[: int(rng.integers(0, 5))] = NAN
        scores[f"v{i}"], labels[f"v{i}"] = s, y
    s_all = np.concatenate(list(scores.values()))
    y_all = np.concatenate(list(labels.values()))
    keep = ~np.isnan(s_all)
    assert M.frame_auc(scores, labels) == pytest.approx(roc_auc_score(y_all[keep], s_all[keep]))


def test_per_video_normalisation_fixes_offsets_global_does_not():
    # Within each video the anomalies score highest, but video b's whole range sits above video a's,
    # so pooled raw scores rank b's normal frames above a's anomalies.
    sig = {"a": np.array([0.0, 0.1, 0.2, 0.9, 1.0]), "b": np.array([5.0, 5.2, 5.1, 6.0, 5.3])}
    labels = {"a": np.array([0, 0, 0, 1, 1]), "b": np.array([0, 0, 0, 1, 0])}
    raw = M.frame_auc(S.normalise(sig, "none"), labels)
    glob = M.frame_auc(S.normalise(sig, "global"), labels)
    video = M.frame_auc(S.normalise(sig, "video"), labels)
    assert video == pytest.approx(1.0)
    assert raw < 0.9
    assert glob == pytest.approx(raw)  # one affine map over the pool cannot change the ranking
    report = M.evaluate({"s": sig}, {"s": 1.0}, labels)
    assert report["micro_auc"] == pytest.approx(video)
    assert report["auc_global_norm"] == pytest.approx(raw)
    assert report["auc_raw"] == pytest.approx(raw)


def test_macro_skips_single_class_videos():
    scores = {
        "both": np.array([0.1, 0.9, 0.2, 0.8]),  # AUC 1.0
        "mixed": np.array([0.7, 0.2, 0.5, 0.6]),  # AUC by sklearn below
        "normal_only": np.array([0.5, 0.6]),
        "both_until_nan": np.array([NAN, 0.3, 0.4]),  # the only positive is unscored
    }
    labels = {
        "both": np.array([0, 1, 0, 1]),
        "mixed": np.array([0, 1, 0, 1]),
        "normal_only": np.array([0, 0]),
        "both_until_nan": np.array([1, 0, 0]),
    }
    mixed = roc_auc_score(labels["mixed"], scores["mixed"])
    auc, n = M.macro_auc(scores, labels)
    assert n == 2
    assert auc == pytest.approx((1.0 + mixed) / 2)
    with pytest.raises(MetricsError, match="macro AUC is undefined"):
        M.macro_auc({"n": np.array([0.1, 0.2])}, {"n": np.array([0, 0])})
    per_video = M.video_aucs(scores, labels)  # what macro_auc averages, one value per video
    assert per_video["both"] == 1.0 and per_video["mixed"] == pytest.approx(mixed)
    assert np.isnan(per_video["normal_only"]) and np.isnan(per_video["both_until_nan"])


# ------------------------------------------------------------------------------------ EER


def test_eer_hand_cases():
    assert M.eer([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    # ROC points (0,0), (0,.5), (.5,1), (1,1) (the tie at 0.5 makes a diagonal step): FNR - FPR goes
    # .5 -> -.5 on the segment from (0,.5) to (.5,1); crossing at its middle, FPR = FNR = 0.25.
    assert M.eer([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]) == pytest.approx(0.25)
    # a crossing on a ROC vertex: one negative above one of four positives -> FPR = FNR = 0.25
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.7, 0.6, 0.8, 0.9, 0.95]
    assert M.eer(y, s) == pytest.approx(0.25)
    # reversed scores: everything wrong
    assert M.eer([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(1.0)
    # random scores: EER near 0.5, NaN dropped
    rng = np.random.default_rng(5)
    s = rng.random(4000)
    s[:10] = NAN
    assert abs(M.eer(rng.integers(0, 2, 4000), s) - 0.5) < 0.05


def test_eer_errors():
    with pytest.raises(MetricsError, match="one class"):
        M.eer([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(MetricsError, match="3 scores but 2 labels"):
        M.eer([0, 1], [0.1, 0.2, 0.3])


# ------------------------------------------------------------------------------------ per type, pixel


def test_per_type_auc_vs_sklearn():
    rng = np.random.default_rng(6)
    scores, labels, types = {}, {}, {}
    for i in range(3):
        n = 40
        t = np.array(["normal"] * n, dtype=object)
        t[10:15] = "speed"
        t[25:30] = "appearance" if i < 2 else "speed"
        y = (t != "normal").astype(int)
        s = rng.normal(size=n) + 2.0 * (t == "speed") + 0.5 * (t == "appearance")
        s[:4] = NAN
        scores[f"v{i}"], labels[f"v{i}"], types[f"v{i}"] = s, y, t
    out = M.per_type_auc(scores, labels, types)
    assert set(out) == {"speed", "appearance"}
    s_all = np.concatenate(list(scores.values()))
    t_all = np.concatenate(list(types.values()))
    keep = ~np.isnan(s_all)
    for name in out:
        sel = keep & ((t_all == "normal") | (t_all == name))
        assert out[name] == pytest.approx(roc_auc_score(t_all[sel] == name, s_all[sel]))
    assert out["speed"] > out["appearance"]
    bad = dict(types, v0=np.array(["normal"] * 40))
    with pytest.raises(MetricsError, match="video 'v0': frame 10 is labelled anomalous but typed 'normal'"):
        M.per_type_auc(scores, labels, bad)
    with pytest.raises(MetricsError, match="video 'v1'.*types"):
        M.per_type_auc(scores, labels, dict(types, v1=np.array(["normal"] * 39)))


def test_pixel_auc_vs_sklearn():
    rng = np.random.default_rng(7)
    maps, masks = {}, {}
    for i, n in enumerate((3, 5)):
        g = np.zeros((n, 8, 10), dtype=bool)
        g[1:, 2:5, 3:7] = True
        m = rng.random((n, 8, 10)) + 0.8 * g
        m[0] = NAN  # an unscored frame
        maps[f"v{i}"], masks[f"v{i}"] = m, g
    m_all = np.concatenate([m[1:].ravel() for m in maps.values()])
    g_all = np.concatenate([g[1:].ravel() for g in masks.values()])
    assert M.pixel_auc(maps, masks) == pytest.approx(roc_auc_score(g_all, m_all))
    with pytest.raises(MetricsError, match="video 'v1'.*resize"):
        M.pixel_auc(dict(maps, v1=maps["v1"][:, :4]), masks)
    with pytest.raises(MetricsError, match="video 'v1' is in maps but not in masks"):
        M.pixel_auc(maps, {"v0": masks["v0"]})


# ------------------------------------------------------------------------------------ evaluate


def test_evaluate_json_and_counts():
    rng = np.random.default_rng(8)
    labels, types, neg_psnr, dist = {}, {}, {}, {}
    for i in range(4):
        n = 30 + 5 * i
        y = np.zeros(n, dtype=int)
        y[12:20] = 1
        t = np.where(y == 1, "speed" if i % 2 else "location", "normal")
        neg_psnr[f"v{i}"] = np.r_[np.full(4, NAN), -30 + rng.normal(size=n - 4) + 2 * y[4:]] + i
        dist[f"v{i}"] = np.r_[np.full(4, NAN), rng.random(n - 4) + 0.5 * y[4:]]
        labels[f"v{i}"], types[f"v{i}"] = y, t
    sig = {"neg_psnr": neg_psnr, "distance": dist}
    w = {"neg_psnr": np.float64(0.6), "distance": 0.4}
    rep = M.evaluate(sig, w, labels, types)
    text = json.dumps(rep)  # plain Python types only
    assert json.loads(text) == rep
    for key in ("micro_auc", "macro_auc", "eer", "auc_global_norm", "auc_raw"):
        assert type(rep[key]) is float and 0.0 <= rep[key] <= 1.0, key
    assert rep["macro_videos"] == 4 and rep["videos"] == 4
    assert rep["frames_total"] == sum(len(y) for y in labels.values())
    assert rep["frames_scored"] + rep["frames_left_out"] == rep["frames_total"]
    assert rep["left_out_per_video"] == {f"v{i}": 4 for i in range(4)}
    assert sum(rep["left_out_per_video"].values()) == rep["frames_left_out"]
    assert set(rep["per_signal_auc"]) == {"neg_psnr", "distance"}
    assert set(rep["per_type_auc"]) == {"speed", "location"}
    fused = S.fuse(sig, w)
    assert rep["micro_auc"] == pytest.approx(M.frame_auc(fused, labels))
    assert rep["per_signal_auc"]["distance"] == pytest.approx(M.frame_auc(S.normalise(dist, "video"), labels))
    assert "per_type_auc" not in M.evaluate(sig, w, labels)


# ------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "scores, labels, message",
    [
        ({"v": np.zeros(4)}, {"v": np.array([0, 1, 0])}, "video 'v': 4 scores but 3 labels"),
        ({"v": np.zeros(2), "w": np.zeros(2)}, {"v": np.array([0, 1])}, "video 'w' is in scores but not in labels"),
        ({"v": np.zeros(2)}, {"v": [0, 1], "w": [0, 1]}, "video 'w' is in labels but not in scores"),
        ({"v": np.zeros(3)}, {"v": np.array([0, 2, 1])}, "video 'v': labels must be 0/1, got 2 at frame 1"),
        ({"v": np.zeros(2)}, {"v": np.array([0.0, NAN])}, "video 'v': labels must be 0/1"),
        ({"v": np.zeros(2)}, {"v": np.array(["a", "b"])}, "video 'v': labels must be 0/1"),
        ({"v": np.array([0.1, 0.2]), "w": np.full(3, NAN)}, {"v": [0, 1], "w": [0, 1, 0]}, "'w': no scored frame"),
        ({"v": np.array([NAN, 0.2, 0.3])}, {"v": [1, 0, 0]}, "video 'v'.*normal \\(0\\); AUC is undefined"),
        ({"v": np.array([0.2, 0.3]), "w": np.array([0.5])}, {"v": [1, 1], "w": [1]}, "videos .*undefined"),
        ({"v": np.zeros((2, 2))}, {"v": np.array([0, 1])}, "video 'v': scores must be 1-D"),
        ({"v": np.array([0.1, np.inf])}, {"v": np.array([0, 1])}, "video 'v'.*infinite"),
        ({}, {}, "no videos"),
    ],
)
def test_validation_errors(scores, labels, message):
    with pytest.raises(MetricsError, match=message) as info:
        M.frame_auc(scores, labels)
    assert isinstance(info.value, ValueError)


def test_validation_errors_reach_every_entry_point():
    scores, labels = {"v": np.zeros(4)}, {"v": np.array([0, 1, 0])}
    with pytest.raises(ValueError, match="video 'v': 4 scores but 3 labels"):
        M.macro_auc(scores, labels)
    with pytest.raises(ValueError, match="video 'v': 4 scores but 3 labels"):
        M.per_type_auc(scores, labels, {"v": np.array(["normal"] * 3)})
    with pytest.raises(ValueError, match="video 'v': 4 scores but 3 labels"):
        M.evaluate({"s": scores}, {"s": 1.0}, labels)
    with pytest.raises(ValueError, match="video 'w' is in scores but not in labels"):
        M.evaluate({"s": {"v": np.zeros(3), "w": np.zeros(3)}}, {"s": 1.0}, {"v": np.array([0, 1, 0])})
    with pytest.raises(ValueError, match="AUC is undefined"):
        M.evaluate({"s": {"v": np.arange(3.0)}}, {"s": 1.0}, {"v": np.array([0, 0, 0])})
