"""Walk the registry (timm style): every method, every preset, builds and runs a forward/backward step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vadlab.config import _coerce, apply_overrides, parse_set_args
from vadlab.data.clips import frame_size
from vadlab.errors import ConfigError
from vadlab.models.base import Method
from vadlab.registry import PRESETS, create_method, get_config, get_spec, list_methods

METHODS = list_methods()


def test_methods_are_registered():
    assert {"mnad_pred", "mnad_recon"} <= set(METHODS)


def _batch(cfg, b=2, method=None, video=None):
    h, w = frame_size(cfg.image_size)
    batch = {"input": torch.rand(b, cfg.frames_in, cfg.channels, h, w) * 2 - 1,
             "target": torch.rand(b, cfg.channels, h, w) * 2 - 1,
             "label": (torch.arange(b) == b - 1).long(),  # the last clip labelled anomalous, the rest normal
             "video": torch.zeros(b, dtype=torch.long), "index": torch.arange(b)}
    if method is not None:  # per-frame extra inputs (e.g. MAAM-Net's optical flow) of frames 0..b-1 of a video
        for name, arrays in method.extra_inputs([video], video.split).items():
            batch[name] = torch.as_tensor(np.asarray(arrays[0][:b]))
    return batch


@pytest.fixture(scope="module")
def extras_video(tmp_path_factory):
    """A short random training video for the methods' extra inputs."""
    from conftest import write_random_layout

    from vadlab.data.layout import load_layout

    root = write_random_layout(tmp_path_factory.mktemp("extras") / "data", n_train=1, frames=5)
    return load_layout(root).training[0]


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_and_steps(name, preset, extras_video):
    torch.manual_seed(0)
    method = create_method(name, preset)
    cfg = method.config
    assert dataclasses.is_dataclass(cfg) and cfg == get_config(name, preset)
    if preset == "paper":
        # a GPU preset: here only shapes and one step, at batch 1 (batch 3 for small frames)
        batch = _batch(cfg, b=1 if max(frame_size(cfg.image_size)) > 64 else 3, method=method, video=extras_video)
        method.model.eval()  # BatchNorm with one sample
    else:
        batch = _batch(cfg, b=3, method=method, video=extras_video)
        method.model.train()
    losses = method.training_step(batch)
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    grads = [p.grad for p in method.model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    method.model.eval()
    method.reset_test_state()
    if type(method).fit_scoring is not Method.fit_scoring:  # constants from the training frames (MAAM-Net's scales)
        method.use_scoring_fit(method.fit_scoring([extras_video], progress=False))
    signals = method.score_batch(batch)
    maps = signals.pop("_map", None)
    assert set(signals) == set(method.fusion_weights())
    assert maps is None or maps.shape == (batch["input"].shape[0], *frame_size(cfg.image_size))
    for value in signals.values():
        assert value.shape == (batch["input"].shape[0],) and torch.isfinite(value).all()


@pytest.mark.parametrize("name", [m for m in METHODS if get_spec(m).cls.__module__.startswith("vadlab.")])
def test_paper_preset_cites_its_numbers(name):
    """The paper preset of every built-in method differs from cpu and smoke, and its module names the paper's
    sections (plugins such as the test fixture need not be a paper's method)."""
    import inspect

    spec = get_spec(name)
    assert spec.presets["paper"] != spec.presets["cpu"]
    source = inspect.getsource(inspect.getmodule(spec.cls))
    assert "Sec. 4.1" in source or "Sec." in source


def test_unknown_names_fail_loudly():
    with pytest.raises(ConfigError, match="unknown method 'nope'.*mnad_pred"):
        create_method("nope")
    with pytest.raises(ConfigError, match="unknown preset 'fast'.*smoke, cpu, paper"):
        create_method("mnad_pred", "fast")
    with pytest.raises(ConfigError, match="unknown config key 'lamda_c'.*lambda_c"):
        create_method("mnad_pred", "smoke", lamda_c=0.1)


def test_overrides_parse_strings_to_field_types():
    cfg = get_config("mnad_pred", "smoke")
    new = apply_overrides(cfg, parse_set_args(["epochs=3", "lr=1e-3", "use_memory=false", "widths=8,16,32"]))
    assert (new.epochs, new.lr, new.use_memory, new.widths) == (3, 1e-3, False, (8, 16, 32))
    with pytest.raises(ConfigError, match="epochs=three"):
        apply_overrides(cfg, {"epochs": "three"})
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_args(["epochs"])


def test_set_parses_optional_literal_and_union_fields():
    from typing import Literal

    assert _coerce("fold", "3", int | None) == 3 and _coerce("fold", "none", int | None) is None
    assert _coerce("image_size", "64", int | tuple[int, int]) == 64
    assert _coerce("image_size", "128,96", int | tuple[int, int]) == (128, 96)
    assert _coerce("loss_form", "mean", Literal["paper", "mean"]) == "mean"
    with pytest.raises(ConfigError, match="loss_form=sum: expected one of 'paper', 'mean'"):
        _coerce("loss_form", "sum", Literal["paper", "mean"])
    with pytest.raises(ConfigError, match="fold=three: expected a value of type int or none"):
        _coerce("fold", "three", int | None)
    with pytest.raises(ConfigError, match="loss_form"):
        get_config("mnad_pred", "smoke", loss_form="sum")


def test_ablations_are_declared_by_the_method():
    assert get_config("mnad_pred", "smoke", ablations=["no_memory"]).use_memory is False
    with pytest.raises(ConfigError, match="mnad_pred has no ablation 'no_mem'; its ablations: no_memory"):
        get_config("mnad_pred", "smoke", ablations=["no_mem"])


def test_the_catalogue_of_built_in_methods_matches_the_registry():
    """`vadlab/methods.json` (what `vadlab list` and the early errors read without importing the methods) is the
    live registry's; after changing a built-in method, `python -m vadlab.registry` rewrites it."""
    import json

    from vadlab.registry import CATALOGUE, builtin_catalogue, catalogue, list_methods, source_hash

    assert json.loads(CATALOGUE.read_text()) == {"source_sha256": source_hash(), "methods": builtin_catalogue()}
    assert set(catalogue()) == set(list_methods())  # the plugins ($VADLAB_PLUGINS) too


def _package_copy(tmp_path):
    """The method files `source_hash` reads, copied to tmp_path/vadlab (what a checkout after an edit would hold)."""
    import shutil

    from vadlab import registry

    root = tmp_path / "vadlab"
    shutil.copytree(registry.PACKAGE / "models", root / "models", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(registry.PACKAGE / "registration.py", root / "registration.py")
    return root


def test_the_catalogue_is_read_while_its_hash_matches_the_method_files(tmp_path, monkeypatch):
    """A catalogue written from the method files now in the package is what `catalogue` and `check_name` answer
    from: a marked description in it comes back, and a method it lists (but no method file registers) is known."""
    import json

    from vadlab import registry

    root = _package_copy(tmp_path)
    monkeypatch.setattr(registry, "PACKAGE", root)
    assert registry.source_hash(root) == registry.source_hash()  # a copy hashes as the package it came from
    methods = registry.builtin_catalogue()
    methods["mnad_pred"] = {**methods["mnad_pred"], "description": "read from the file"}
    methods["ghost"] = {"presets": ["smoke"], "ablations": [], "description": "only in the file"}
    path = tmp_path / "methods.json"
    path.write_text(json.dumps({"source_sha256": registry.source_hash(root), "methods": methods}))
    monkeypatch.setattr(registry, "CATALOGUE", path)
    found = registry.catalogue()
    assert found["ghost"]["description"] == "only in the file"
    registry.check_name("ghost", "smoke")  # no error: the file is trusted while it matches


def test_a_stale_catalogue_falls_back_to_the_methods_themselves(tmp_path, monkeypatch):
    """After a method file changes (here a comment appended to a copy of mnad.py) and before anyone reruns
    `python -m vadlab.registry`, `catalogue` answers from the imported methods, not from the old file; so does a
    catalogue that is missing, unreadable or in the old format without a hash."""
    import json

    from vadlab import registry

    root = _package_copy(tmp_path)
    monkeypatch.setattr(registry, "PACKAGE", root)
    methods = {"ghost": {"presets": ["smoke"], "ablations": [], "description": "only in the file"}}
    path = tmp_path / "methods.json"
    path.write_text(json.dumps({"source_sha256": registry.source_hash(root), "methods": methods}))
    monkeypatch.setattr(registry, "CATALOGUE", path)
    assert "ghost" in registry.catalogue()  # matching: read
    with open(root / "models" / "mnad.py", "ab") as f:
        f.write(b"\n# an edit\n")
    live = registry.builtin_catalogue()
    for text in (path.read_text(), json.dumps(methods), "{not json", None):  # stale, no hash, broken, missing
        if text is None:
            path.unlink()
        else:
            path.write_text(text)
        found = registry.catalogue()
        assert "ghost" not in found and all(found[name] == entry for name, entry in live.items())
        with pytest.raises(ConfigError, match="unknown method 'ghost'"):
            registry.check_name("ghost")
