"""Optical flow (vadlab.data.flow): convention (channel order, sign), the resize, .flo files, the cache, the CLI."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from vadlab.data import flow as fl
from vadlab.data.layout import load_layout
from vadlab.errors import DataError
from vadlab.registry import create_method


def _texture(h=96, w=128, seed=0) -> np.ndarray:
    """A smooth random texture (float), so both methods find unambiguous matches."""
    rng = np.random.default_rng(seed)
    noise = rng.random((h, w)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


def _pair(dx: int, dy: int, h=96, w=128):
    """I_t and I_{t+1} = I_t moved by (dx, dy): I_{t+1}(y + dy, x + dx) = I_t(y, x)."""
    tex = _texture(h + 40, w + 40)
    tex = (255 * (tex - tex.min()) / (tex.max() - tex.min())).astype(np.uint8)
    prev = tex[20:20 + h, 20:20 + w]
    nxt = tex[20 - dy:20 - dy + h, 20 - dx:20 - dx + w]
    return np.ascontiguousarray(prev), np.ascontiguousarray(nxt)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_a_shifted_frame_gives_its_shift_as_u_v(method):
    prev, nxt = _pair(dx=3, dy=-2)
    f = fl.flow_pair(prev, nxt, method)  # (H, W, 2)
    assert f.shape == (96, 128, 2) and f.dtype == np.float32
    inner = f[16:-16, 16:-16].reshape(-1, 2).mean(0)
    np.testing.assert_allclose(inner, [3.0, -2.0], atol=0.25)  # u = dx (horizontal), v = dy (vertical)


def test_compute_flow_gives_one_flow_per_frame_and_nan_for_the_last():
    prev, nxt = _pair(1, 1)
    out = fl.compute_flow([prev, nxt, prev], "dis")
    assert out.shape == (3, 96, 128, 2)
    assert np.isfinite(out[:2]).all() and np.isnan(out[2]).all()
    with pytest.raises(DataError, match="at least 2 frames"):
        fl.compute_flow([prev], "dis")
    with pytest.raises(DataError, match="unknown flow method"):
        fl.flow_pair(prev, nxt, "flownet2")


def test_resize_scales_u_by_the_width_factor_and_v_by_the_height_factor():
    flow = np.zeros((2, 60, 90, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, 2.0
    out = fl.resize_flow(flow, (30, 30))  # sx = 1/3, sy = 1/2
    assert out.shape == (2, 30, 30, 2)
    np.testing.assert_allclose(out[..., 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(out[..., 1], 1.0, rtol=1e-6)


def test_flow_resized_from_native_matches_flow_of_the_resized_frames():
    """A shift of (8, 4) px at 96x128 is (2, 2) px at 48x32 (sx = 1/4, sy = 1/2), as the frames' own flow."""
    prev, nxt = _pair(dx=8, dy=4)
    native = fl.flow_pair(prev, nxt, "dis")[None]
    small = fl.resize_flow(native, (48, 32))[0]
    np.testing.assert_allclose(small[12:-12, 8:-8].reshape(-1, 2).mean(0), [2.0, 2.0], atol=0.2)
    p2, n2 = (cv2.resize(x, (32, 48), interpolation=cv2.INTER_AREA) for x in (prev, nxt))
    direct = fl.flow_pair(p2, n2, "dis")
    np.testing.assert_allclose(direct[12:-12, 8:-8].reshape(-1, 2).mean(0), [2.0, 2.0], atol=0.4)


def test_flo_round_trip_and_a_hand_built_file(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(5, 7, 2)).astype(np.float32)
    fl.write_flo(tmp_path / "a.flo", flow)
    assert np.array_equal(fl.read_flo(tmp_path / "a.flo"), flow)
    # by hand: magic, WIDTH then HEIGHT, then row-major (u, v) pairs, little-endian
    values = [float(i) for i in range(2 * 3 * 2)]
    raw = struct.pack("<f", 202021.25) + struct.pack("<ii", 3, 2) + struct.pack(f"<{len(values)}f", *values)
    (tmp_path / "b.flo").write_bytes(raw)
    got = fl.read_flo(tmp_path / "b.flo")
    assert got.shape == (2, 3, 2)  # (H, W, 2)
    assert got[0, 1].tolist() == [2.0, 3.0] and got[1, 0].tolist() == [6.0, 7.0]  # (u, v) of row 0 col 1, row 1 col 0
    assert fl.read_flo(tmp_path / "b.flo").dtype == np.float32


