"""Videos and the dataset: a video's nuisance draws and pedestrians, test videos and abnormal clips with their
anomaly events, and `synthesize`, which renders every video and writes the common layout."""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from vadlab.data.layout import Layout, LayoutWriter, load_layout
from vadlab.data.synthetic.config import GENERATOR, GENERATOR_VERSION, _resolve, _rng
from vadlab.data.synthetic.events import ANOMALY_TYPES, EVENTS
from vadlab.data.synthetic.render import _Actor, _col, _Scene, _shade, render_frame
from vadlab.errors import ConfigError


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
        direction = 1 if self.rng.uniform() < 0.5 else -1  # drawn first for every type
        event = EVENTS.get(kind)
        if event is None:  # pragma: no cover - guarded by ANOMALY_TYPES
            raise ConfigError(f"unknown anomaly type {kind!r}; valid: {', '.join(ANOMALY_TYPES)}")
        return event(self, start, direction)

    # --- rendering
    def render(self, t: int, with_mask: bool) -> tuple[np.ndarray, np.ndarray | None, str | None]:
        """Frame t (H, W, 3), its anomaly mask (H, W) or None, and the anomaly type drawn in it or None."""
        return render_frame(self, t, with_mask)


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
        from vadlab.progress import tqdm
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


