"""The knobs of the synthetic walkway dataset: `SynthConfig`, the presets, override checks, seeded streams."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from vadlab.errors import ConfigError

GENERATOR = "vadlab.data.synthetic"
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class SynthConfig:
    """Everything that shapes a synthetic dataset. Ranges are (low, high), drawn per video."""

    width: int = 160  # frame width in pixels
    height: int = 120  # frame height in pixels
    n_train: int = 8  # normal training videos
    n_test: int = 8  # test videos, each with 1-2 anomaly events (every type appears when n_test >= 5)
    n_abnormal: int = 10  # short labelled anomaly clips in abnormal/ (types cycle through ANOMALY_TYPES)
    train_frames: tuple[int, int] = (120, 150)  # frames per training video
    test_frames: tuple[int, int] = (120, 150)  # frames per test video
    abnormal_frames: tuple[int, int] = (16, 24)  # frames per abnormal clip
    second_event_prob: float = 0.8  # chance that a test video gets a second anomaly event after the first
    # scene geometry, as fractions of the frame
    path_center: float = 0.5  # walkway centre line height at mid-frame (fraction of height)
    path_width: float = 0.3  # walkway width (fraction of height)
    path_slope: float = 0.12  # walkway slope (pixels down per pixel right)
    person_height: float = 0.15  # pedestrian height on the walkway centre (fraction of height)
    n_trees: int = 3  # trees on the far lawn (they sway in the wind)
    # motion
    walk_speed: tuple[float, float] = (0.0055, 0.0105)  # walking speed, fraction of the width per frame
    speed_factor: tuple[float, float] = (2.5, 4.0)  # runner / cyclist speed as a multiple of walking speed
    # nuisance factors, drawn per video
    density: tuple[float, float] = (0.003, 0.016)  # group arrivals per frame and direction (crowd density)
    density_swing: float = 0.5  # how much the arrival rate drifts within a video (0 = constant)
    noise_sigma: tuple[float, float] = (2.0, 7.0)  # Gaussian sensor noise, std in 0..255 grey levels
    flicker: tuple[float, float] = (0.0, 0.006)  # camera gain jitter per frame, std (relative)
    drift: tuple[float, float] = (0.02, 0.12)  # slow global brightness change, amplitude (relative)
    brightness: tuple[float, float] = (0.85, 1.1)  # overall exposure of a video
    wind: tuple[float, float] = (0.0, 1.5)  # tree sway amplitude in pixels at the canopy edge
    ext: str = ".png"  # frame file extension (lossless keeps runs byte-identical)


PRESETS: dict[str, SynthConfig] = {
    "tiny": SynthConfig(width=80, height=60, n_train=2, n_test=2, n_abnormal=5, train_frames=(24, 24),
                        test_frames=(24, 28), abnormal_frames=(12, 12), n_trees=2,
                        walk_speed=(0.011, 0.02), density=(0.02, 0.05)),
    "default": SynthConfig(),
}


def _resolve(preset: str, overrides: dict) -> SynthConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown synthetic preset {preset!r}; valid: {', '.join(sorted(PRESETS))}")
    base = PRESETS[preset]
    valid = {f.name: f for f in fields(SynthConfig)}
    bad = sorted(k for k in overrides if k not in valid)
    if bad:
        raise ConfigError(f"unknown SynthConfig key(s) {', '.join(map(repr, bad))}; valid: {', '.join(valid)}")
    clean = {}
    for key, value in overrides.items():
        default = getattr(base, key)
        if isinstance(default, tuple):
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise ConfigError(f"SynthConfig.{key} must be a (low, high) pair, got {value!r}")
            value = tuple(type(default[0])(v) for v in value)
            if value[0] > value[1]:
                raise ConfigError(f"SynthConfig.{key}: low {value[0]} > high {value[1]}")
        clean[key] = value
    cfg = replace(base, **clean)
    if cfg.width < 32 or cfg.height < 24:
        raise ConfigError(f"SynthConfig width x height must be at least 32x24, got {cfg.width}x{cfg.height}")
    if cfg.n_train < 1 or cfg.n_test < 1 or cfg.n_abnormal < 0:
        raise ConfigError("SynthConfig needs n_train >= 1, n_test >= 1, n_abnormal >= 0")
    if min(cfg.train_frames + cfg.test_frames) < 8 or (cfg.n_abnormal and cfg.abnormal_frames[0] < 4):
        raise ConfigError("SynthConfig videos need at least 8 frames (abnormal clips at least 4)")
    return cfg


def _rng(seed: int, *key: int) -> np.random.Generator:
    """An independent stream per (seed, key): stable whatever else is generated."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy=seed, spawn_key=key)))