def test_bad_flo_files_name_the_file(tmp_path):
    (tmp_path / "short.flo").write_bytes(b"PIEH")
    with pytest.raises(DataError, match="short.flo"):
        fl.read_flo(tmp_path / "short.flo")
    (tmp_path / "magic.flo").write_bytes(struct.pack("<fii", 1.0, 1, 1) + bytes(8))
    with pytest.raises(DataError, match="magic"):
        fl.read_flo(tmp_path / "magic.flo")
    (tmp_path / "cut.flo").write_bytes(struct.pack("<fii", 202021.25, 4, 4) + bytes(8))
    with pytest.raises(DataError, match="cut.flo: 20 bytes"):
        fl.read_flo(tmp_path / "cut.flo")
    with pytest.raises(DataError, match=r"\(H, W, 2\)"):
        fl.write_flo(tmp_path / "x.flo", np.zeros((3, 3)))
    assert not (tmp_path / "x.flo").exists()


def test_cache_loads_without_recomputing_and_sizes_are_consistent(random_layout):
    video = load_layout(random_layout).testing[0]  # 12 frames of 24x32
    first = fl.native_flow(video, "farneback")
    assert isinstance(first, np.memmap) and first.dtype == np.float16 and first.shape == (12, 24, 32, 2)
    again = fl.native_flow(video, "farneback")
    assert np.array_equal(np.asarray(first), np.asarray(again), equal_nan=True)
    direct = fl.compute_flow([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in video.frames], "farneback")
    np.testing.assert_allclose(np.asarray(first[:-1], np.float32), direct[:-1], atol=2e-2, rtol=1e-3)  # float16
    small = fl.load_flow(video, (12, 8), "farneback")
    assert small.shape == (12, 2, 12, 8) and small.dtype == np.float32 and np.isnan(small[-1]).all()
    expected = fl.resize_flow(np.asarray(first, np.float32), (12, 8)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(small[:-1], expected[:-1])
    assert np.array_equal(fl.load_flow(video, (12, 8), "farneback"), small, equal_nan=True)  # from the cache


def test_a_damaged_cache_entry_is_rebuilt(random_layout):
    video = load_layout(random_layout).testing[1]
    good = np.array(fl.native_flow(video, "dis"))  # a copy: the file is rewritten below
    file = fl._flow_dir() / f"{fl._key(video, 'dis', None)}.npy"
    file.write_bytes(b"not an npy")
    assert np.array_equal(np.asarray(fl.native_flow(video, "dis")), good, equal_nan=True)


def test_users_flo_files_load_like_computed_flow(random_layout, tmp_path):
    layout = load_layout(random_layout)
    video, other = layout.training
    rng = np.random.default_rng(1)
    flows = rng.normal(size=(len(video) - 1, 24, 32, 2)).astype(np.float32)
    for t, f in enumerate(flows):  # inside the dataset: ROOT/<split>/flow/<video>/, and under another root
        fl.write_flo(random_layout / "training" / "flow" / video.name / f"{t:03d}.flo", f)
        fl.write_flo(tmp_path / "flo" / "training" / other.name / f"{t:03d}.flo", f)
    for v, root in ((video, None), (other, str(tmp_path / "flo"))):
        got = fl.native_flow(v, "files", flow_root=root)
        np.testing.assert_allclose(np.asarray(got[:-1], np.float32), flows, atol=2e-3, rtol=1e-3)
        assert np.isnan(np.asarray(got[-1], np.float32)).all()
    assert load_layout(random_layout).training == layout.training  # the flow folder is no video
    method = create_method("maam", "smoke", flow_method="files")
    small = method.extra_inputs([video], "training")["flow"][0]
    np.testing.assert_allclose(small[:-1], fl.load_flow(video, method.frame_size, "files")[:-1])
    (random_layout / "training" / "flow" / video.name / "000.flo").unlink()
    with pytest.raises(DataError, match="10 .flo files for 12 frames"):
        fl.native_flow(video, "files")


def test_flow_to_color_direction_and_nan():
    flow = np.zeros((2, 2, 2), np.float32)
    flow[0, 0] = [1, 0]
    flow[0, 1] = [-1, 0]
    flow[1, 0] = [np.nan, 0]
    rgb = fl.flow_to_color(flow)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(rgb[0, 0], rgb[0, 1])  # opposite directions, different hues
    assert rgb[1, 0].tolist() == [0, 0, 0] and rgb[1, 1].tolist() == [255, 255, 255]  # NaN black, zero white


def test_cli_data_flow_fills_the_cache(random_layout, capsys):
    from vadlab.cli import main

    assert main(["data", "flow", str(random_layout), "--method", "farneback", "--size", "12x16"]) == 0
    out = capsys.readouterr().out
    assert "frames/s" in out
    layout = load_layout(random_layout)
    for video in layout.training + layout.testing:
        assert (fl._flow_dir() / f"{fl._key(video, 'farneback', None)}-12x16.npy").exists()
    assert main(["data", "flow", str(random_layout), "--size", "12"]) == 2  # one side: ambiguous for flow
    assert main(["data", "flow", str(random_layout / "nope")]) == 2
