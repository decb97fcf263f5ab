"""Drawing the walkway scene: the painter (canvas and anomaly mask at once), the static scene, the moving actors
(pedestrians, runners, cyclists, carts, bags) and the compositing of one frame with its camera effects."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import cv2
import numpy as np

from vadlab.data.synthetic.config import SynthConfig, _rng

if TYPE_CHECKING:
    from vadlab.data.synthetic.generate import _Video

_SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn in 1/16 pixel
_ONE = 1 << _SHIFT


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
        ped = (crank[0] + 0.1 * h * math.cos(phase + (s > 0) * math.pi),
               crank[1] + 0.1 * h * math.sin(phase + (s > 0) * math.pi))
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


# ----------------------------------------------------------------------------------------------- one frame
def _draw_walker(P: _Painter, a: _Actor, x: float, y: float, h: float, phase: float, t: float, sc: _Scene):
    _draw_person(P, x, y, h, a.facing, a.colors, phase, run=False)


def _draw_runner(P: _Painter, a: _Actor, x: float, y: float, h: float, phase: float, t: float, sc: _Scene):
    _draw_person(P, x, y, h, a.facing, a.colors, phase, run=True)


def _draw_bike(P: _Painter, a: _Actor, x: float, y: float, h: float, phase: float, t: float, sc: _Scene):
    _draw_cyclist(P, x, y, h, a.facing, a.colors, phase)


def _draw_hand_cart(P: _Painter, a: _Actor, x: float, y: float, h: float, phase: float, t: float, sc: _Scene):
    _draw_cart(P, x, y, h, a.facing, a.colors, False)


def _draw_vehicle(P: _Painter, a: _Actor, x: float, y: float, h: float, phase: float, t: float, sc: _Scene):
    _draw_cart(P, x, y, h, a.facing, a.colors, True)


def _draw_bag(P: _Painter, a: _Actor, x: float, y: float, h: float, phase: float, t: float, sc: _Scene):
    """Carried at hand height until `drop_t`, then on the ground."""
    hb = a.carrier.height(min(t, a.drop_t), sc)
    lift = 0.0 if t >= a.drop_t else 0.32 * hb
    P.poly([(x - 0.1 * hb, y - lift), (x + 0.1 * hb, y - lift), (x + 0.1 * hb, y - lift - 0.2 * hb),
            (x - 0.1 * hb, y - lift - 0.2 * hb)], a.colors[0])
    P.line((x - 0.05 * hb, y - lift - 0.2 * hb), (x + 0.05 * hb, y - lift - 0.24 * hb),
           _shade(a.colors[0], 0.6), 1)


#: How each kind of actor (`_Actor.kind`) is drawn at foot position (x, y), height h, gait phase `phase`.
ACTOR_DRAWERS: dict[str, Callable[..., None]] = {
    "walker": _draw_walker,
    "runner": _draw_runner,
    "cyclist": _draw_bike,
    "cart": _draw_hand_cart,
    "vehicle": _draw_vehicle,
    "bag": _draw_bag,
}


def _draw_actor(P: _Painter, a: _Actor, t: float, sc: _Scene):
    x, y = a.pos(t)
    h = a.height(t, sc)
    dist = math.hypot(*a.v) * (t - a.t0)
    phase = a.phase + 2 * np.pi * dist / a.cycle
    ACTOR_DRAWERS[a.kind](P, a, x, y, h, phase, t, sc)


def render_frame(video: _Video, t: int, with_mask: bool) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Frame t of `video`: uint8 (H, W, 3), its anomaly mask uint8 (H, W) (None unless `with_mask`) and the type of
    the first anomalous actor drawn where the mask is non-empty (else None). Draws the camera noise from `video.rng`."""
    sc = video.scene
    live = [a for a in video.actors if a.visible(t)]
    # soft shadows under the actors
    shade = np.full((sc.H, sc.W), 255, np.uint8)  # (H, W)
    for a in live:
        x, y = a.pos(t)
        h = a.height(t, sc) if a.kind != "bag" else 0.3 * a.carrier.height(t, sc)
        w = 0.25 * h if a.kind in ("walker", "runner") else (0.6 * h if a.kind != "bag" else 0.4 * h)
        cv2.ellipse(shade, (_p(x + 0.1 * h), _p(y)), (_p(w), _p(0.06 * h + 0.5)), 0, 0, 360, 175, -1,
                    cv2.LINE_AA, _SHIFT)
    canvas = (sc.background.astype(np.float32) * (shade[..., None].astype(np.float32) / 255.0))  # (H, W, 3)
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
            _draw_actor(P, item, t, sc)
            if anomalous:
                kinds.append(item.anomaly)
        else:
            P.value = 0
            if item == "lamp":
                sc.draw_lamp(P)
            else:
                sc.draw_tree(P, item, t, video.wind, video.wind_phase)
    # camera: lighting drift, gain flicker, tint, sensor noise
    gain = video.gain0 * (1 + video.drift * math.sin(2 * np.pi * t / video.drift_period + video.drift_phase))
    gain *= 1 + video.flicker * video.rng.standard_normal()
    img = canvas.astype(np.float32) * (gain * video.tint).astype(np.float32)
    img += video.noise * video.rng.standard_normal(img.shape, dtype=np.float32)
    frame = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    kind = None
    if mask is not None and mask.any():
        kind = kinds[0] if kinds else None
    return frame, mask, kind
