"""The common layout reader, the clip dataset and its cache, and `vadlab data check` on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from vadlab.cli import main
from vadlab.data.clips import ClipDataset, ClipSpec, clip_at, load_frames
from vadlab.data.layout import LayoutWriter, check_layout, load_layout
from vadlab.errors import ConfigError, DataError


def test_reads_what_the_writer_wrote(random_layout):
    layout = load_layout(random_layout)
    assert [v.name for v in layout.training] == ["train00", "train01"]
    assert [len(v) for v in layout.testing] == [12, 12]
    assert layout.testing[0].labels.tolist() == [0] * 6 + [1] * 6
    assert len(layout.testing[0].masks) == 12
    assert layout.summary()["testing"] == {"videos": 2, "frames": 24, "anomalous_frames": 12, "videos_with_masks": 2}


def test_frames_sort_numerically_and_junk_is_skipped(random_layout):
    folder = random_layout / "training" / "frames" / "train00"
    # rename to 1-based unpadded names: 1.png ... 12.png must sort 1, 2, ..., 10, not 1, 10, 11, 2
    for i, path in enumerate(sorted(folder.iterdir())):
        path.rename(folder / f"{i + 1}.png")
    (folder / ".DS_Store").write_bytes(b"\0junk")
    (folder / "._5.png").write_bytes(b"resource fork")
    (random_layout / "training" / "frames" / ".DS_Store").write_bytes(b"junk")
    video = load_layout(random_layout).training[0]
    assert [p.name for p in video.frames][:3] == ["1.png", "2.png", "3.png"]
    assert len(video) == 12
    check_layout(random_layout)  # junk is not an error


@pytest.mark.parametrize("case", ["no_training", "no_testing", "gap", "zero_byte", "unreadable", "empty_video",
                                  "mixed_sizes", "label_length", "missing_labels", "mask_count"])
def test_bad_input_names_the_file_and_exits_2(random_layout, case, capsys):
    root = random_layout
    frames = root / "testing" / "frames" / "test00"
    expect = {
        "no_training": "training/frames",
        "no_testing": "testing/frames",
        "gap": "gap in frame numbering",
        "zero_byte": "00003.png",
        "unreadable": "00004.png",
        "empty_video": "test01",
        "mixed_sizes": "00005.png",
        "label_length": "test00.npy",
        "missing_labels": "test01.npy",
        "mask_count": "masks",
    }[case]
    import shutil

    import cv2

    if case == "no_training":
        shutil.rmtree(root / "training")
    elif case == "no_testing":
        shutil.rmtree(root / "testing")
    elif case == "gap":
        (frames / "00006.png").unlink()
    elif case == "zero_byte":
        (frames / "00003.png").write_bytes(b"")
    elif case == "unreadable":
        (frames / "00004.png").write_bytes(b"this is not a png")
    elif case == "empty_video":
        for p in (root / "testing" / "frames" / "test01").iterdir():
            p.unlink()
    elif case == "mixed_sizes":
        cv2.imwrite(str(frames / "00005.png"), np.zeros((10, 10), np.uint8))
    elif case == "label_length":
        np.save(root / "testing" / "labels" / "test00.npy", np.zeros(11, np.uint8))
    elif case == "missing_labels":
        (root / "testing" / "labels" / "test01.npy").unlink()
    elif case == "mask_count":
        (root / "testing" / "masks" / "test00" / "00000.png").unlink()
        # renumber so the gap check does not fire first
        masks = sorted((root / "testing" / "masks" / "test00").iterdir())
        for i, p in enumerate(masks):
            p.rename(p.with_name(f"{i:05d}.png"))
    with pytest.raises(DataError, match=expect.replace(".", r"\.")):
        check_layout(root)
    assert main(["data", "check", str(root)]) == 2
    assert expect in capsys.readouterr().err


def test_writer_is_atomic(tmp_path):
    root = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with LayoutWriter(root) as w:
            w.add_frames("training", "v", [np.zeros((8, 8), np.uint8)] * 3)
            raise RuntimeError("interrupted")
    assert not root.exists()
    assert not list(tmp_path.glob("*.partial-*"))
    with LayoutWriter(root) as w:
        w.add_frames("training", "v", [np.zeros((8, 8), np.uint8)] * 3)
    with pytest.raises(DataError, match="already exists"):
        LayoutWriter(root)
    assert (root / "training" / "frames" / "v" / "00002.png").exists()


def test_clip_windows_predict_and_reconstruct(random_layout):
    layout = load_layout(random_layout)
    pred = ClipDataset(layout.testing, ClipSpec(4, predict=True), size=16)
    assert len(pred) == 2 * (12 - 4)  # the first 4 frames of each video cannot be predicted
    item = pred[0]
    assert item["input"].shape == (4, 1, 16, 16) and item["target"].shape == (1, 16, 16)
    assert item["index"] == 4 and item["video"] == 0
    frames = load_frames(layout.testing[0].frames, 16, 1)
    expected = frames[0:4].astype(np.float32) / 127.5 - 1  # inputs are frames t-4..t-1
    np.testing.assert_allclose(item["input"].numpy()[:, 0], expected[..., 0], atol=1e-6)
    np.testing.assert_allclose(item["target"].numpy()[0], frames[4, ..., 0] / 127.5 - 1, atol=1e-6)
    assert float(item["input"].min()) >= -1 and float(item["input"].max()) <= 1
    recon = ClipDataset(layout.testing, ClipSpec(1, predict=False), size=16, channels=3)
    assert len(recon) == 24 and recon[0]["index"] == 0 and recon[0]["input"].shape == (1, 3, 16, 16)
    np.testing.assert_array_equal(recon[5]["input"][0].numpy(), recon[5]["target"].numpy())


def test_reconstruction_target_inside_the_window(random_layout):
    # MNAD Sec. 4.3 "motion cues": T frames in, the one at target_index reconstructed (16 in, the 9th: index 8)
    layout = load_layout(random_layout)
    spec = ClipSpec(5, predict=False, target_index=2)
    data = ClipDataset(layout.testing, spec, size=16)
    assert len(data) == 2 * (12 - 4)  # 2 frames at the start and 2 at the end of each video have no window
    assert [int(data[i]["index"]) for i in data.clip_indices(0)] == list(range(2, 10))
    frames = load_frames(layout.testing[0].frames, 16, 1).astype(np.float32) / 127.5 - 1
    item = data[3]  # scores frame 5 from frames 3..7
    assert item["index"] == 5
    np.testing.assert_allclose(item["input"].numpy()[:, 0], frames[3:8, ..., 0], atol=1e-6)
    np.testing.assert_array_equal(item["input"][2].numpy(), item["target"].numpy())
    assert ClipSpec(5, predict=False).scored_range(12) == range(4, 12)  # default: the last input
    with pytest.raises(ConfigError, match="target_index 5"):
        ClipSpec(5, predict=False, target_index=5)
    with pytest.raises(DataError, match="valid: 2..9"):
        clip_at(layout.testing[0], 10, spec, 16)


def test_second_epoch_decodes_nothing(random_layout, monkeypatch):
    from vadlab.data import clips

    layout = load_layout(random_layout)
    first = load_frames(layout.training[0].frames, 16, 1)
    calls = []
    monkeypatch.setattr(clips, "decode_frames", lambda *a, **k: calls.append(a) or None)
    again = load_frames(layout.training[0].frames, 16, 1)
    assert calls == []  # served from the cache
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.uint8 and first.shape == (12, 16, 16, 1)


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    from vadlab.io import atomic_path, write_json

    target = tmp_path / "metrics.json"
    write_json(target, {"auc": 0.5})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"auc": 0.')  # interrupted half way
            raise RuntimeError("killed")
    assert target.read_text().strip().endswith("}") and '"auc": 0.5' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind
