"""The explorer and the per-video maps behind it and the error-map figures, on real smoke runs of every registered
method. The widget is driven headlessly: its widgets' values are set, and the messages the browser sends (the mouse
over a panel, a click on the score curves) are handed to the widgets as the browser would; then what they hold is
checked."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from vadlab import engine, explore
from vadlab.data.layout import load_layout
from vadlab.registry import create_method, list_methods


@pytest.mark.parametrize("method", list_methods())
def test_video_maps_score_is_the_evaluation(method, smoke_run, tiny_synthetic):
    """The explorer's scores are the protocol's: the same fused per-video score as `vadlab evaluate` wrote."""
    run = smoke_run(method)
    engine.evaluate_run(run, tiny_synthetic, device="cpu", progress=False)
    scores = engine.load_scores(run)["score"]
    trained = engine.load_run(run, "cpu")
    for video in load_layout(tiny_synthetic).testing:
        maps = explore.video_maps(trained, video)
        np.testing.assert_allclose(maps.score, scores[video.name], rtol=1e-6, atol=1e-9, equal_nan=True)
        scored = maps.scored
        n = len(video)
        assert maps.frames.shape[0] == maps.output.shape[0] == maps.error.shape[0] == n
        assert np.isfinite(maps.output[scored]).all() and np.isnan(maps.output[~scored]).all()
        if trained.config.channels == 1:  # the error map is the squared error of the shown frame and output
            np.testing.assert_allclose(maps.error[scored], (maps.output[scored] - maps.frames[scored]) ** 2,
                                       atol=1e-5)
        assert maps.masks is not None and maps.masks.shape == maps.frames.shape
        names = set(trained.memory_spaces(trained.clip(video, int(np.flatnonzero(scored)[0]))))
        assert set(maps.spaces) == names
        for space in maps.spaces.values():
            values = space.values[scored].astype(np.float64)  # (n_scored, K, M)
            assert np.isfinite(values).all()
            if space.kind == "probability":
                np.testing.assert_allclose(values.sum(-1), 1.0, atol=5e-3)  # float16 storage


def _shown(panel, scale: float = 1.0, colorscale: str | None = None) -> np.ndarray:
    """The values a panel shows, read back from its PNG: grey levels, or the nearest colour of the colour scale
    (every level of a plotly sequential scale is a distinct colour), times the panel's colour scale."""
    pixels = explore.decode_panel(panel.value).astype(np.int64)
    if colorscale is not None:
        lut = explore._lut(colorscale).astype(np.int64)  # (256, 3)
        pixels = ((pixels[..., None, :] - lut) ** 2).sum(-1).argmin(-1)  # (h, w) level
    return pixels / 255.0 * scale


def _curve(curves, i: int) -> np.ndarray:
    """The scores curve `i` sends to the browser (None, an unscored frame, as NaN)."""
    return np.array([np.nan if v is None else v for v in curves.curves[i]["y"]], float)


def _expected(a: np.ndarray, scale: float = 1.0) -> np.ndarray:
    return np.clip(np.nan_to_num(a, nan=0.0), 0.0, scale)


def test_panel_png_round_trip():
    """A panel is sent as a PNG of 256 levels of its scale: grey or a colour scale, NaN as 0, clipped at the scale."""
    a = np.array([[0.0, 0.25, np.nan], [0.5, 2.0, 1.0]], np.float32)
    grey = explore.decode_panel(explore._png(a, 1, 1.0))
    assert grey.shape == (2, 3) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey, [[0, 64, 0], [128, 255, 255]])
    rgb = explore.decode_panel(explore._png(a, 1, 2.0, "Inferno"))
    lut = explore._lut("Inferno")
    assert rgb.shape == (2, 3, 3) and len({tuple(c) for c in lut}) == 256
    np.testing.assert_array_equal(rgb, lut[[[0, 32, 0], [64, 255, 128]]])
    assert explore.decode_panel(explore._png(np.zeros((10, 7)), 2, 1.0)).shape == (5, 4)  # subsampled


