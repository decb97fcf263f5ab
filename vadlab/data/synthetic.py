"""A seeded, deterministic walkway surveillance scene with typed anomalies, written in the common layout.

A fixed camera looks at a lawn with a paved walkway across it. Pedestrians (small articulated figures: legs
and arms swinging, a body, a head) walk along the walkway in both directions, alone or in small groups, enter
and leave the view. Trees sway in the wind and a lamp post occludes part of the walkway. Every video draws its
own sensor noise, camera gain flicker, slow lighting drift, colour tint, wind strength and crowd density.

Test videos insert anomalies of named types (`ANOMALY_TYPES`), each with a pixel mask of the anomalous object:

- ``speed``: a runner or a cyclist on the walkway, 2.5-4x walking speed (it looks normal, it moves too fast)
- ``appearance``: a cart or a small vehicle at walking speed (it looks wrong, it moves like everyone else)
- ``location``: a person walking on the grass
- ``direction``: a person crossing the walkway perpendicular to it
- ``static_object``: a bag that a passer-by leaves behind: it appears, then stays still

Frame labels are derived from the masks (1 exactly when some anomalous pixel is visible), so they agree by
construction; `types` holds "normal" or the type name per frame. `abnormal/` holds a pool of short labelled
clips of every type, generated from their own seeds (never cut from the test videos), for DREAM's protocol.

>>> layout = synthesize("data/synth", "tiny", seed=0)
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from vadlab.data.layout import Layout, LayoutWriter, load_layout
from vadlab.errors import ConfigError

ANOMALY_TYPES = ("speed", "appearance", "location", "direction", "static_object")
GENERATOR = "vadlab.data.synthetic"
GENERATOR_VERSION = 1

_SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn in 1/16 pixel
_ONE = 1 << _SHIFT


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


# ----------------------------------------------------------------------------------------------- drawing
def _p(v: float) -> int:
    return int(round(v * _ONE))


class _Painter:
    """Draws every primitive on the RGB canvas and, when a mask is kept, on the mask: 255 for an anomalous
    object, 0 for anything in front of it (so the mask holds the visible pixels of the anomaly only)."""

    def __init__(self, canvas: np.ndarray, mask: np.ndarray | None):
        self.canvas, self.mask, self.value = canvas, mask, 0

    def _both(self, fn: Callable, *args, color, **kw):
        fn(self.canvas, *args, color=color, lineType=cv2.LINE_AA, shift=_SHIFT, **kw)
        if self.mask is not None:
            fn(self.mask, *args, color=self.value, lineType=cv2.LINE_8, shift=_SHIFT, **kw)

    def ellipse(self, c, axes, angle, color, start=0, end=360, thickness=-1):
        axes = (max(_p(axes[0]), _ONE // 2), max(_p(axes[1]), _ONE // 2))
        self._both(cv2.ellipse, (_p(c[0]), _p(c[1])), axes, angle, start, end, color=color, thickness=thickness)

    def circle(self, c, r, color, thickness=-1):
        self._both(cv2.circle, (_p(c[0]), _p(c[1])), max(_p(r), _ONE // 2), color=color, thickness=thickness)

    def line(self, a, b, color, width):
        self._both(cv2.line, (_p(a[0]), _p(a[1])), (_p(b[0]), _p(b[1])), color=color,
                   thickness=max(1, int(round(width))))

    def poly(self, pts, color):
        pts = np.round(np.asarray(pts, dtype=np.float64) * _ONE).astype(np.int32)[None]
        self._both(cv2.fillPoly, pts, color=color)


def _col(rgb) -> tuple[int, int, int]:
    return tuple(int(np.clip(round(v), 0, 255)) for v in rgb)


def _shade(rgb, f: float) -> tuple[int, int, int]:
    return _col(np.asarray(rgb, dtype=np.float64) * f)


# ----------------------------------------------------------------------------------------------- the scene
class _Scene:
    """The static part shared by every video (one camera): background, walkway geometry, trees, lamp post."""

    def __init__(self, cfg: SynthConfig, seed: int):
        self.cfg = cfg
        W, H = cfg.width, cfg.height
        self.W, self.H = W, H
        rng = _rng(seed, 0)
        self.c0 = cfg.path_center * H  # walkway centre at mid-frame
        self.half = cfg.path_width * H / 2
        self.slope = cfg.path_slope
        self.background = self._background(rng)
        self.trees = []
        for k in range(cfg.n_trees):
            x = (k + 0.5 + rng.uniform(-0.3, 0.3)) * W / max(cfg.n_trees, 1)
            base = self.path_y(x) - self.half - rng.uniform(0.06, 0.14) * H
            size = rng.uniform(0.11, 0.16) * H
            blobs = [(rng.uniform(-0.7, 0.7) * size, -size * rng.uniform(1.1, 2.0), size * rng.uniform(0.45, 0.7),
                      rng.uniform(0.6, 1.0), rng.uniform(0, 2 * np.pi)) for _ in range(5)]
            self.trees.append((x, base, size, blobs, _col((rng.uniform(25, 45), rng.uniform(70, 95), 30))))
        lx = rng.uniform(0.3, 0.7) * W
        self.lamp = (lx, self.path_y(lx) + self.half + 0.07 * H)  # foot of the lamp post, just below the walkway

    def path_y(self, x):
        return self.c0 + self.slope * (np.asarray(x, dtype=np.float64) - self.W / 2)

    def scale(self, y: float) -> float:
        """Person height in pixels at foot height y (mild perspective: nearer is larger)."""
        return self.cfg.person_height * self.H * (0.7 + 0.6 * y / self.H) / (0.7 + 0.6 * self.c0 / self.H)

    def _noise(self, rng, sigma: float) -> np.ndarray:
        field = rng.standard_normal((self.H, self.W)).astype(np.float32)
        if sigma > 0:
            field = cv2.GaussianBlur(field, (0, 0), sigma)
            field /= field.std() + 1e-6
        return field

    def _background(self, rng) -> np.ndarray:
        H, W = self.H, self.W
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        grass = np.array([72, 112, 48], np.float32)
        g = (grass + 14 * self._noise(rng, 0.12 * W)[..., None] * np.array([0.8, 1.0, 0.6], np.float32)
             + 8 * self._noise(rng, 1.5)[..., None] + 7 * self._noise(rng, 0)[..., None])
        blades = self._noise(rng, 0) > 1.6  # bright grass tips
        g[blades] += np.array([18, 22, 10], np.float32)
        pave = np.array([168, 158, 140], np.float32)
        p = pave + 6 * self._noise(rng, 0.06 * W)[..., None] + 5 * self._noise(rng, 0)[..., None]
        d = yy - self.path_y(xx).astype(np.float32)  # signed distance to the centre line (vertical)
        tile = max(4.0, 0.06 * W)  # paving joints across and along the walkway
        along = (xx + self.slope * yy) / tile
        joints = (np.abs(along - np.round(along)) < 0.06) | (np.abs(np.mod(d + self.half, tile * 0.8)) < 0.5)
        p[joints] -= 16
        alpha = np.clip(self.half - np.abs(d) + 0.5, 0, 1)[..., None]
        img = alpha * p + (1 - alpha) * g
        edge = np.abs(np.abs(d) - self.half) < 0.7  # curb
        img[edge] = img[edge] * 0.75
        # a bench on the near lawn and a flower bed on the far lawn (static)
        img = np.clip(img, 0, 255).astype(np.uint8)
        painter = _Painter(img, None)
        bx = rng.uniform(0.1, 0.35) * W
        by = self.path_y(bx) + self.half + 0.18 * H
        s = self.scale(by)
        painter.poly([(bx, by - 0.35 * s), (bx + 1.4 * s, by - 0.35 * s), (bx + 1.4 * s, by - 0.25 * s),
                      (bx, by - 0.25 * s)], (110, 80, 50))
        for lx in (bx + 0.1 * s, bx + 1.3 * s):
            painter.line((lx, by - 0.3 * s), (lx, by), (60, 50, 40), 0.08 * s)
        fx = rng.uniform(0.55, 0.9) * W
        fy = self.path_y(fx) - self.half - 0.04 * H
        for _ in range(12):
            painter.circle((fx + rng.uniform(-0.08, 0.08) * W, fy + rng.uniform(-0.02, 0.02) * H),
                           0.012 * H, _col(rng.uniform([150, 30, 60], [240, 200, 200])))
        return img

    def draw_tree(self, painter: _Painter, tree, t: float, wind: float, wind_phase: float):
        x, base, size, blobs, green = tree
        painter.line((x, base), (x, base - 1.3 * size), (70, 52, 36), max(1.0, 0.12 * size))
        gust = 0.6 + 0.4 * math.sin(0.037 * t + wind_phase) * math.sin(0.011 * t + 2 * wind_phase)
        for dx, dy, r, light, ph in blobs:
            sway = wind * gust * (-dy / size) * 0.6 * math.sin(0.45 * t + ph + wind_phase)
            painter.ellipse((x + dx + sway, base + dy), (r, 0.8 * r), 0, _shade(green, 0.8 + 0.4 * light))

    def draw_lamp(self, painter: _Painter):
        x, foot = self.lamp
        top = foot - 0.55 * self.H
        painter.line((x, foot), (x, top), (55, 58, 62), max(1.0, 0.018 * self.W))
        painter.line((x, top), (x + 0.05 * self.W, top), (55, 58, 62), max(1.0, 0.012 * self.W))
        painter.ellipse((x + 0.05 * self.W, top + 0.012 * self.H), (0.02 * self.W, 0.012 * self.H), 0,
                        (225, 220, 190))


# ----------------------------------------------------------------------------------------------- actors
@dataclass
class _Actor:
    """Something that moves along a straight line: p(t) = p0 + v (t - t0), visible for t in (t_in, t_out)."""

    kind: str  # "walker" | "runner" | "cyclist" | "cart" | "vehicle" | "bag"
    p0: tuple[float, float]  # foot position at t0
    v: tuple[float, float]  # velocity, pixels per frame
    t0: float
    t_in: float  # enters the view
    t_out: float  # has left the view (inf: stays)
    size: float = 16.0  # height scale in pixels (for scale_with_y actors, at p0)
    facing: int = 1  # +1 right, -1 left, 0 towards / away from the camera
    colors: tuple = ()
    phase: float = 0.0
    cycle: float = 16.0  # pixels travelled per gait cycle
    anomaly: str | None = None  # anomaly type when it is anomalous
    anomalous_from: float = -np.inf  # it is anomalous only from this time on (a bag once dropped)
    carries_bag: bool = False
    carrier: "_Actor | None" = field(default=None, repr=False)  # a bag follows its carrier until dropped
    drop_t: float = np.inf
    scale_with_y: bool = False
    way: tuple | None = None  # piecewise-linear path instead of p0 + v t: (times, xs, ys)
    off_path: "_Scene | None" = field(default=None, repr=False)  # anomalous only while its feet are off the walkway

    def pos(self, t: float) -> tuple[float, float]:
        if self.way is not None:
            ts, xs, ys = self.way
            return float(np.interp(t, ts, xs)), float(np.interp(t, ts, ys))
        if self.carrier is not None:
            tt = min(t, self.drop_t)
            cx, cy = self.carrier.pos(tt)
            s = self.carrier.height(tt)
            return cx + 0.22 * s * self.carrier.facing, cy
        return self.p0[0] + self.v[0] * (t - self.t0), self.p0[1] + self.v[1] * (t - self.t0)

    def height(self, t: float, scene: "_Scene | None" = None) -> float:
        if self.scale_with_y and scene is not None:
            return scene.scale(self.pos(t)[1])
        return self.size

    def visible(self, t: float) -> bool:
        return self.t_in <= t <= self.t_out

    def anomalous(self, t: float) -> bool:
        if self.anomaly is None or t < self.anomalous_from:
            return False
        if self.off_path is not None:
            x, y = self.pos(t)
            return abs(y - float(self.off_path.path_y(x))) > self.off_path.half + 0.5
        return True


def _draw_person(P: _Painter, x, y, h, facing, colors, phase, *, run=False):
    shirt, trousers, skin, hair = colors
    amp = 0.85 if run else 0.5
    th = amp * math.sin(phase)
    lean = 0.1 * h * facing if run else 0.0
    hip = (x + 0.3 * lean, y - 0.47 * h)
    leg = 0.47 * h
    lw = max(1.0, 0.11 * h)
    if facing == 0:  # seen from the front: legs alternate up and down, arms at the sides
        for side, ph in ((-1, 0.0), (1, math.pi)):
            lift = 0.08 * h * max(0.0, math.sin(phase + ph))
            P.line((x + side * 0.06 * h, hip[1]), (x + side * 0.07 * h, y - lift), trousers, lw)
        P.ellipse((x, y - 0.68 * h), (0.13 * h, 0.21 * h), 0, shirt)
        for side in (-1, 1):
            swing = 0.04 * h * math.sin(phase + (side > 0) * math.pi)
            P.line((x + side * 0.13 * h, y - 0.83 * h), (x + side * 0.15 * h, y - 0.52 * h + swing),
                   _shade(shirt, 0.8), max(1.0, 0.07 * h))
        P.circle((x, y - 0.91 * h), 0.09 * h, skin)
        P.ellipse((x, y - 0.93 * h), (0.09 * h, 0.07 * h), 0, hair, 180, 360)
        return
    knee = 0.25 if run else 0.1
    for s in (1, -1):  # far leg then near leg
        a = s * th
        kx, ky = hip[0] + 0.5 * leg * math.sin(a), hip[1] + 0.5 * leg * math.cos(a)
        bend = knee * max(0.0, -s * math.sin(phase)) * facing
        fx, fy = kx + 0.5 * leg * math.sin(a - bend * 2), ky + 0.5 * leg * math.cos(a - bend * 2)
        col = trousers if s > 0 else _shade(trousers, 0.85)
        P.line(hip, (kx, ky), col, lw)
        P.line((kx, ky), (fx, min(fy, y)), col, lw)
    sh = (x + lean, y - 0.8 * h)
    P.line(sh, (sh[0] - 0.3 * h * math.sin(0.8 * th), sh[1] + 0.3 * h * math.cos(0.8 * th)),
           _shade(shirt, 0.75), max(1.0, 0.07 * h))
    P.ellipse((x + 0.6 * lean, y - 0.67 * h), (0.09 * h, 0.21 * h), math.degrees(math.atan2(lean, 0.4 * h)), shirt)
    P.line(sh, (sh[0] + 0.3 * h * math.sin(0.8 * th), sh[1] + 0.3 * h * math.cos(0.8 * th)), shirt,
           max(1.0, 0.07 * h))
    P.circle((x + 1.2 * lean, y - 0.91 * h), 0.09 * h, skin)
    P.ellipse((x + 1.2 * lean, y - 0.93 * h), (0.09 * h, 0.07 * h), 0, hair, 180, 360)


def _draw_cyclist(P: _Painter, x, y, h, f, colors, phase):
    shirt, trousers, skin, hair = colors[:4]
    frame_col = colors[4] if len(colors) > 4 else (40, 40, 40)
    r = 0.19 * h
    back, front = (x - f * 0.33 * h, y - r), (x + f * 0.33 * h, y - r)
    for c in (back, front):
        P.circle(c, r, (30, 30, 30), thickness=max(1, int(round(0.05 * h))))
    seat, bars, crank = (x - f * 0.08 * h, y - 0.52 * h), (x + f * 0.26 * h, y - 0.6 * h), (x, y - r)
    lw = max(1.0, 0.05 * h)
    for a, b in ((back, crank), (crank, seat), (seat, back), (crank, bars), (bars, front), (seat, bars)):
        P.line(a, b, frame_col, lw)
    for s in (1, -1):
        ped = (crank[0] + 0.1 * h * math.cos(phase + (s > 0) * math.pi), crank[1] + 0.1 * h * math.sin(phase + (s > 0) * math.pi))
        knee = ((seat[0] + ped[0]) / 2 + f * 0.12 * h, (seat[1] + ped[1]) / 2 - 0.05 * h)
        P.line(seat, knee, trousers, max(1.0, 0.1 * h))
        P.line(knee, ped, trousers, max(1.0, 0.1 * h))
    sh = (x + f * 0.12 * h, y - 0.85 * h)
    P.line(seat, sh, shirt, max(1.0, 0.17 * h))
    P.line(sh, bars, _shade(shirt, 0.8), max(1.0, 0.07 * h))
    P.circle((sh[0] + f * 0.06 * h, y - 0.98 * h), 0.09 * h, skin)
    P.ellipse((sh[0] + f * 0.06 * h, y - 1.0 * h), (0.095 * h, 0.075 * h), 0, hair, 180, 360)


def _draw_cart(P: _Painter, x, y, h, f, colors, vehicle: bool):
    body, trim = colors[0], colors[1]
    L = (2.0 if vehicle else 1.5) * h
    wr = (0.13 if vehicle else 0.09) * h
    bottom = y - 1.2 * wr
    top = bottom - (0.45 if vehicle else 0.5) * h
    x0, x1 = x - L / 2, x + L / 2
    if vehicle:  # a small utility vehicle: body, cabin roof on posts, wheels
        P.poly([(x0, bottom), (x1, bottom), (x1, top + 0.1 * h), (x1 - f * 0.0, top), (x0, top)], body)
        roof = top - 0.5 * h
        for px in (x0 + 0.1 * L, x0 + 0.55 * L) if f > 0 else (x1 - 0.1 * L, x1 - 0.55 * L):
            P.line((px, top), (px, roof), trim, max(1.0, 0.05 * h))
        rx0, rx1 = (x0, x0 + 0.65 * L) if f > 0 else (x1 - 0.65 * L, x1)
        P.poly([(rx0, roof), (rx1, roof), (rx1, roof - 0.07 * h), (rx0, roof - 0.07 * h)], trim)
        P.line((x0, bottom - 0.1 * h), (x1, bottom - 0.1 * h), trim, max(1.0, 0.05 * h))
    else:  # a hand cart with a load: box, handle, load
        P.poly([(x0, bottom), (x1, bottom), (x1 + f * 0.05 * h, top), (x0 - f * 0.05 * h, top)], body)
        hx = x0 if f > 0 else x1
        P.line((hx, top + 0.1 * h), (hx - f * 0.3 * h, top - 0.3 * h), trim, max(1.0, 0.06 * h))
        P.poly([(x0 + 0.15 * L, top), (x1 - 0.2 * L, top), (x1 - 0.25 * L, top - 0.25 * h),
                (x0 + 0.2 * L, top - 0.25 * h)], colors[2])
    for wx in (x0 + 0.2 * L, x1 - 0.2 * L):
        P.circle((wx, y - wr), wr, (28, 28, 30))


class _Video:
    """The dynamic part of one video: its actors and nuisance draws, rendered frame by frame."""

    def __init__(self, scene: _Scene, rng: np.random.Generator, n_frames: int):
        self.scene, self.rng, self.n = scene, rng, n_frames
        cfg = scene.cfg
        self.noise = rng.uniform(*cfg.noise_sigma)
        self.flicker = rng.uniform(*cfg.flicker)
        self.gain0 = rng.uniform(*cfg.brightness)
        self.drift = rng.uniform(*cfg.drift)
        self.drift_period = rng.uniform(1.5, 4.0) * n_frames
        self.drift_phase = rng.uniform(0, 2 * np.pi)
        self.tint = 1 + rng.uniform(-0.04, 0.04, 3)
        self.wind = rng.uniform(*cfg.wind)
        self.wind_phase = rng.uniform(0, 2 * np.pi)
        self.density = rng.uniform(*cfg.density)
        self.actors: list[_Actor] = []
        self.events: list[dict] = []
        self._pedestrians()

    # --- population
    def _walk_speed(self) -> float:
        return self.rng.uniform(*self.scene.cfg.walk_speed) * self.scene.W

    def _person_colors(self):
        rng = self.rng
        hsv = np.array([[[rng.uniform(0, 180), rng.uniform(40, 200), rng.uniform(60, 235)]]], np.uint8)
        shirt = _col(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
        trousers = [(40, 50, 80), (30, 30, 34), (150, 130, 100), (90, 90, 95), (60, 70, 110)][rng.integers(5)]
        skin = [(235, 200, 170), (200, 150, 110), (150, 100, 70), (95, 65, 45)][rng.integers(4)]
        hair = [(30, 25, 20), (90, 60, 30), (180, 150, 90), (120, 120, 120)][rng.integers(4)]
        return shirt, _shade(trousers, rng.uniform(0.85, 1.15)), skin, hair

    def _along_path(self, t_enter, speed, direction, lane, kind="walker", size=None, **kw) -> _Actor:
        """An actor entering at the left (direction +1) or right (-1) edge at t_enter, walking along the path."""
        sc = self.scene
        h = size or sc.scale(sc.c0 + lane)
        margin = 1.3 * h
        ux, uy = 1 / math.hypot(1, sc.slope), sc.slope / math.hypot(1, sc.slope)
        x_start = -margin if direction > 0 else sc.W + margin
        y_start = float(sc.path_y(x_start)) + lane
        v = (direction * speed * ux, direction * speed * uy)
        dur = (sc.W + 2 * margin) / (speed * ux)
        return _Actor(kind=kind, p0=(x_start, y_start), v=v, t0=t_enter, t_in=t_enter, t_out=t_enter + dur,
                      size=h, facing=direction, colors=self._person_colors(), phase=self.rng.uniform(0, 2 * np.pi),
                      cycle=1.15 * h, **kw)

    def _pedestrians(self):
        rng, sc, cfg = self.rng, self.scene, self.scene.cfg
        t_warm = (sc.W * 1.3) / (cfg.walk_speed[0] * sc.W)
        lam = self.density
        swing = [(rng.uniform(0.3, 1.0), rng.uniform(0.5, 2.0) / self.n, rng.uniform(0, 2 * np.pi)) for _ in range(2)]
        for direction in (1, -1):
            t = -t_warm
            while True:
                t += rng.exponential(1 / (lam * (1 + cfg.density_swing)))
                if t >= self.n:
                    break
                rate = 1 + cfg.density_swing * sum(a * math.sin(2 * np.pi * f * t + p) for a, f, p in swing) / 1.3
                if rng.uniform() * (1 + cfg.density_swing) > rate:
                    continue
                speed = self._walk_speed()
                group = 1 + min(int(rng.poisson(0.5)), 2)
                lane = rng.uniform(-0.7, 0.75) * sc.half
                for g in range(group):
                    li = float(np.clip(lane + rng.uniform(-0.25, 0.25) * sc.half, -0.8 * sc.half, 0.85 * sc.half))
                    lag = g * rng.uniform(0.5, 1.2) * sc.scale(sc.c0) / speed  # group members trail each other
                    a = self._along_path(t + lag, speed * rng.uniform(0.97, 1.03), direction, li)
                    if a.t_out > 0:
                        self.actors.append(a)
                        if rng.uniform() < 0.2:  # some people carry a bag (normal); only left bags are anomalous
                            self.actors.append(self._bag(a, np.inf))

    def _bag(self, carrier: _Actor, drop_t: float, anomaly: str | None = None) -> _Actor:
        rng = self.rng
        col = _col(rng.uniform([20, 20, 20], [200, 120, 90])) if rng.uniform() < 0.7 else _col((200, 40, 40))
        return _Actor(kind="bag", p0=carrier.p0, v=(0, 0), t0=carrier.t0, t_in=carrier.t_in,
                      t_out=np.inf if drop_t < np.inf else carrier.t_out, size=carrier.size, colors=(col,),
                      carrier=carrier, drop_t=drop_t, anomaly=anomaly, anomalous_from=drop_t)

    # --- anomalies
    def add_event(self, kind: str, start: float) -> tuple[float, float]:
        """Insert one anomaly whose anomalous interval starts at `start`; returns (start, end) of that interval."""
        rng, sc = self.rng, self.scene
        direction = 1 if rng.uniform() < 0.5 else -1
        detail = kind
        if kind == "speed":
            lane = rng.uniform(-0.5, 0.6) * sc.half
            speed = self._walk_speed() * rng.uniform(*sc.cfg.speed_factor)
            detail = "cyclist" if rng.uniform() < 0.5 else "runner"
            a = self._along_path(start, speed, direction, lane, kind=detail, anomaly=kind)
            if detail == "cyclist":
                a.colors = a.colors + (_col(rng.uniform(20, 220, 3)),)
                a.cycle = 2.2 * a.size
            else:
                a.cycle = 2.0 * a.size
        elif kind == "appearance":
            lane = rng.uniform(-0.3, 0.4) * sc.half
            detail = "vehicle" if rng.uniform() < 0.5 else "cart"
            h = sc.scale(sc.c0 + lane)
            lo, hi = sc.cfg.walk_speed  # pushed or driven at an unhurried walking pace
            speed = rng.uniform(lo, 0.5 * (lo + hi)) * sc.W
            a = self._along_path(start, speed, direction, lane, kind=detail, anomaly=kind)
            margin = 1.3 * h * (2.2 if detail == "vehicle" else 1.8)
            ux = 1 / math.hypot(1, sc.slope)
            x_start = -margin if direction > 0 else sc.W + margin
            a.p0 = (x_start, float(sc.path_y(x_start)) + lane)
            a.t_out = start + (sc.W + 2 * margin) / (abs(a.v[0]))
            # painted in pavement-like tones (beige, stone, sage, sand): its shape and hue are what is wrong
            body = [(176, 160, 128), (150, 160, 168), (140, 168, 140), (190, 150, 120), (160, 156, 150)][rng.integers(5)]
            body = _shade(body, rng.uniform(0.92, 1.08))
            a.colors = (body, _shade(body, 0.8), _shade(_col(rng.uniform(120, 200, 3)), 1.0))
        elif kind == "location":  # a walker leaves the walkway, crosses part of the lawn, then comes back
            far = rng.uniform() < 0.4
            speed = self._walk_speed()
            lane = (-0.7 if far else 0.75) * sc.half
            if far:
                off = -sc.half - rng.uniform(0.06, 0.13) * sc.H
            else:
                off = sc.half + rng.uniform(0.25, 0.55) * (sc.H - sc.c0 - sc.half)
            a = self._along_path(0.0, speed, direction, lane, anomaly=kind, scale_with_y=True)
            x_in, x_end = a.p0[0], a.p0[0] + direction * (sc.W + 2 * 1.3 * a.size)
            x1 = x_in + direction * rng.uniform(0.15, 0.45) * sc.W  # where it steps off
            ramp = direction * abs(off - lane) * rng.uniform(0.7, 1.2)
            x2 = x1 + ramp
            x3 = x2 + direction * rng.uniform(0.08, 0.25) * sc.W
            x4 = x3 + ramp
            xs = np.array([x_in, x1, x2, x3, x4, max(x4, x_end) if direction > 0 else min(x4, x_end)])
            ys = np.array([lane, lane, off, off, lane, lane]) + sc.path_y(xs)
            seg = np.hypot(np.diff(xs), np.diff(ys))
            ts = np.concatenate([[0.0], np.cumsum(seg) / speed])
            # time at which the feet leave the walkway: `start`
            t_off = ts[1] + (ts[2] - ts[1]) * (sc.half - abs(lane)) / max(abs(off - lane), 1e-6)
            ts = ts + (start - t_off)
            a.way = (tuple(ts), tuple(xs), tuple(ys))
            a.t0, a.t_in, a.t_out = ts[0], ts[0], ts[-1]
            a.off_path = sc
            self.actors.append(a)
            t_back = ts[3] + (ts[4] - ts[3]) * (abs(off - lane) - (sc.half - abs(lane))) / max(abs(off - lane), 1e-6)
            self.events.append({"type": kind, "object": "walker", "start": round(start, 3), "end": round(t_back, 3)})
            return start, t_back
        elif kind == "direction":  # crossing the walkway at a right angle, from the far or near edge
            speed = self._walk_speed()
            x_cross = rng.uniform(0.2, 0.8) * sc.W
            down = 1 if rng.uniform() < 0.5 else -1
            n = math.hypot(1, sc.slope)
            ux, uy = -sc.slope / n * down, 1 / n * down
            h_far = sc.scale(0.0)
            y_cross = float(sc.path_y(x_cross))
            # start just outside the top (or bottom) edge
            y_start = -0.1 * sc.H if down > 0 else sc.H + 1.2 * sc.scale(sc.H)
            k = (y_start - y_cross) / uy
            p0 = (x_cross + k * ux, y_start + 0.0)
            dist = (sc.H * 1.25 + 1.2 * sc.scale(sc.H) + h_far) / abs(uy)
            a = _Actor(kind="walker", p0=p0, v=(speed * ux, speed * uy), t0=start, t_in=start,
                       t_out=start + dist / speed, facing=0, colors=self._person_colors(),
                       phase=rng.uniform(0, 2 * np.pi), cycle=1.15 * sc.scale(sc.c0), anomaly=kind,
                       scale_with_y=True)
        elif kind == "static_object":  # a passer-by drops a bag at `start`, which stays
            lane = rng.uniform(-0.5, 0.6) * sc.half
            speed = self._walk_speed()
            x_drop = rng.uniform(0.2, 0.8) * sc.W
            carrier = self._along_path(0.0, speed, direction, lane)
            t_reach = (x_drop - carrier.p0[0]) / carrier.v[0]
            carrier.t0 = carrier.t_in = start - t_reach
            carrier.t_out = carrier.t_in + (carrier.t_out - 0.0)
            self.actors.append(carrier)
            a = self._bag(carrier, start, anomaly=kind)
            self.actors.append(a)
            self.events.append({"type": kind, "object": "bag", "start": round(start, 3)})
            return start, np.inf
        else:  # pragma: no cover - guarded by ANOMALY_TYPES
            raise ConfigError(f"unknown anomaly type {kind!r}; valid: {', '.join(ANOMALY_TYPES)}")
        self.actors.append(a)
        self.events.append({"type": kind, "object": detail, "start": round(a.t_in, 3), "end": round(a.t_out, 3)})
        return a.t_in, a.t_out

    # --- rendering
    def _draw_actor(self, P: _Painter, a: _Actor, t: float):
        sc = self.scene
        x, y = a.pos(t)
        h = a.height(t, sc)
        dist = math.hypot(*a.v) * (t - a.t0)
        phase = a.phase + 2 * np.pi * dist / a.cycle
        if a.kind in ("walker", "runner"):
            _draw_person(P, x, y, h, a.facing, a.colors, phase, run=a.kind == "runner")
        elif a.kind == "cyclist":
            _draw_cyclist(P, x, y, h, a.facing, a.colors, phase)
        elif a.kind in ("cart", "vehicle"):
            _draw_cart(P, x, y, h, a.facing, a.colors, a.kind == "vehicle")
        elif a.kind == "bag":
            hb = a.carrier.height(min(t, a.drop_t), sc)
            lift = 0.0 if t >= a.drop_t else 0.32 * hb
            P.poly([(x - 0.1 * hb, y - lift), (x + 0.1 * hb, y - lift), (x + 0.1 * hb, y - lift - 0.2 * hb),
                    (x - 0.1 * hb, y - lift - 0.2 * hb)], a.colors[0])
            P.line((x - 0.05 * hb, y - lift - 0.2 * hb), (x + 0.05 * hb, y - lift - 0.24 * hb),
                   _shade(a.colors[0], 0.6), 1)

    def render(self, t: int, with_mask: bool) -> tuple[np.ndarray, np.ndarray | None, str | None]:
        sc = self.scene
        live = [a for a in self.actors if a.visible(t)]
        # soft shadows under the actors
        shade = np.full((sc.H, sc.W), 255, np.uint8)
        for a in live:
            x, y = a.pos(t)
            h = a.height(t, sc) if a.kind != "bag" else 0.3 * a.carrier.height(t, sc)
            w = 0.25 * h if a.kind in ("walker", "runner") else (0.6 * h if a.kind != "bag" else 0.4 * h)
            cv2.ellipse(shade, (_p(x + 0.1 * h), _p(y)), (_p(w), _p(0.06 * h + 0.5)), 0, 0, 360, 175, -1,
                        cv2.LINE_AA, _SHIFT)
        canvas = (sc.background.astype(np.float32) * (shade[..., None].astype(np.float32) / 255.0))
        canvas = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
        mask = np.zeros((sc.H, sc.W), np.uint8) if with_mask else None
        P = _Painter(canvas, mask)
        # depth order: foot height (ties broken by creation order, stable sort)
        items = [(a.pos(t)[1], i, a) for i, a in enumerate(live)]
        items += [(tr[1], -1 - k, tr) for k, tr in enumerate(sc.trees)]
        items.append((sc.lamp[1], -100, "lamp"))
        items.sort(key=lambda it: (it[0], it[1]))
        kinds = []
        for _, _, item in items:
            if isinstance(item, _Actor):
                anomalous = item.anomalous(t)
                P.value = 255 if anomalous else 0
                self._draw_actor(P, item, t)
                if anomalous:
                    kinds.append(item.anomaly)
            else:
                P.value = 0
                if item == "lamp":
                    sc.draw_lamp(P)
                else:
                    sc.draw_tree(P, item, t, self.wind, self.wind_phase)
        # camera: lighting drift, gain flicker, tint, sensor noise
        gain = self.gain0 * (1 + self.drift * math.sin(2 * np.pi * t / self.drift_period + self.drift_phase))
        gain *= 1 + self.flicker * self.rng.standard_normal()
        img = canvas.astype(np.float32) * (gain * self.tint).astype(np.float32)
        img += self.noise * self.rng.standard_normal(img.shape, dtype=np.float32)
        frame = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        kind = None
        if mask is not None and mask.any():
            kind = kinds[0] if kinds else None
        return frame, mask, kind


def _render_video(video: _Video, with_mask: bool):
    frames, masks, types = [], [], []
    for t in range(video.n):
        frame, mask, kind = video.render(t, with_mask)
        frames.append(frame)
        if with_mask:
            masks.append(mask)
            types.append(kind or "normal")
    if not with_mask:
        return frames, None, None, None
    labels = np.array([int(m.any()) for m in masks], np.uint8)
    return frames, masks, labels, np.array(types)


def _test_video(scene, rng, n, index, order) -> _Video:
    """A test video: its primary anomaly type (cycling through `order`, so every type appears) and often a
    second event, mostly a short speed event, placed before or after it when there is room."""
    video = _Video(scene, rng, n)
    first = order[index % len(order)]
    second = None
    if rng.uniform() < scene.cfg.second_event_prob:
        others = [k for k in ANOMALY_TYPES if k != first]
        second = "speed" if first != "speed" and rng.uniform() < 0.75 else others[int(rng.integers(len(others)))]
    gap = rng.uniform(0.08, 0.2) * n
    # long events (they often last to the end) start later, leaving normal frames before them
    t_first = rng.uniform(0.08, 0.3) * n if first == "speed" else rng.uniform(0.3, 0.5) * n
    if second is not None and second != "static_object" and first != "speed" or second == "speed":
        # try the second event before the primary one; undo it if it leaves no room
        keep = len(video.actors), len(video.events)
        _, end = video.add_event(second, rng.uniform(0.02, 0.08) * n)
        if end + gap <= 0.72 * n:
            t_first = max(t_first, end + gap)
            second = None
        else:
            del video.actors[keep[0]:], video.events[keep[1]:]
    _, end = video.add_event(first, t_first)
    if second is not None and first != "static_object" and end + gap < 0.85 * n:
        video.add_event(second, end + gap)
    return video


def _abnormal_clip(scene, rng, n, kind) -> _Video:
    video = _Video(scene, rng, n)
    if kind == "static_object":
        video.add_event(kind, rng.uniform(1, max(1.5, n / 3)))
        return video
    # place the event so that the clip falls inside its visible interval (a margin at both ends)
    t_in, t_out = video.add_event(kind, 0.0)
    dur = t_out - t_in
    lo, hi = 0.2 * dur, 0.8 * dur - n
    offset = rng.uniform(lo, hi) if hi > lo else max(0.0, 0.5 * (dur - n))
    actor = video.actors[-1]
    actor.t0, actor.t_in, actor.t_out = actor.t0 - offset, actor.t_in - offset, actor.t_out - offset
    if actor.way is not None:
        actor.way = (tuple(np.asarray(actor.way[0]) - offset),) + actor.way[1:]
    ev = video.events[-1]
    ev.update(start=round(ev["start"] - offset, 3), end=round(ev["end"] - offset, 3))
    return video


def synthesize(root: str | os.PathLike, preset: str = "default", *, seed: int = 0, overwrite: bool = False,
               progress: bool = True, **overrides) -> Layout:
    """Generate the synthetic walkway dataset at `root` (common layout) and return `load_layout(root)`.

    Same `seed` and `preset` (and overrides) give byte-identical files. `overrides` replace `SynthConfig` fields;
    an unknown preset or key raises ConfigError; an existing `root` raises DataError unless `overwrite`.
    """
    cfg = _resolve(preset, overrides)
    seed = int(seed)
    root = Path(root).expanduser()
    scene = _Scene(cfg, seed)
    plan = _rng(seed, 1)
    order = list(ANOMALY_TYPES)
    plan.shuffle(order)
    jobs = []  # (split, name, n, builder)
    for i in range(cfg.n_train):
        jobs.append(("training", f"train_{i:03d}", int(plan.integers(cfg.train_frames[0], cfg.train_frames[1] + 1)),
                     lambda s, r, n, i=i: _Video(s, r, n)))
    for i in range(cfg.n_test):
        jobs.append(("testing", f"test_{i:03d}", int(plan.integers(cfg.test_frames[0], cfg.test_frames[1] + 1)),
                     lambda s, r, n, i=i: _test_video(s, r, n, i, order)))
    for i in range(cfg.n_abnormal):
        kind = ANOMALY_TYPES[i % len(ANOMALY_TYPES)]
        jobs.append(("abnormal", f"abnormal_{i:03d}_{kind}",
                     int(plan.integers(cfg.abnormal_frames[0], cfg.abnormal_frames[1] + 1)),
                     lambda s, r, n, kind=kind: _abnormal_clip(s, r, n, kind)))
    split_key = {"training": 2, "testing": 3, "abnormal": 4}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(jobs), desc=f"synthesize {preset}", unit="video")
    meta_videos = {}
    with LayoutWriter(root, overwrite=overwrite, ext=cfg.ext) as writer:
        index = {"training": 0, "testing": 0, "abnormal": 0}
        for split, name, n, build in jobs:
            rng = _rng(seed, split_key[split], index[split])
            index[split] += 1
            video = build(scene, rng, n)
            frames, masks, labels, types = _render_video(video, with_mask=split != "training")
            if split == "training":
                writer.add_frames(split, name, frames)
            else:
                writer.add_frames(split, name, frames, labels=labels, masks=masks, types=types)
            meta_videos[f"{split}/{name}"] = {
                "frames": n, "noise_sigma": round(video.noise, 4), "lighting_drift": round(video.drift, 4),
                "brightness": round(video.gain0, 4), "wind": round(video.wind, 4),
                "density": round(video.density, 5), "events": video.events,
                "anomalous_frames": int(labels.sum()) if labels is not None else 0,
            }
            if bar is not None:
                bar.update(1)
        writer.write_meta({
            "generator": GENERATOR, "generator_version": GENERATOR_VERSION, "preset": preset, "seed": seed,
            "overrides": {k: overrides[k] for k in sorted(overrides)}, "config": asdict(cfg),
            "anomaly_types": list(ANOMALY_TYPES), "videos": meta_videos,
        })
    if bar is not None:
        bar.close()
    return load_layout(root)


def montage(layout: Layout, path: str | os.PathLike, *, per_type: int = 4) -> Path:
    """Save a PNG grid: `per_type` frames of each anomaly type (rows), the anomaly mask outlined in red."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from vadlab.data.layout import read_image

    rows = []
    for kind in ANOMALY_TYPES:
        picks = []
        for video in layout.testing + layout.abnormal:
            if video.types is None or video.masks is None:
                continue
            idx = np.flatnonzero(video.types == kind)
            if len(idx):
                chosen = idx[np.linspace(0, len(idx) - 1, min(per_type, len(idx))).round().astype(int)]
                picks += [(video, int(i)) for i in chosen]
            if len(picks) >= per_type:
                break
        rows.append((kind, picks[:per_type]))
    fig, axes = plt.subplots(len(rows), per_type, figsize=(2.6 * per_type, 2.1 * len(rows)), squeeze=False)
    for r, (kind, picks) in enumerate(rows):
        for c in range(per_type):
            ax = axes[r, c]
            ax.set_axis_off()
            if c >= len(picks):
                continue
            video, i = picks[c]
            ax.imshow(read_image(video.frames[i], channels=3), interpolation="nearest")
            mask = read_image(video.masks[i], channels=1)
            if mask.any():
                ax.contour(mask > 0, levels=[0.5], colors="red", linewidths=0.8)
            ax.set_title(f"{kind}\n{video.name} #{i}", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["ANOMALY_TYPES", "PRESETS", "SynthConfig", "synthesize", "montage"]
