"""Few-anomaly protocols (vadlab/data/splits.py, `vadlab data split`): folds by segment with a margin, the paper's
folds by video, the rate protocol, the type-filtered pool; derived roots that evaluation finds again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vadlab import engine
from vadlab.cli import main
from vadlab.data.layout import LayoutWriter, load_layout
from vadlab.data.splits import derived_meta, kfold_split, pool_split, rate_split, segments
from vadlab.errors import DataError
from vadlab.registry import create_method

SEGMENTS = {"t0": (40, [(5, 10), (20, 30)]), "t1": (30, [(0, 8)]), "t2": (40, [(30, 40)]), "t3": (36, [(12, 14)]),
            "t4": (30, [])}


@pytest.fixture
def layout_root(tmp_path):
    rng = np.random.default_rng(0)
    with LayoutWriter(tmp_path / "src") as w:
        for i in range(2):
            w.add_frames("training", f"n{i}", rng.integers(0, 256, (30, 16, 16), dtype=np.uint8))
        for name, (n, segs) in SEGMENTS.items():
            labels = np.zeros(n, np.uint8)
            for a, b in segs:
                labels[a:b] = 1
            w.add_frames("testing", name, rng.integers(0, 256, (n, 16, 16), dtype=np.uint8), labels=labels,
                         types=np.where(labels == 1, "speed", "normal"))
    return tmp_path / "src"


def _source_frames(root, split):
    """{source video: set of source frame numbers} of a split of a derived root (from meta.json)."""
    out = {}
    for name, info in derived_meta(root)["videos"].items():
        if name.startswith(split + "/"):
            a, b = info["frames"]
            out.setdefault(info["source"].split("/")[1], set()).update(range(a, b))
    return out


def test_segments_are_the_anomalous_runs(layout_root):
    found = segments(load_layout(layout_root).testing)
    assert [(s.video, s.start, s.stop) for s in found] == [
        (v, a, b) for v, (_, segs) in SEGMENTS.items() for a, b in segs]


@pytest.mark.parametrize("margin", [0, 3, 5])
def test_segment_folds_partition_the_segments_and_no_test_frame_is_near_a_training_frame(layout_root, tmp_path,
                                                                                         margin):
    k = 3
    moved = []
    for fold in range(k):
        out = tmp_path / f"f{fold}"
        layout = kfold_split(layout_root, out, k=k, fold=fold, margin=margin, min_frames=1)
        meta = derived_meta(out)
        moved += [tuple(u) for u in meta["units"]]
        train, test = _source_frames(out, "abnormal"), _source_frames(out, "testing")
        for video, frames in train.items():  # the margin: no test frame within `margin` of a training frame
            near = {t + d for t in frames for d in range(-margin, margin + 1)}
            assert not near & test.get(video, set()), (fold, video)
        for video in layout.abnormal:  # whole segments: every frame anomalous
            assert video.labels.all()
        assert sum(v.n_anomalous for v in layout.abnormal) == sum(b - a for _, a, b in meta["units"])
        assert [len(v) for v in layout.training] == [30, 30]  # the normal training videos unchanged
    all_segments = [(v, a, b) for v, (_, segs) in SEGMENTS.items() for a, b in segs]
    assert sorted(moved) == sorted(all_segments)  # folds are disjoint and cover every segment


def test_a_test_video_keeps_its_pieces_as_videos_and_unchanged_videos_keep_their_name(layout_root, tmp_path):
    layout = kfold_split(layout_root, tmp_path / "out", k=5, fold=0, margin=2)  # fold 0: t0's segment (5, 10)
    names = [v.name for v in layout.testing]
    assert "t0_f0012-0039" in names and "t1" in names and "t4" in names
    assert not any(n.startswith("t0_f0000") for n in names)  # frames 0-2 are shorter than min_frames: left out
    piece = layout.video("t0_f0012-0039")
    source = load_layout(layout_root).video("t0")
    assert np.array_equal(piece.labels, source.labels[12:40])
    assert (piece.frames[0].read_bytes() == source.frames[12].read_bytes())


def test_video_folds_follow_the_sorted_videos_like_mlep(layout_root, tmp_path):
    layout = kfold_split(layout_root, tmp_path / "v", k=2, fold=1, unit="video")
    # anomalous test videos t0..t3, array_split into [t0, t1], [t2, t3]: fold 1 moves t2 and t3 whole
    assert [v.name for v in layout.abnormal] == ["t2", "t3"]
    assert [v.name for v in layout.testing] == ["t0", "t1", "t4"]
    assert layout.video("t3", "abnormal").n_anomalous == 2 and len(layout.video("t3", "abnormal")) == 36


def test_rate_split_gives_the_rate_to_one_frame_and_keeps_pool_and_test_apart(layout_root, tmp_path):
    rate = 0.1  # 60 normal training frames -> 7 abnormal frames (the whole pool of seed 1)
    layout = rate_split(layout_root, tmp_path / "r", rate=rate, seed=1, margin=1, min_frames=1)
    meta = derived_meta(tmp_path / "r")
    n_normal = sum(len(v) for v in layout.training)
    n_abnormal = sum(len(v) for v in layout.abnormal)
    assert abs(n_abnormal - rate * (n_normal + n_abnormal)) <= 1 and all(v.labels.all() for v in layout.abnormal)
    pool = {(v, a, b) for v, a, b in meta["pool"]}
    assert len(pool) == len(segments(load_layout(layout_root).testing)) // 2
    test = _source_frames(tmp_path / "r", "testing")
    for video, a, b in pool:  # the whole pool leaves the test set, with its margin
        assert not set(range(a - 1, b + 1)) & test.get(video, set())
    with pytest.raises(DataError, match="highest feasible rate is 0.1045"):
        rate_split(layout_root, tmp_path / "r2", rate=0.5, seed=1)
    assert not (tmp_path / "r2").exists()


def test_pool_split_keeps_only_the_named_types(tiny_synthetic, tmp_path):
    layout = pool_split(tiny_synthetic, tmp_path / "p", types=["speed", "location"])
    kinds = {str(t) for v in layout.abnormal for t in np.unique(v.types[v.labels == 1])}
    assert kinds == {"speed", "location"} and len(layout.testing) == len(load_layout(tiny_synthetic).testing)
    with pytest.raises(DataError, match="not in the abnormal/ pool"):
        pool_split(tiny_synthetic, tmp_path / "p2", types=["flying"])


def test_cli_split_exits_2_with_a_message_and_writes_nothing(layout_root, tmp_path, capsys):
    assert main(["data", "split", "kfold", str(layout_root), str(tmp_path / "o"), "--k", "9", "--fold", "0"]) == 2
    assert "fewer than --k 9" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["data", "split", "kfold", str(layout_root), str(tmp_path / "o"), "--k", "3", "--fold", "3"]) == 2
    assert main(["data", "split", "rate", str(layout_root), str(tmp_path / "o"), "--rate", "1.5"]) == 2
    assert main(["data", "split", "kfold", str(layout_root), str(tmp_path / "o"), "--k", "3", "--fold", "1"]) == 0
    assert main(["data", "split", "kfold", str(layout_root), str(tmp_path / "o"), "--k", "3", "--fold", "2"]) == 2
    assert json.loads((tmp_path / "o" / "meta.json").read_text())["args"]["fold"] == 1  # not clobbered


def test_a_run_on_a_derived_root_is_evaluated_from_its_run_json(layout_root, tmp_path):
    derived = tmp_path / "fold"
    kfold_split(layout_root, derived, k=2, fold=0, margin=2)
    run = tmp_path / "run"
    engine.fit(create_method("dream", "smoke", image_size=16), derived, run, device="cpu", progress=False)
    assert json.loads((run / "run.json").read_text())["data"] == str(derived)
    report = engine.evaluate_run(run, device="cpu", progress=False)  # no data given: run.json names it
    assert report["data"] == str(derived) and 0 <= report["micro_auc"] <= 1
