"""Importers: the real UCSD Ped2 slice, small generated copies of the other official layouts, and bad input."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import PED2_MINI, skip_or_fail_without_ped2  # the real slice beside the checkout (docs/architecture.md)
from scipy.io import savemat

from vadlab.data.importers import KINDS, detect_kind, import_dataset, parse_ucsd_m
from vadlab.data.layout import read_image
from vadlab.errors import DataError

H, W = 24, 32
RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------------------------- generators

def _noise(n: int, color: bool = False) -> list[np.ndarray]:
    shape = (n, H, W, 3) if color else (n, H, W)
    return list(RNG.integers(0, 256, size=shape, dtype=np.uint8))


def _square_masks(labels) -> list[np.ndarray]:
    masks = []
    for i, lab in enumerate(labels):
        m = np.zeros((H, W), np.uint8)
        if lab:
            m[4:10, 3 + i % 5:12 + i % 5] = 1
        masks.append(m)
    return masks


def write_avi(path: Path, n: int) -> None:
    """A tiny MJPG .avi of `n` colour frames; checks OpenCV reads back exactly `n`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (W, H))
    assert vw.isOpened()
    for frame in _noise(n, color=True):
        vw.write(frame)
    vw.release()
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == n, f"MJPG writer round trip gave {count} frames, wanted {n}"


