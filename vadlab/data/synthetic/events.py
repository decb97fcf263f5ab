"""The anomaly types of the synthetic walkway: one function per type, looked up in `EVENTS` by name.

An event function inserts the actors of one anomaly into a video and records it in `video.events`; it is called
as `EVENTS[kind](video, start, direction)` with the time `start` at which the anomalous interval begins and the
walking direction (+1: left to right, -1: right to left) already drawn, and returns (start, end) of that interval
(end may be inf: a left bag stays). It draws every random number from `video.rng`, in a fixed order: changing
that order changes every dataset generated after it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np

from vadlab.data.synthetic.render import _Actor, _col, _shade

if TYPE_CHECKING:
    from vadlab.data.synthetic.generate import _Video

Event = Callable[["_Video", float, int], tuple[float, float]]


def _record(video: _Video, a: _Actor, kind: str, detail: str) -> tuple[float, float]:
    """Add an actor that is anomalous over its whole visible interval; that interval is the event's."""
    video.actors.append(a)
    video.events.append({"type": kind, "object": detail, "start": round(a.t_in, 3), "end": round(a.t_out, 3)})
    return a.t_in, a.t_out


def speed_event(video: _Video, start: float, direction: int) -> tuple[float, float]:
    """A runner or a cyclist on the walkway at `speed_factor` x walking speed (looks normal, moves too fast)."""
    rng, sc = video.rng, video.scene
    lane = rng.uniform(-0.5, 0.6) * sc.half
    speed = video._walk_speed() * rng.uniform(*sc.cfg.speed_factor)
    detail = "cyclist" if rng.uniform() < 0.5 else "runner"
    a = video._along_path(start, speed, direction, lane, kind=detail, anomaly="speed")
    if detail == "cyclist":
        a.colors = a.colors + (_col(rng.uniform(20, 220, 3)),)
        a.cycle = 2.2 * a.size
    else:
        a.cycle = 2.0 * a.size
    return _record(video, a, "speed", detail)


def appearance_event(video: _Video, start: float, direction: int) -> tuple[float, float]:
    """A hand cart or a small vehicle at walking pace (looks wrong, moves like everyone else)."""
    rng, sc = video.rng, video.scene
    lane = rng.uniform(-0.3, 0.4) * sc.half
    detail = "vehicle" if rng.uniform() < 0.5 else "cart"
    h = sc.scale(sc.c0 + lane)
    lo, hi = sc.cfg.walk_speed  # pushed or driven at an unhurried walking pace
    speed = rng.uniform(lo, 0.5 * (lo + hi)) * sc.W
    a = video._along_path(start, speed, direction, lane, kind=detail, anomaly="appearance")
    margin = 1.3 * h * (2.2 if detail == "vehicle" else 1.8)  # longer than a person: enters from further out
    x_start = -margin if direction > 0 else sc.W + margin
    a.p0 = (x_start, float(sc.path_y(x_start)) + lane)
    a.t_out = start + (sc.W + 2 * margin) / (abs(a.v[0]))
    # painted in pavement-like tones (beige, stone, sage, sand): its shape and hue are what is wrong
    body = [(176, 160, 128), (150, 160, 168), (140, 168, 140), (190, 150, 120), (160, 156, 150)][rng.integers(5)]
    body = _shade(body, rng.uniform(0.92, 1.08))
    a.colors = (body, _shade(body, 0.8), _shade(_col(rng.uniform(120, 200, 3)), 1.0))
    return _record(video, a, "appearance", detail)


def location_event(video: _Video, start: float, direction: int) -> tuple[float, float]:
    """A walker leaves the walkway at `start`, crosses part of the lawn, then comes back; anomalous only while
    its feet are off the walkway."""
    rng, sc = video.rng, video.scene
    far = rng.uniform() < 0.4
    speed = video._walk_speed()
    lane = (-0.7 if far else 0.75) * sc.half
    if far:
        off = -sc.half - rng.uniform(0.06, 0.13) * sc.H
    else:
        off = sc.half + rng.uniform(0.25, 0.55) * (sc.H - sc.c0 - sc.half)
    a = video._along_path(0.0, speed, direction, lane, anomaly="location", scale_with_y=True)
    x_in, x_end = a.p0[0], a.p0[0] + direction * (sc.W + 2 * 1.3 * a.size)
    x1 = x_in + direction * rng.uniform(0.15, 0.45) * sc.W  # where it steps off
    ramp = direction * abs(off - lane) * rng.uniform(0.7, 1.2)
    x2 = x1 + ramp
    x3 = x2 + direction * rng.uniform(0.08, 0.25) * sc.W
    x4 = x3 + ramp
    xs = np.array([x_in, x1, x2, x3, x4, max(x4, x_end) if direction > 0 else min(x4, x_end)])  # (6,)
    ys = np.array([lane, lane, off, off, lane, lane]) + sc.path_y(xs)  # (6,)
    seg = np.hypot(np.diff(xs), np.diff(ys))  # (5,)
    ts = np.concatenate([[0.0], np.cumsum(seg) / speed])  # (6,)
    # time at which the feet leave the walkway: `start`
    t_off = ts[1] + (ts[2] - ts[1]) * (sc.half - abs(lane)) / max(abs(off - lane), 1e-6)
    ts = ts + (start - t_off)
    a.way = (tuple(ts), tuple(xs), tuple(ys))
    a.t0, a.t_in, a.t_out = ts[0], ts[0], ts[-1]
    a.off_path = sc
    video.actors.append(a)
    t_back = ts[3] + (ts[4] - ts[3]) * (abs(off - lane) - (sc.half - abs(lane))) / max(abs(off - lane), 1e-6)
    video.events.append({"type": "location", "object": "walker", "start": round(start, 3), "end": round(t_back, 3)})
    return start, t_back


def direction_event(video: _Video, start: float, direction: int) -> tuple[float, float]:
    """A walker crossing the walkway at a right angle, from the far or the near edge (`direction` is drawn by
    the caller like for every type, and unused here: the crossing draws its own)."""
    rng, sc = video.rng, video.scene
    speed = video._walk_speed()
    x_cross = rng.uniform(0.2, 0.8) * sc.W
    down = 1 if rng.uniform() < 0.5 else -1
    n = math.hypot(1, sc.slope)
    ux, uy = -sc.slope / n * down, 1 / n * down  # unit vector across the walkway
    h_far = sc.scale(0.0)
    y_cross = float(sc.path_y(x_cross))
    # start just outside the top (or bottom) edge
    y_start = -0.1 * sc.H if down > 0 else sc.H + 1.2 * sc.scale(sc.H)
    k = (y_start - y_cross) / uy
    p0 = (x_cross + k * ux, y_start + 0.0)
    dist = (sc.H * 1.25 + 1.2 * sc.scale(sc.H) + h_far) / abs(uy)
    a = _Actor(kind="walker", p0=p0, v=(speed * ux, speed * uy), t0=start, t_in=start,
               t_out=start + dist / speed, facing=0, colors=video._person_colors(),
               phase=rng.uniform(0, 2 * np.pi), cycle=1.15 * sc.scale(sc.c0), anomaly="direction",
               scale_with_y=True)
    return _record(video, a, "direction", "direction")


def static_object_event(video: _Video, start: float, direction: int) -> tuple[float, float]:
    """A passer-by drops a bag at `start`, which stays (the interval never ends)."""
    rng, sc = video.rng, video.scene
    lane = rng.uniform(-0.5, 0.6) * sc.half
    speed = video._walk_speed()
    x_drop = rng.uniform(0.2, 0.8) * sc.W
    carrier = video._along_path(0.0, speed, direction, lane)
    t_reach = (x_drop - carrier.p0[0]) / carrier.v[0]
    carrier.t0 = carrier.t_in = start - t_reach
    carrier.t_out = carrier.t_in + (carrier.t_out - 0.0)
    video.actors.append(carrier)
    video.actors.append(video._bag(carrier, start, anomaly="static_object"))
    video.events.append({"type": "static_object", "object": "bag", "start": round(start, 3)})
    return start, np.inf


#: Anomaly type -> event function. The order is `ANOMALY_TYPES`' order, which seeds depend on: append new types
#: at the end.
EVENTS: dict[str, Event] = {
    "speed": speed_event,
    "appearance": appearance_event,
    "location": location_event,
    "direction": direction_event,
    "static_object": static_object_event,
}

ANOMALY_TYPES = tuple(EVENTS)