def test_explorer_two_runs_slider_hover_click_video(smoke_run, tiny_synthetic):
    ex = explore.Explorer(smoke_run("mnad_pred"), tiny_synthetic, compare=smoke_run("toy_dual"), device="cpu")
    curves = ex.curves
    video = ex.video.value
    ma, mb = ex.maps(0, video), ex.maps(1, video)
    assert [c["label"] for c in curves.curves] == ["mnad_pred", "toy_dual"]

    t = int(np.flatnonzero(ma.scored & mb.scored)[2])
    ex.frame.value = t  # the slider (panels are sent as PNGs of 256 levels of their colour scale)
    tol = 0.51 / 255
    np.testing.assert_allclose(_shown(ex.panels[0]["frame"]), ma.frames[t], atol=tol)
    err_scale = ex._scales[0]["error"]
    assert err_scale == pytest.approx(np.percentile(ma.error[np.isfinite(ma.error)], 99.5))  # fixed per video
    np.testing.assert_allclose(_shown(ex.panels[0]["error"], err_scale, "Inferno"),
                               _expected(ma.error[t], err_scale), atol=tol * err_scale)
    map_scale = ex._scales[0]["map"]
    np.testing.assert_allclose(_shown(ex.panels[0]["map"], map_scale, "Inferno"),
                               _expected(ma.anomaly_map[t], map_scale), atol=tol * map_scale)
    np.testing.assert_allclose(_shown(ex.panels[1]["output"]), mb.output[t], atol=tol)
    assert curves.frame == t  # the frame line on the score curves
    assert f"frame {t}</b>" in ex.status.value and f"{ma.score[t]:.3f}" in ex.status.value
    np.testing.assert_allclose(_curve(curves, 1), mb.score, atol=5e-5, equal_nan=True)  # 4 decimals sent
    assert np.array_equal(np.asarray(curves.truth) > 0, ma.labels > 0)  # ground truth shaded

    # the mouse over the bottom-left corner of run 1's frame: the weights of the query there, in both rows
    h, w = ma.frames.shape[1:]
    ex.panels[0]["frame"].hover = [(h - 0.5) / h, 0.5 / w]  # what the browser sends: fractions of the image
    space = ma.spaces["memory"]
    gh, gw = space.grid
    np.testing.assert_allclose(ex.bars[0].values, space.values[t, (gh - 1) * gw].astype(np.float32))
    assert ex.panels[0]["frame"].box == [(gh - 1) / gh, 0.0, 1.0, 1 / gw]  # the query outlined, bottom-left
    other = mb.spaces[ex.space.value] if ex.space.value in mb.spaces else next(iter(mb.spaces.values()))
    ogh, ogw = other.grid
    corner = (ogh - 1) * ogw
    np.testing.assert_allclose(ex.bars[1].values, other.values[t, corner].astype(np.float32))
    ex.space.value = "normality"  # the space chooser: run 2 shows its normality memory, run 1 its only one
    np.testing.assert_allclose(ex.bars[1].values,
                               mb.spaces["normality"].values[t, corner].astype(np.float32))

    # clicking the score curve jumps to that frame; the weights follow the frame for the same query
    t2 = int(np.flatnonzero(ma.scored)[-1])
    curves._handle_custom_msg({"jump": t2}, [])  # what the browser sends on a click at frame t2
    assert ex.frame.value == t2 and curves.frame == t2
    np.testing.assert_allclose(_shown(ex.panels[0]["frame"]), ma.frames[t2], atol=0.51 / 255)
    np.testing.assert_allclose(ex.bars[0].values,
                               space.values[t2, (gh - 1) * gw].astype(np.float32))

    # play drives the slider, linked in the browser (no kernel trip per step)
    assert (ex._play_link.source, ex._play_link.target) == ((ex.play, "value"), (ex.frame, "value"))

    # another video: curves, ground truth and slider range follow
    second = next(v for v in ex.video.options if v != video)
    ex.video.value = second
    n2 = len(ex.layout.video(second))
    assert ex.frame.max == n2 - 1 and len(curves.curves[0]["y"]) == n2 and len(curves.truth) == n2
    np.testing.assert_allclose(_curve(curves, 0), ex.maps(0, second).score, atol=5e-5, equal_nan=True)
    assert all(ms > 0 for ms in ex.step_ms)
    stats = explore.benchmark_steps(ex, 5)
    assert stats["steps"] == 5 and stats["frames"] == n2