def write_frames(folder: Path, n: int, ext: str = ".jpg", start: int = 1, digits: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(_noise(n, color=ext == ".jpg")):
        assert cv2.imwrite(str(folder / f"{i + start:0{digits}d}{ext}"), frame)


UCSD_RANGES = {1: "[3:6]", 2: "[2:3, 6:8]", 3: "[1:8]"}  # Ped1-style multi-range on line 2


def make_ucsd(root: Path, name: str = "UCSDped2", n_train: int = 2, n: int = 8) -> Path:
    src = root / name
    for v in range(1, n_train + 1):
        write_frames(src / "Train" / f"Train{v:03d}", n, ".tif")
    lines = ["TestVideoFile = {};"]
    for rng in UCSD_RANGES.values():
        lines.append(f"TestVideoFile{{end+1}}.gt_frame = {rng};")
    for v in (1, 2):  # two test videos; line 3 belongs to a video not in this copy
        write_frames(src / "Test" / f"Test{v:03d}", n, ".tif")
        labels = _ucsd_labels(v, n)
        gt = src / "Test" / f"Test{v:03d}_gt"
        gt.mkdir()
        for i, m in enumerate(_square_masks(labels), start=1):
            cv2.imwrite(str(gt / f"{i:03d}.bmp"), m * 255)
    (src / "Test" / f"{name}.m").write_text("\n".join(lines) + "\n")
    return src


def _ucsd_labels(video: int, n: int) -> np.ndarray:
    labels = np.zeros(n, np.uint8)
    for item in UCSD_RANGES[video].strip("[]").split(","):
        a, b = (int(x) for x in item.split(":"))
        labels[a - 1:b] = 1
    return labels


AVENUE_LABELS = {1: [0, 0, 1, 1, 1, 0, 0, 0], 2: [0] * 8, 3: [1] * 8}


def make_avenue(root: Path) -> Path:
    src = root / "Avenue Dataset"
    for v in (1, 2):
        write_avi(src / "training_videos" / f"{v:02d}.avi", 8)
    mask_dir = src / "ground_truth_demo" / "testing_label_mask"
    mask_dir.mkdir(parents=True)
    for v, labels in AVENUE_LABELS.items():
        write_avi(src / "testing_videos" / f"{v:02d}.avi", len(labels))
        write_vol_label(mask_dir / f"{v}_label.mat", _square_masks(labels))
    return src


def write_vol_label(path: Path, masks: list[np.ndarray]) -> None:
    cells = np.empty((1, len(masks)), dtype=object)  # a MATLAB 1 x n cell array
    for i, m in enumerate(masks):
        cells[0, i] = m
    savemat(str(path), {"volLabel": cells})


SHANGHAI_TEST = {"01_0014": [0, 0, 0, 1, 1, 1, 0, 0], "01_0015": [1] * 6 + [0] * 2, "02_0128": [0] * 7}


def make_shanghai(root: Path) -> Path:
    src = root / "shanghaitech"
    for v in ("01_001", "02_001"):
        write_avi(src / "training" / "videos" / f"{v}.avi", 8)
    for vid, labels in SHANGHAI_TEST.items():
        write_frames(src / "testing" / "frames" / vid, len(labels), ".jpg", start=0)
        (src / "testing" / "test_frame_mask").mkdir(parents=True, exist_ok=True)
        (src / "testing" / "test_pixel_mask").mkdir(parents=True, exist_ok=True)
        np.save(src / "testing" / "test_frame_mask" / f"{vid}.npy", np.array(labels, np.int64))
        np.save(src / "testing" / "test_pixel_mask" / f"{vid}.npy", np.stack(_square_masks(labels)))
    return src


PRE_TEST = {"1": 5, "2": 6, "10": 7}  # numeric-aware order 1, 2, 10 (lexicographic would be 1, 10, 2)


def make_preprocessed(root: Path, ds: str = "ped2", shape_1n: bool = True,
                      in_parent: bool = True) -> tuple[Path, np.ndarray]:
    src = root / ds
    for v in ("01", "02"):
        write_frames(src / "training" / "frames" / v, 6, ".jpg", start=0)
    for vid, n in PRE_TEST.items():
        write_frames(src / "testing" / "frames" / vid, n, ".jpg", start=0)
    total = sum(PRE_TEST.values())
    labels = (np.arange(total) % 3 == 0).astype(np.int64)
    np.save((root if in_parent else src) / f"frame_labels_{ds}.npy", labels[None] if shape_1n else labels)
    return src, labels


def assert_nothing_written(dst: Path) -> None:
    assert not dst.exists()
    assert not list(dst.parent.glob("*.partial-*"))


# --------------------------------------------------------------------------------------------- real data

@pytest.fixture(scope="module")
def ped2(tmp_path_factory):
    skip_or_fail_without_ped2()
    dst = tmp_path_factory.mktemp("real") / "ped2"
    return import_dataset("ucsd", PED2_MINI, dst, progress=False)


def test_ucsd_real_slice_counts(ped2):
    assert [v.name for v in ped2.training] == ["Train001", "Train002", "Train003", "Train004"]
    assert [len(v) for v in ped2.training] == [120, 150, 150, 180]
    assert [v.name for v in ped2.testing] == ["Test001", "Test002", "Test003"]
    assert sum(len(v) for v in ped2.testing) == 510
    assert sum(v.n_anomalous for v in ped2.testing) == 352
    expected = {"Test001": (61, 180, 180), "Test002": (95, 180, 180), "Test003": (1, 146, 150)}
    for v in ped2.testing:
        first, last, n = expected[v.name]
        truth = np.zeros(n, np.uint8)
        truth[first - 1:last] = 1
        np.testing.assert_array_equal(v.labels, truth)
        assert v.masks is not None and len(v.masks) == n
    assert ped2.meta["source_kind"] == "ucsd" and ped2.meta["dataset"] == "ped2"
    assert ped2.meta["source"] == str(PED2_MINI.resolve())
    # frames copied byte for byte (renumbered from 0)
    assert filecmp.cmp(PED2_MINI / "Test" / "Test002" / "095.tif", ped2.testing[1].frames[94], shallow=False)


def test_ucsd_real_masks_agree_with_frame_labels(ped2):
    # Measured on ped2-mini: all 158 normal frames have empty masks and all 352 anomalous frames have
    # a non-empty mask (the smallest has 159 anomalous pixels), so the official files agree exactly.
    normal_nonempty = anomalous_empty = 0
    for v in ped2.testing:
        for lab, path in zip(v.labels, v.masks):
            mask = read_image(path)
            assert set(np.unique(mask).tolist()) <= {0, 255}
            if lab:
                anomalous_empty += not mask.any()
            else:
                normal_nonempty += bool(mask.any())
    assert normal_nonempty == 0
    assert anomalous_empty == 0


# --------------------------------------------------------------------------------------------- generated layouts

def test_ucsd_generated_multi_range_and_subset(tmp_path):
    src = make_ucsd(tmp_path / "src")
    assert detect_kind(src) == "ucsd"
    layout = import_dataset("auto", src, tmp_path / "out", progress=True)
    assert [v.name for v in layout.testing] == ["Test001", "Test002"]
    for v, number in zip(layout.testing, (1, 2)):
        np.testing.assert_array_equal(v.labels, _ucsd_labels(number, 8))
        got = np.array([read_image(p).any() for p in v.masks], np.uint8)
        np.testing.assert_array_equal(got, v.labels)
    # a copy without Test001: Test002 still uses line 2 of the .m file
    shutil.rmtree(src / "Test" / "Test001")
    shutil.rmtree(src / "Test" / "Test001_gt")
    layout = import_dataset("ucsd", src, tmp_path / "out2", progress=False)
    np.testing.assert_array_equal(layout.testing[0].labels, _ucsd_labels(2, 8))


def test_parse_ucsd_m_ped1_style(tmp_path):
    m = tmp_path / "UCSDped1.m"
    m.write_text("TestVideoFile = {};\n% comment\nTestVideoFile{end+1}.gt_frame = [60:152];\n"
                 "TestVideoFile{end+1}.gt_frame = [5:90, 140:200];\n")
    assert parse_ucsd_m(m) == {1: [(60, 152)], 2: [(5, 90), (140, 200)]}


def test_ucsd_parent_folder_needs_name(tmp_path):
    parent = tmp_path / "UCSD_Anomaly_Dataset.v1p2"
    make_ucsd(parent, "UCSDped1")
    make_ucsd(parent, "UCSDped2")
    with pytest.raises(DataError, match="name='ped1'"):
        import_dataset("ucsd", parent, tmp_path / "out", progress=False)
    assert_nothing_written(tmp_path / "out")
    layout = import_dataset("ucsd", parent, tmp_path / "out", name="ped1", progress=False)
    assert layout.meta["dataset"] == "ped1"
    assert layout.meta["source"].endswith("UCSDped1")


def test_avenue_generated(tmp_path):
    src = make_avenue(tmp_path / "src")
    assert detect_kind(src) == "avenue"
    layout = import_dataset("avenue", src, tmp_path / "out", progress=False)
    assert [v.name for v in layout.training] == ["01", "02"]
    assert [v.name for v in layout.testing] == ["01", "02", "03"]
    assert all(len(v) == 8 for v in layout.training + layout.testing)
    for v, labels in zip(layout.testing, AVENUE_LABELS.values()):
        np.testing.assert_array_equal(v.labels, labels)
        assert v.frames[0].suffix == ".jpg"
        assert read_image(v.frames[0], channels=3).shape == (H, W, 3)
        for path, mask in zip(v.masks, _square_masks(labels)):
            np.testing.assert_array_equal(read_image(path), mask * 255)
    assert layout.meta["source_kind"] == "avenue" and layout.meta["dataset"] == "avenue"


def test_shanghaitech_generated(tmp_path):
    src = make_shanghai(tmp_path / "src")
    assert detect_kind(src) == "shanghaitech"
    layout = import_dataset("auto", src, tmp_path / "out", progress=False)
    assert [v.name for v in layout.training] == ["01_001", "02_001"]
    assert [len(v) for v in layout.training] == [8, 8]
    assert [v.name for v in layout.testing] == list(SHANGHAI_TEST)
    for v, (vid, labels) in zip(layout.testing, SHANGHAI_TEST.items()):
        np.testing.assert_array_equal(v.labels, labels)
        assert filecmp.cmp(src / "testing" / "frames" / vid / "000.jpg", v.frames[0], shallow=False)
        for path, mask in zip(v.masks, _square_masks(labels)):
            np.testing.assert_array_equal(read_image(path), mask * 255)
    assert layout.meta["source_kind"] == "shanghaitech"


@pytest.mark.parametrize("shape_1n,in_parent", [(True, True), (False, False)])
def test_preprocessed_generated(tmp_path, shape_1n, in_parent):
    src, labels = make_preprocessed(tmp_path / "src", "ped2" if shape_1n else "shanghai", shape_1n, in_parent)
    assert detect_kind(src) == "preprocessed"
    layout = import_dataset("preprocessed", src, tmp_path / "out", progress=False)
    # labels are split in numeric-aware order 1, 2, 10 (load_layout itself lists folders by plain name)
    videos = {v.name: v for v in layout.testing}
    assert sorted(videos) == ["1", "10", "2"]
    ordered = [videos[k] for k in PRE_TEST]
    assert [len(v) for v in ordered] == [5, 6, 7]
    np.testing.assert_array_equal(np.concatenate([v.labels for v in ordered]), labels)
    assert layout.meta["dataset"] == src.name
    assert Path(layout.meta["label_file"]).parent == (src.parent if in_parent else src)
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["source_kind"] == "preprocessed"


# --------------------------------------------------------------------------------------------- bad input

def test_junk_files_are_skipped(tmp_path):
    src = make_ucsd(tmp_path / "ucsd")
    for junk in (src / ".DS_Store", src / "Train" / "Train001" / "._001.tif", src / "Test" / "._Test001",
                 src / "Test" / "Test001" / ".DS_Store", src / "Test" / "Test001_gt" / "Thumbs.db",
                 src / "Test" / f"._{src.name}.m", src / "Train" / "._Train001"):
        junk.write_bytes(b"\x00\x05\x16\x07junk")
    (src / "Train" / "__MACOSX").mkdir()  # not a TrainNNN folder: ignored
    layout = import_dataset("ucsd", src, tmp_path / "out", progress=False)
    assert [v.name for v in layout.training] == ["Train001", "Train002"]
    assert [len(v) for v in layout.training + layout.testing] == [8, 8, 8, 8]

    av = make_avenue(tmp_path / "av")
    (av / "testing_videos" / "._01.avi").write_bytes(b"junk")
    (av / "ground_truth_demo" / "testing_label_mask" / "._1_label.mat").write_bytes(b"junk")
    (av / ".DS_Store").write_bytes(b"junk")
    layout = import_dataset("avenue", av, tmp_path / "out_av", progress=False)
    assert [v.name for v in layout.testing] == ["01", "02", "03"]


def test_gap_in_frame_numbering(tmp_path):
    src = make_ucsd(tmp_path / "src")
    (src / "Test" / "Test002" / "005.tif").unlink()  # last video: earlier ones were already written
    dst = tmp_path / "out"
    with pytest.raises(DataError, match="gap in frame numbering") as err:
        import_dataset("ucsd", src, dst, progress=False)
    assert "Test002" in str(err.value)
    assert_nothing_written(dst)


def test_missing_first_frame_ucsd(tmp_path):
    src = make_ucsd(tmp_path / "src")
    (src / "Test" / "Test001" / "001.tif").unlink()
    with pytest.raises(DataError, match="starts at 2"):
        import_dataset("ucsd", src, tmp_path / "out", progress=False)
    assert_nothing_written(tmp_path / "out")


def test_zero_byte_frame(tmp_path):
    src = make_ucsd(tmp_path / "src")
    bad = src / "Test" / "Test002" / "003.tif"
    bad.write_bytes(b"")
    with pytest.raises(DataError, match="0 bytes") as err:
        import_dataset("ucsd", src, tmp_path / "out", progress=False)
    assert str(bad) in str(err.value)
    assert_nothing_written(tmp_path / "out")


def test_ucsd_range_beyond_frame_count(tmp_path):
    src = make_ucsd(tmp_path / "src")
    m = src / "Test" / "UCSDped2.m"
    m.write_text(m.read_text().replace("[2:3, 6:8]", "[2:3, 6:9]"))
    with pytest.raises(DataError, match=r"6:9 goes beyond the 8 frames") as err:
        import_dataset("ucsd", src, tmp_path / "out", progress=False)
    assert str(m) in str(err.value)
    assert_nothing_written(tmp_path / "out")


def test_ucsd_mask_count_mismatch(tmp_path):
    src = make_ucsd(tmp_path / "src")
    (src / "Test" / "Test001_gt" / "008.bmp").unlink()
    with pytest.raises(DataError, match="7 masks but 8 frames"):
        import_dataset("ucsd", src, tmp_path / "out", progress=False)
    assert_nothing_written(tmp_path / "out")


def test_preprocessed_total_mismatch(tmp_path):
    src, labels = make_preprocessed(tmp_path / "src")
    label_file = tmp_path / "src" / "frame_labels_ped2.npy"
    np.save(label_file, np.concatenate([labels, [0, 1]])[None])
    with pytest.raises(DataError) as err:
        import_dataset("preprocessed", src, tmp_path / "out", progress=False)
    msg = str(err.value)
    assert str(label_file) in msg and "20 labels" in msg and "18 test frames" in msg
    assert_nothing_written(tmp_path / "out")


def test_preprocessed_missing_label_file(tmp_path):
    src, _ = make_preprocessed(tmp_path / "src")
    (tmp_path / "src" / "frame_labels_ped2.npy").unlink()
    with pytest.raises(DataError, match="frame_labels_ped2.npy"):
        import_dataset("preprocessed", src, tmp_path / "out", progress=False)
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize("n_masks", [7, 9])
def test_avenue_mat_vs_avi_count(tmp_path, n_masks):
    src = make_avenue(tmp_path / "src")
    mat = src / "ground_truth_demo" / "testing_label_mask" / "3_label.mat"
    write_vol_label(mat, _square_masks([1] * n_masks))
    with pytest.raises(DataError) as err:
        import_dataset("avenue", src, tmp_path / "out", progress=False)
    msg = str(err.value)
    assert str(mat) in msg and str(src / "testing_videos" / "03.avi") in msg
    assert f"8 frames decoded but {mat} has {n_masks} masks" in msg
    assert_nothing_written(tmp_path / "out")


def test_avenue_missing_mat(tmp_path):
    src = make_avenue(tmp_path / "src")
    (src / "ground_truth_demo" / "testing_label_mask" / "2_label.mat").unlink()
    with pytest.raises(DataError, match="2_label.mat"):
        import_dataset("avenue", src, tmp_path / "out", progress=False)
    assert_nothing_written(tmp_path / "out")


def test_shanghaitech_label_count_mismatch(tmp_path):
    src = make_shanghai(tmp_path / "src")
    label_file = src / "testing" / "test_frame_mask" / "01_0015.npy"
    np.save(label_file, np.zeros(9, np.int64))
    with pytest.raises(DataError, match="9 labels") as err:
        import_dataset("shanghaitech", src, tmp_path / "out", progress=False)
    assert str(label_file) in str(err.value)
    assert_nothing_written(tmp_path / "out")


def test_wrong_layout_for_kind(tmp_path):
    ucsd = make_ucsd(tmp_path / "ucsd")
    with pytest.raises(DataError, match="expected a CUHK Avenue") as err:
        import_dataset("avenue", ucsd, tmp_path / "out", progress=False)
    assert "looks like a UCSD Ped1/Ped2 folder" in str(err.value) and "kind='ucsd'" in str(err.value)
    av = make_avenue(tmp_path / "av")
    with pytest.raises(DataError, match="expected a UCSD Ped1/Ped2 folder.*kind='avenue'"):
        import_dataset("ucsd", av, tmp_path / "out", progress=False)
    sh = make_shanghai(tmp_path / "sh")
    with pytest.raises(DataError, match="kind='shanghaitech'"):
        import_dataset("preprocessed", sh, tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="expected a ShanghaiTech"):
        import_dataset("shanghaitech", tmp_path / "ucsd", tmp_path / "out", progress=False)
    assert_nothing_written(tmp_path / "out")


def test_detect_kind_unknown_and_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a known dataset download"):
        detect_kind(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        detect_kind(tmp_path / "nope")
    with pytest.raises(DataError, match="does not exist"):
        import_dataset("ucsd", tmp_path / "nope", tmp_path / "out", progress=False)


def test_unknown_kind_names_valid_kinds(tmp_path):
    with pytest.raises(DataError) as err:
        import_dataset("ped3", tmp_path, tmp_path / "out", progress=False)
    assert all(k in str(err.value) for k in KINDS)


def test_destination_exists_without_overwrite(tmp_path):
    src = make_ucsd(tmp_path / "src")
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists"):
        import_dataset("ucsd", src, dst, progress=False)
    assert (dst / "keep.txt").read_text() == "mine"
    # a failing overwrite leaves the old destination alone too
    (src / "Test" / "Test002" / "004.tif").write_bytes(b"")
    with pytest.raises(DataError, match="0 bytes"):
        import_dataset("ucsd", src, dst, overwrite=True, progress=False)
    assert (dst / "keep.txt").read_text() == "mine"
    assert not list(tmp_path.glob("*.partial-*"))
    write_frames(src / "Test" / "Test002", 8, ".tif")  # repair it
    layout = import_dataset("ucsd", src, dst, overwrite=True, progress=False)
    assert not (dst / "keep.txt").exists() and len(layout.testing) == 2


def test_destination_must_not_contain_source(tmp_path):
    src = make_ucsd(tmp_path / "src")
    with pytest.raises(DataError, match="must not be the source"):
        import_dataset("ucsd", src, tmp_path, overwrite=True, progress=False)
    assert src.is_dir()
