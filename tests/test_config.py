"""Config validation ("nothing silent"): every field of every registered method declares its valid values, and a
value outside them, or a combination of fields that cannot work, fails when the config is built with a message that
names the field, the value and what would work; the CLI exits 2 before any run folder is written."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pytest

from vadlab.config import (
    MethodConfig,
    Range,
    apply_overrides,
    check_fits_data,
    field_specs,
    undeclared_fields,
)
from vadlab.data.layout import Video
from vadlab.errors import ConfigError, DataError
from vadlab.registry import get_config, get_spec, list_methods

METHODS = list_methods()
PRESETS = [(name, preset) for name in METHODS for preset in get_spec(name).presets]
CONFIG_CLASSES = sorted({get_spec(name).config_cls for name in METHODS} | {MethodConfig}, key=lambda c: c.__name__)


# --- invalid values generated from the declarations ---------------------------------------------------------------
def _is_var_tuple(typ) -> bool:
    args = typing.get_args(typ)
    return typing.get_origin(typ) is tuple and len(args) == 2 and args[1] is Ellipsis


def _bad_numbers(typ, rng: Range) -> list:
    """Numbers just outside `rng`: just below min, just above max (the bound itself when it is exclusive)."""
    out = []
    if rng.min is not None:
        out.append(rng.min if rng.min_exclusive else
                   rng.min - 1 if typ is int else math.nextafter(rng.min, -math.inf))
    if rng.max is not None:
        out.append(rng.max if rng.max_exclusive else
                   rng.max + 1 if typ is int else math.nextafter(rng.max, math.inf))
    if typ is float:
        out += [math.nan, math.inf]
    return [typ(v) for v in out]


def _good_number(typ, rng: Range):
    """A number inside `rng` (the valid elements beside a bad one in a tuple)."""
    return next(typ(v) for v in (1, 0, 0.5, rng.min, rng.max) if v is not None and typ(v) == v and typ(v) in rng)


def invalid_values(typ, rng: Range | None) -> list[tuple[Any, str | None]]:
    """(typed value, its `--set` string or None) pairs that the declaration `typ`, `rng` rules out."""
    rng = rng or Range()
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        return [v for a in args for v in invalid_values(a, rng)]
    if origin is Literal:
        outside = ("not_" + "_".join(map(str, args)) if isinstance(args[0], str)
                   else max(args) + 1)
        return [(outside, str(outside)), (True, None), (str(args[0]) + "x", str(args[0]) + "x")]
    if typ is bool:
        return [(2, None), ("yes", None), (None, "maybe"), (None, "abc")]
    if typ in (int, float):
        wrong = [(1.5, "1.5"), (True, None)] if typ is int else [(True, None), ("0.1", None)]
        return [(v, repr(v) if typ is float else str(v)) for v in _bad_numbers(typ, rng)] + wrong + [(None, "abc")]
    if origin is tuple:
        inner = args[0]
        good = _good_number(inner, rng)
        n = 2 if _is_var_tuple(typ) else len(args)
        out = [((bad,) + (good,) * (n - 1), ",".join([str(bad)] + [str(good)] * (n - 1)))
               for bad in _bad_numbers(inner, rng)]
        out += [((good,) * (n - 1) + (1.5,), None), (None, f"{good},abc"), (None, "abc")]
        if _is_var_tuple(typ):
            out.append(((), ""))
        else:
            out.append(((good,) * (n + 1), ",".join([str(good)] * (n + 1))))
        return out
    raise AssertionError(f"no generator for {typ}")


def _cases():
    for name, preset in PRESETS:
        cfg = get_spec(name).presets[preset]
        for field, spec in field_specs(type(cfg)).items():
            for value, text in invalid_values(spec.type, spec.range):
                yield name, preset, field, value, text


CASES = list(_cases())


def _expect_named(field: str, build, *args, **kwargs) -> ConfigError:
    """`build(*args, **kwargs)` raises ConfigError with `field=` in its message."""
    with pytest.raises(ConfigError) as info:
        build(*args, **kwargs)
    message = str(info.value)
    assert re.search(rf"(^|\W){field}=", message), f"{field} not named in: {message}"
    assert ": must be " in message or ": expected " in message, message  # the declaration's check, with what is valid
    return info.value


@pytest.mark.parametrize("name,preset", PRESETS)
def test_every_field_of_every_preset_is_checked(name, preset):
    """For every method and preset, every field rejects the values its declaration rules out, typed (a notebook,
    `dataclasses.replace`) and as `--set` strings."""
    cfg = get_spec(name).presets[preset]
    cases = [c for c in CASES if c[:2] == (name, preset)]
    assert {c[2] for c in cases} == set(field_specs(type(cfg)))  # a generator for every field
    for _, _, field, value, text in cases:
        if value is not None or text is None:
            _expect_named(field, dataclasses.replace, cfg, **{field: value})
        if text is not None:
            _expect_named(field, apply_overrides, cfg, {field: text})


def test_generated_values_cover_bounds_types_and_choices():
    """The generator really produces the cases the issue lists (so the walk above cannot pass vacuously)."""
    texts = {(c[2], c[4]) for c in CASES if c[0] == "mnad_pred" and c[1] == "cpu"}
    for expected in [("epochs", "0"), ("epochs", "abc"), ("epochs", "1.5"), ("batch_size", "0"), ("lr", "0.0"),
                     ("lr", "nan"), ("score_lambda", repr(math.nextafter(1.0, 2.0))), ("grad_clip", "-5e-324"),
                     ("memory_items", "0"), ("image_size", "0"), ("image_size", "0,1"), ("widths", ""),
                     ("widths", "0,1"), ("channels", "4"), ("loss_form", "not_paper_mean_reference"),
                     ("use_memory", "maybe")]:
        assert expected in texts, expected


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_field_declares_its_valid_values(cls):
    """Numbers and tuples need `Annotated[T, Range(...)]`, strings `Literal[...]`: a method added later must declare
    every field, or this fails naming the fields."""
    assert undeclared_fields(cls) == []
    for spec in field_specs(cls).values():
        invalid_values(spec.type, spec.range)  # and the walk above can generate values for each


def test_an_undeclared_field_is_reported():
    @dataclass(frozen=True)
    class Sloppy(MethodConfig):
        depth: int = 3  # no Range
        mode: str = "a"  # no Literal
        flag: bool = True  # two values: declared by its type
        ratio: Annotated[float, Range(0, 1)] = 0.5

    assert undeclared_fields(Sloppy) == ["depth", "mode"]


def test_messages_name_field_value_and_valid_values():
    cfg = get_config("mnad_pred", "smoke")
    cases = {"epochs": ("-1", "epochs=-1: must be an integer in [1, 100000]"),
             "lr": ("0", "lr=0.0: must be a finite number in (0, 1]"),
             "score_lambda": ("1.5", "score_lambda=1.5: must be a finite number in [0, 1]"),
             "widths": ("8,0", "widths=(8, 0): must be a non-empty list of integers >= 1"),
             "image_size": ("0,32", "image_size=(0, 32): must be an integer in [1, 2048] or 2 integers in [1, 2048]"),
             "batch_size": ("0", "batch_size=0: must be an integer in [1, 4096]"),
             "memory_items": ("0", "memory_items=0: must be an integer >= 1")}
    for field, (text, message) in cases.items():
        with pytest.raises(ConfigError) as info:
            apply_overrides(cfg, {field: text})
        assert str(info.value) == message
    with pytest.raises(ConfigError, match=r"^--set epochs=abc: expected an integer in \[1, 100000\]"):
        apply_overrides(cfg, {"epochs": "abc"})
    with pytest.raises(ConfigError, match=r"^--set channels=2: expected one of 1, 3$"):
        apply_overrides(cfg, {"channels": "2"})


def test_range_bounds_and_words():
    assert str(Range(1)) == ">= 1" and str(Range(0, min_exclusive=True)) == "> 0"
    assert str(Range(0, 1)) == "in [0, 1]" and str(Range(0, 1, min_exclusive=True)) == "in (0, 1]"
    assert str(Range(max=1, max_exclusive=True)) == "< 1" and str(Range()) == ""
    assert 1 in Range(1) and 0 not in Range(1) and 0 not in Range(0, min_exclusive=True) and 1 in Range(0, 1)


def test_checks_run_for_presets_replace_and_direct_construction():
    cfg = get_config("mnad_pred", "smoke")
    with pytest.raises(ConfigError, match="epochs=0"):
        dataclasses.replace(cfg, epochs=0)
    with pytest.raises(ConfigError, match="epochs=-1"):
        type(cfg)(epochs=-1)
    # what JSON and numpy hand over is the same value: a list for a tuple, a numpy integer for an int
    assert dataclasses.replace(cfg, image_size=[32, 48]).image_size == (32, 48)
    assert dataclasses.replace(cfg, widths=[8, 16]).widths == (8, 16)
    assert type(dataclasses.replace(cfg, epochs=np.int64(2)).epochs) is int
    assert dataclasses.replace(cfg, image_size=(np.int64(32), 48)).image_size == (32, 48)
    assert type(dataclasses.replace(cfg, lr=np.float32(0.5)).lr) is float
    with pytest.raises(ConfigError, match=r"image_size=\(32, 48\)"):
        dataclasses.replace(cfg, image_size=[32, 48], widths=(8, 16, 32, 64, 128, 256))  # stride 32: 48 is not


def test_validate_hook_runs_for_every_method_config():
    """`MethodConfig.__post_init__` calls `validate` after the field checks, so any method gets the mechanism."""
    @dataclass(frozen=True)
    class Even(MethodConfig):
        depth: Annotated[int, Range(1)] = 2  # must be even

        def validate(self):
            if self.depth % 2:
                raise ConfigError(f"depth={self.depth}: must be even; nearest valid {self.depth + 1}")

    assert Even().depth == 2
    with pytest.raises(ConfigError, match="depth=3: must be even; nearest valid 4"):
        dataclasses.replace(Even(), depth=3)
    with pytest.raises(ConfigError, match="depth=0: must be an integer >= 1"):  # field checks come first
        Even(depth=0)


# --- rules between fields -----------------------------------------------------------------------------------------
CROSS = [
    ("mnad_pred", "cpu", {"image_size": "7"}, "image_size=7: the 4-stage encoder needs a multiple of 8; "
                                              "nearest valid 8"),
    ("mnad_pred", "cpu", {"image_size": "12"}, "image_size=12: the 4-stage encoder needs a multiple of 8; "
                                               "nearest valid 16"),
    ("mnad_pred", "cpu", {"image_size": "3"}, "nearest valid 8"),
    ("mnad_pred", "cpu", {"image_size": "30,48"}, r"image_size=\(30, 48\): the 4-stage encoder needs each side a "
                                                  r"multiple of 8; nearest valid \(32, 48\)"),
    ("mnad_pred", "smoke", {"image_size": "7"}, "image_size=7: the 2-stage encoder needs a multiple of 2; "
                                                "nearest valid 8"),
    ("mnad_pred", "smoke", {"widths": "8,16,32"}, None),  # 32 is a multiple of 4
    ("mnad_pred", "smoke", {"widths": "4,8,16,32,64,128,256"}, "image_size=32: the 7-stage encoder needs a "
                                                               "multiple of 64; nearest valid 64"),
    ("mnad_recon", "paper", {"image_size": "250"}, "image_size=250: the 4-stage encoder needs a multiple of 8; "
                                                   "nearest valid 248"),
    ("mnad_pred", "smoke", {"memory_items": "1"}, "memory_items=1: the separateness loss .* use memory_items >= 2"),
    ("mnad_pred", "smoke", {"memory_items": "1", "use_memory": "false"}, None),  # no memory, no second item needed
    ("mnad_pred", "cpu", {"image_size": "8", "batch_size": "1"}, "batch_size=1: BatchNorm .* 1x1 query map .* "
                                                                 "use batch_size >= 2 or image_size >= 16"),
    ("mnad_pred", "cpu", {"image_size": "8", "batch_size": "2"}, None),
    ("mnad_pred", "cpu", {"batch_size": "1"}, None),  # an 8x8 query map: BatchNorm has 64 values per channel
    ("mnad_recon", "smoke", {"frames_in": "16", "target_index": "16"}, r"target_index 16 is not a position among "
                                                                       r"frames_in=16 input frames \(valid: -16..15\)"),
    ("mnad_recon", "smoke", {"frames_in": "16", "target_index": "-17"}, r"target_index -17 .*\(valid: -16..15\)"),
    ("mnad_recon", "smoke", {"frames_in": "16", "target_index": "8"}, None),  # Sec. 4.3's motion cues
    ("mnad_pred", "smoke", {"target_index": "7"}, None),  # a predictor ignores target_index
    ("toy_dual", "smoke", {"image_size": "30"}, "image_size=30: the toy's encoder .* multiple of 4; nearest valid 32"),
    ("toy_dual", "smoke", {"image_size": "30,46"}, r"nearest valid \(32, 48\)"),
    ("toy_dual", "smoke", {"abnormal_per_batch": "3"}, "abnormal_per_batch=3 with batch_size=4: the triplet loss "
                                                       "needs 2 normal clips in a batch; use batch_size >= 5"),
    ("toy_dual", "smoke", {"abnormal_per_batch": "3", "batch_size": "5"}, None),
    ("toy_dual", "smoke", {"memory_items": "97"}, r"memory_items=97: .* 96 queries .* image_size=\(32, 48\); use "
                                                  "memory_items <= 96"),
    ("toy_dual", "smoke", {"memory_items": "96"}, None),
    ("toy_dual", "smoke", {"memory_items": "97", "use_memory": "false"}, None),
]


@pytest.mark.parametrize("name,preset,overrides,message", CROSS)
def test_rules_between_fields_suggest_a_value_that_works(name, preset, overrides, message):
    if message is None:
        cfg = get_config(name, preset, **overrides)
        assert set(overrides) <= set(dataclasses.asdict(cfg))
        return
    with pytest.raises(ConfigError, match=message):
        get_config(name, preset, **overrides)


# --- against the data -----------------------------------------------------------------------------------------------
def _video(name: str, n: int, split: str = "training") -> Video:
    return Video(name, split, tuple(Path(f"{i:03d}.png") for i in range(n)))


def test_clip_longer_than_a_training_video_names_it():
    videos = [_video("long", 30), _video("short01", 5), _video("mid", 12)]
    pred = get_config("mnad_pred", "smoke")  # 4 frames in + 1 predicted
    check_fits_data(pred, videos)
    check_fits_data(dataclasses.replace(pred, frames_in=4), [_video("exact", 5)])  # exactly one clip fits
    with pytest.raises(DataError, match=r"training video 'short01' has 5 frames, fewer than a clip of frames_in=5 "
                                        r"\+ 1 predicted = 6 frames; the largest frames_in that would work is 4"):
        check_fits_data(dataclasses.replace(pred, frames_in=5), videos)
    recon = get_config("mnad_recon", "smoke", frames_in=16, target_index=8)
    with pytest.raises(DataError, match=r"'short01' has 5 frames, fewer than a clip of frames_in=16 frames; the "
                                        r"largest frames_in that would work is 5 \(with target_index in -5..4\)"):
        check_fits_data(recon, videos)
    with pytest.raises(DataError, match="'one' has 1 frames.* no frames_in fits"):
        check_fits_data(pred, [_video("one", 1)])
    check_fits_data(pred, [])  # nothing to train on is the layout check's business


def test_check_fits_data_on_a_layout(random_layout):
    from vadlab.data.layout import as_layout
    from vadlab.registry import create_method

    layout = as_layout(random_layout)  # 12 frames per video
    method = create_method("toy_dual", "smoke", frames_in=11)  # trains on training/ and abnormal/ videos
    check_fits_data(method.config, method.training_videos(layout))
    method = create_method("toy_dual", "smoke", frames_in=12)
    with pytest.raises(DataError, match="has 12 frames.*largest frames_in that would work is 11"):
        check_fits_data(method.config, method.training_videos(layout))


# --- the command line -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting,field", [("epochs=-1", "epochs"), ("image_size=7", "image_size"),
                                           ("batch_size=0", "batch_size"), ("memory_items=0", "memory_items"),
                                           ("epochs=abc", "epochs")])
def test_cli_rejects_bad_values_before_writing_anything(random_layout, tmp_path, setting, field):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "vadlab.cli", "train", "mnad_pred", "--data", str(random_layout),
                           "--out", str(out), "--preset", "smoke", "--set", setting, "--device", "cpu", "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert f"{field}=" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
