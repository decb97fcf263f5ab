"""vadlab.viz memory figures for any memory size: MNAD's 10 items, STD's 32 clusters, MAAM-Net's hundreds."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from vadlab import viz

PNG = b"\x89PNG\r\n\x1a\n"


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 2048, (path.name, len(data))


def _sample(n_items: int, n: int = 120, dim: int = 8, seed: int = 0, grid: bool = True) -> dict:
    """Queries around the items (so t-SNE has structure), as `vadlab.analysis.sample_memory_space` returns them."""
    rng = np.random.default_rng(seed)
    items = rng.normal(size=(n_items, dim))  # (M, C)
    nearest = rng.integers(0, n_items, n)  # (N,)
    queries = items[nearest] + 0.3 * rng.normal(size=(n, dim))  # (N, C)
    return {"queries": queries, "items": items, "nearest": nearest,
            "row": rng.integers(0, 8, n) if grid else np.full(n, -1), "anomalous": rng.random(n) < 0.2,
            "space": "memory", "method": "test"}


@pytest.mark.parametrize("n_items", [3, 32, 500])
def test_item_colours_any_size(n_items):
    cmap, norm, _ = viz.item_colours(n_items)
    rgba = cmap(norm(np.arange(n_items)))  # (M, 4)
    assert rgba.shape == (n_items, 4)
    if n_items <= 10:  # item i in the i-th colour-blind-safe colour
        from matplotlib.colors import to_rgb

        np.testing.assert_allclose(rgba[:, :3], np.array([to_rgb(c) for c in viz.COLOURBLIND10[:n_items]]))
    else:  # the first and the last item differ, nothing is clipped to one end of the map
        assert not np.allclose(rgba[0], rgba[-1]) and 0.0 <= norm(n_items - 1) <= 1.0


@pytest.mark.parametrize("n_items", [3, 32, 500])
def test_memory_maps_and_tsne_any_size(n_items, tmp_path):
    torch.manual_seed(0)
    batch = {"target": torch.rand(1, 1, 32, 32) * 2 - 1}  # (B, Ch, H, W) in [-1, 1]
    inspected = {"output": torch.rand(1, 1, 32, 32) * 2 - 1,
                 "weights": torch.softmax(torch.randn(1, 64, n_items), -1)}  # (B, K = 8 x 8, M)
    fig = viz.plot_memory_maps(batch, inspected, title=f"{n_items} items", path=tmp_path / "maps.png")
    plt.close(fig)
    _check_png(tmp_path / "maps.png")

    fig = viz.plot_memory_tsne(_sample(n_items), path=tmp_path / "tsne.png")
    assert len(fig.axes) >= 4  # three panels and the item colourbar
    plt.close(fig)
    _check_png(tmp_path / "tsne.png")


def test_tsne_several_spaces_and_no_grid(tmp_path):
    """DREAM-like: two named spaces of different sizes, one row each; a space without a grid has no row panel."""
    spaces = {"normality": _sample(10, seed=1), "abnormality": _sample(40, seed=2, grid=False)}
    fig = viz.plot_memory_tsne(spaces, title="two spaces", path=tmp_path / "two.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert "nearest item (normality)" in titles and "nearest item (abnormality)" in titles
    assert titles.count("row of the query in the frame") == 1
    plt.close(fig)
    _check_png(tmp_path / "two.png")


def test_memory_maps_non_square_grid(tmp_path):
    batch = {"target": torch.zeros(1, 1, 16, 32)}
    inspected = {"output": torch.zeros(1, 1, 16, 32), "weights": torch.softmax(torch.randn(1, 4 * 8, 32), -1)}
    fig = viz.plot_memory_maps(batch, inspected, grid=(4, 8), path=tmp_path / "grid.png")
    assert fig.axes[3].images[0].get_array().shape == (4, 8)
    plt.close(fig)
    _check_png(tmp_path / "grid.png")


@pytest.mark.parametrize("n_items,grid", [(3, (4, 8)), (500, None)])
def test_space_maps_any_size(n_items, grid, tmp_path):
    """`plot_space_maps` on a `MemorySpace` (what `Method.memory_spaces` returns), with and without a grid."""
    from vadlab.models.base import MemorySpace

    queries = torch.randn(1, 32, 6)  # (B, K, C)
    items = torch.randn(n_items, 6)  # (M, C)
    weights = torch.softmax(queries @ items.T, -1) if grid else None  # (B, K, M); None: nearest by distance
    space = MemorySpace(queries, items, weights, grid=grid)
    fig = viz.plot_space_maps({"target": torch.zeros(1, 1, 16, 32)}, space, title="space", path=tmp_path / "s.png")
    assert len(fig.axes[0].images) == 1 and fig.axes[1].images[0].get_array().shape == (grid or (1, 32))
    plt.close(fig)
    _check_png(tmp_path / "s.png")


def test_history_plot_takes_terms_that_start_late_and_skips_text(tmp_path):
    """A staged method logs a term from its second stage on; the engine may add a text `warning` to a record."""
    history = [{"epoch": 1, "lr": 1e-3, "seconds": 1.0, "loss": 1.0, "rec": 1.0},
               {"epoch": 2, "lr": 1e-3, "seconds": 1.0, "loss": 0.9, "rec": 0.5, "triplet": 0.4,
                "warning": "loss unchanged for 3 epochs"}]
    fig = viz.plot_history(history, path=tmp_path / "loss.png")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["loss", "rec", "triplet"]
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("n", [1, 2, 10, 11, 2000])
def test_palette_works_for_10_and_2000(n):
    from matplotlib.colors import to_rgb

    colours = viz.palette(n)
    rgb = np.array([to_rgb(c) for c in colours])  # (n, 3), every entry a valid colour
    assert rgb.shape == (n, 3)
    if n <= 10:  # distinct, from the colour-blind-safe ten
        assert len(set(colours)) == n and set(colours) <= set(viz.COLOURBLIND10)
    else:  # one perceptually uniform map: luminance rises monotonically from the first to the last item
        lum = rgb @ np.array([0.2126, 0.7152, 0.0722])
        assert np.all(np.diff(lum) >= -1e-3) and lum[-1] - lum[0] > 0.5


def test_one_colour_per_method_across_figures(tmp_path):
    from matplotlib.colors import to_hex

    from vadlab.registry import list_methods

    methods = list_methods()
    colours = [viz.method_colour(m) for m in methods]
    assert len(set(colours[:len(viz.METHOD_COLOURS)])) == min(len(methods), len(viz.METHOD_COLOURS))
    assert viz.BASELINE_COLOUR not in colours and viz.method_colour("frame_difference") == viz.BASELINE_COLOUR
    assert viz.method_colour(f"{methods[0]} (2)") == colours[0]  # a run label keeps its method's colour
    fig = viz.plot_comparison({"data": {m: 0.8 for m in methods} | {"frame_difference": 0.7}})
    bars = {c.get_label(): to_hex(c.patches[0].get_facecolor()) for c in fig.axes[0].containers}
    assert bars == {m: viz.method_colour(m).lower() for m in [*methods, "frame_difference"]}
    plt.close(fig)
    curves = {m: (np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.8, 1.0]), 0.7) for m in methods}
    fig = viz.plot_roc(curves | {"frame_difference": (np.array([0.0, 1.0]), np.array([0.0, 1.0]), 0.5)})
    lines = {line.get_label().split(" (")[0]: to_hex(line.get_color()) for line in fig.axes[0].get_lines()}
    assert all(lines[m] == viz.method_colour(m).lower() for m in [*methods, "frame_difference"])
    plt.close(fig)


def test_export_every_saved_figure_png_300dpi_and_pdf(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv(viz.EXPORT_ENV, str(tmp_path / "export"))
    fig = viz.plot_score_curve(np.linspace(0, 1, 20), np.r_[np.zeros(10), np.ones(10)], method="mnad_pred",
                               path=tmp_path / "curve.png")
    plt.close(fig)
    fig = viz.plot_matching_heatmap(np.full((4, 3), 1 / 3), anomalous=np.array([0, 0, 1, 1], bool))  # no path
    plt.close(fig)
    files = sorted(p.name for p in (tmp_path / "export").iterdir())
    assert files == ["00_curve.pdf", "00_curve.png", "01_figure.pdf", "01_figure.png"]
    assert Image.open(tmp_path / "export" / "00_curve.png").info["dpi"][0] == pytest.approx(300, abs=1)
    assert (tmp_path / "export" / "00_curve.pdf").read_bytes()[:5] == b"%PDF-"


def test_registered_colours_read_apart():
    """Every registered method's colour (the built-in ones and the test plugin) and the baseline's grey are at least
    `viz._ALIKE` apart in RGB, the distance under which `label_colours` takes two line colours for one (issue 26:
    maam's #D55E00 and mnad_recon's former #DE8F05 were 0.20 apart)."""
    from itertools import combinations

    from vadlab import registration
    from vadlab.registry import list_methods

    list_methods()
    registered = {name: spec.colour for name, spec in registration._REGISTRY.items() if spec.colour}
    assert {"maam", "mnad_recon", "mnad_pred"} <= set(registered)
    colours = registered | {"frame_difference": viz.BASELINE_COLOUR}
    close = [(a, b, round(viz._rgb_distance(colours[a], colours[b]), 2)) for a, b in combinations(sorted(colours), 2)
             if viz._rgb_distance(colours[a], colours[b]) < viz._ALIKE]
    assert close == []


def test_any_set_of_labels_gets_distinct_colours():
    """Two runs of one method, or user labels whose hashes land on neighbouring oranges, get colours apart; a
    registered method keeps its own colour beside them."""
    from itertools import combinations

    from vadlab.registry import list_methods

    method = list_methods()[0]
    colours = viz.label_colours([method, f"{method} seed 1", f"{method} seed 2", "frame difference"])
    assert colours[method] == viz.method_colour(method) and colours["frame difference"] == viz.BASELINE_COLOUR
    assert len(set(colours.values())) == 4
    names = [f"user label {i}" for i in range(40)]
    for pair in combinations(names[:12], 2):  # every pair, whatever their hashes
        a, b = viz.label_colours(pair).values()
        assert viz._rgb_distance(a, b) > viz._ALIKE, pair
    many = viz.label_colours(names)
    assert len(set(many.values())) == len(names)


def test_a_near_uniform_matching_map_gets_its_own_scale_and_says_so():
    norm, label = viz.probability_scale(np.array([0.10, 0.11, 0.12]), 10)
    assert (norm.vmin, norm.vmax) == (0.10, 0.12) and "near uniform" in label
    norm, label = viz.probability_scale(np.array([0.1, 0.9]), 10)
    assert (norm.vmin, norm.vmax) == (0.0, 1.0) and label == "matching probability"


def test_one_epoch_history_is_labelled_bars():
    fig = viz.plot_history([{"epoch": 1, "loss": 2.0, "rec": 1.5}])
    assert "1 epoch" in fig.axes[0].get_title() and len(fig.axes[0].patches) == 2
    plt.close(fig)


def test_numbers_read_as_what_they_mean():
    assert viz.number_text("micro AUC", 0.912345) == "0.912"
    assert viz.number_text("training (s)", 14.960035) == "15.0"
    assert viz.number_text("inference (frames/s)", 770.556169) == "770.6"
    assert viz.number_text("frames left out", 32.0) == "32"
    assert viz.number_text("frame size (HxW)", 32) == "32x32" == viz.number_text("frame size", (32, 32))
    assert viz.number_text("frame size", [24, 40]) == "24x40"
    assert viz.plural(1, "epoch") == "1 epoch" and viz.plural(3, "epoch") == "3 epochs"
    assert viz.metric_label("micro_auc") == "Micro AUC" and viz.metric_label("eer") == "EER"
