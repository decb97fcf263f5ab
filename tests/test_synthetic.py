"""The synthetic walkway generator: layout, annotations, determinism, errors, difficulty."""

from pathlib import Path

import numpy as np
import pytest

from vadlab.data.layout import load_layout, read_image
from vadlab.data.synthetic import ANOMALY_TYPES, PRESETS, SynthConfig, synthesize
from vadlab.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "tiny"
    return synthesize(root, "tiny", seed=0, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_loads(tiny):
    layout = load_layout(tiny.root)
    cfg = PRESETS["tiny"]
    assert len(layout.training) == cfg.n_train and len(layout.testing) == cfg.n_test
    assert len(layout.abnormal) == cfg.n_abnormal
    frame = read_image(layout.testing[0].frames[0], channels=3)
    assert frame.shape == (cfg.height, cfg.width, 3) and frame.dtype == np.uint8
    meta = layout.meta
    assert meta["generator"] == "vadlab.data.synthetic" and meta["preset"] == "tiny" and meta["seed"] == 0
    assert meta["config"]["width"] == cfg.width


def test_labels_agree_with_masks_and_types(tiny):
    for video in tiny.testing + tiny.abnormal:
        assert video.labels is not None and video.masks is not None and video.types is not None
        for label, mask_path, kind in zip(video.labels, video.masks, video.types):
            mask = read_image(mask_path, channels=1)
            assert bool(mask.any()) == bool(label), (video.name, mask_path.name)
            assert (kind == "normal") == (label == 0), (video.name, mask_path.name, kind)
            assert kind == "normal" or kind in ANOMALY_TYPES


def test_every_type_occurs(tiny):
    seen = set()
    for video in tiny.testing + tiny.abnormal:
        seen.update(video.types.tolist())
    assert set(ANOMALY_TYPES) <= seen
    assert all(v.n_anomalous > 0 for v in tiny.testing)  # every test video holds an anomaly


def test_training_is_normal(tiny):
    root = tiny.root
    assert all(v.labels is None and v.masks is None for v in tiny.training)
    assert not (root / "training" / "labels").exists() and not (root / "training" / "masks").exists()
    for name, info in tiny.meta["videos"].items():
        if name.startswith("training/"):
            assert info["events"] == [] and info["anomalous_frames"] == 0


def test_deterministic(tiny, tmp_path):
    again = synthesize(tmp_path / "again", "tiny", seed=0, progress=False)
    a, b = _files(tiny.root), _files(again.root)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name


def test_seeds_differ(tiny, tmp_path):
    other = synthesize(tmp_path / "other", "tiny", seed=1, progress=False)
    assert read_image(other.training[0].frames[5], 3).tobytes() != read_image(tiny.training[0].frames[5], 3).tobytes()
    assert _files(other.root) != _files(tiny.root)


def test_overrides(tmp_path):
    layout = synthesize(tmp_path / "small", "tiny", seed=3, progress=False, n_train=1, n_test=1, n_abnormal=0,
                        train_frames=[10, 10], test_frames=(12, 12))
    assert len(layout.training) == 1 and len(layout.testing) == 1 and layout.abnormal == ()
    assert len(layout.training[0]) == 10 and len(layout.testing[0]) == 12
    assert layout.meta["config"]["train_frames"] == [10, 10]


def test_bad_preset_and_override(tmp_path):
    with pytest.raises(ConfigError, match="huge") as err:
        synthesize(tmp_path / "x", "huge", progress=False)
    assert "tiny" in str(err.value) and "default" in str(err.value)
    with pytest.raises(ConfigError, match="n_videos") as err:
        synthesize(tmp_path / "x", "tiny", progress=False, n_videos=3)
    assert "n_train" in str(err.value)
    with pytest.raises(ConfigError, match="walk_speed"):
        synthesize(tmp_path / "x", "tiny", progress=False, walk_speed=0.01)
    assert not (tmp_path / "x").exists()
    assert isinstance(PRESETS["default"], SynthConfig)


def test_existing_root_is_kept(tiny, tmp_path):
    before = _files(tiny.root)
    with pytest.raises(DataError, match="already exists"):
        synthesize(tiny.root, "tiny", seed=5, progress=False)
    assert _files(tiny.root) == before


def test_overwrite_replaces(tmp_path):
    root = tmp_path / "ds"
    synthesize(root, "tiny", seed=0, progress=False)
    layout = synthesize(root, "tiny", seed=1, overwrite=True, progress=False)
    assert layout.meta["seed"] == 1
    assert not list(tmp_path.glob("ds.partial-*")) and not list(tmp_path.glob("ds.old-*"))


def test_montage(tiny, tmp_path):
    from vadlab.data.synthetic import montage

    out = montage(tiny, tmp_path / "m.png", per_type=2)
    assert out.stat().st_size > 0


def _frame_difference_auc(layout):
    """The frame-difference baseline of docs/methods/index.md, computed inline: grey 64x64 (INTER_AREA), MSE between
    frames t and t-1 (frame 0 left out), per-video min-max, pooled micro AUC and AUC per anomaly type."""
    import cv2
    from sklearn.metrics import roc_auc_score

    scores, labels, types = [], [], []
    for video in layout.testing:
        frames = np.stack([cv2.resize(read_image(p, 1).astype(np.float32) / 255.0, (64, 64),
                                      interpolation=cv2.INTER_AREA) for p in video.frames])
        raw = ((frames[1:] - frames[:-1]) ** 2).mean(axis=(1, 2))
        scores.append((raw - raw.min()) / (raw.max() - raw.min() + 1e-12))
        labels.append(video.labels[1:])
        types.append(video.types[1:])
    s, y, t = map(np.concatenate, (scores, labels, types))
    per_type = {}
    for kind in ANOMALY_TYPES:
        keep = (t == kind) | (t == "normal")
        if (t == kind).any():
            per_type[kind] = roc_auc_score(t[keep] == kind, s[keep])
    return roc_auc_score(y, s), per_type


@pytest.mark.slow
def test_default_difficulty(tmp_path):
    layout = synthesize(tmp_path / "default", "default", seed=0, progress=False)
    auc, per_type = _frame_difference_auc(layout)
    assert set(per_type) == set(ANOMALY_TYPES)
    assert 0.6 <= auc <= 0.9, (auc, per_type)  # not trivially solvable, not hopeless
    assert per_type["speed"] > auc  # motion anomalies are what frame differencing sees