def test_explorer_method_without_memory(tiny_synthetic, tmp_path):
    """A method whose memory_spaces is {}: the weights panel stays empty, the space chooser is off, the rest works."""
    run = tmp_path / "nomem"
    engine.fit(create_method("mnad_pred", "smoke", ablations=["no_memory"]), tiny_synthetic, run, device="cpu",
               progress=False)
    ex = explore.Explorer(run, device="cpu")  # the dataset from run.json
    m = ex.maps(0, ex.video.value)
    assert m.spaces == {} and ex.space.disabled
    t = int(np.flatnonzero(m.scored)[1])
    ex.frame.value = t
    ex.hover_at(0.5, 0.5)
    assert ex.bars[0].values == [] and ex.panels[0]["frame"].box == []
    np.testing.assert_allclose(_shown(ex.panels[0]["output"]), m.output[t], atol=0.51 / 255)


def test_error_map_figure_most_and_least_anomalous(smoke_run, tiny_synthetic, tmp_path):
    trained = engine.load_run(smoke_run("mnad_pred"), "cpu")
    layout = load_layout(tiny_synthetic)
    video = max(layout.testing, key=lambda v: v.n_anomalous)
    maps = explore.video_maps(trained, video)
    most, least = maps.extremes(2)
    assert min(maps.score[most]) >= max(maps.score[least])
    assert np.nanmax(maps.score) == maps.score[most[0]] and np.nanmin(maps.score) == maps.score[least[0]]
    fig = explore.plot_video_error_maps(maps, k=2, path=tmp_path / "err.png")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 4 * 4  # 4 rows (2 most, 2 least) x (frame, output, error, anomaly map)
    np.testing.assert_allclose(images[0].images[0].get_array(), maps.frames[most[0]])
    with_mask = [i for i, t in enumerate(most + least) if maps.masks[t].any()]
    for ax in images:  # a mask outline (contour) exactly on the frame, error and map panels of masked rows
        row = images.index(ax) // 4
        col = images.index(ax) % 4
        assert bool(ax.collections) == (row in with_mask and col != 1)
    plt.close(fig)
    assert (tmp_path / "err.png").read_bytes()[:4] == b"\x89PNG"


def test_the_error_map_frames_are_spread_over_the_video():
    """Neighbouring frames of one event say nothing new: the picks keep `gap` frames apart and take the second
    most anomalous frame from another ground-truth event when there is one."""
    n = 60
    score = np.linspace(0.0, 1.0, n) ** 2  # the top frames are neighbours at the end of the video
    score[20] = 0.9  # a high frame of a second event
    labels = np.zeros(n, np.uint8)
    labels[15:25] = 1
    labels[50:] = 1
    maps = explore.VideoMaps("v", "m", *(np.zeros((n, 2, 2), np.float32),) * 3, None, None, score, labels)
    most, least = maps.extremes(2, gap=5)
    assert most == [n - 1, 20]  # the top frame, then the best of the other event (not frame n - 2)
    assert least[0] == 0 and abs(least[1] - least[0]) >= 5 and not set(most) & set(least)
    most, _ = explore.VideoMaps("v", "m", *(np.zeros((n, 2, 2), np.float32),) * 3, None, None, score,
                                np.zeros(n, np.uint8)).extremes(3)
    assert min(abs(a - b) for a in most for b in most if a != b) >= 6  # default gap: a tenth of 60 frames
