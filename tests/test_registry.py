"""Walk the registry (timm style): every method, every preset, builds and runs a forward/backward step."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vadlab.config import apply_overrides, parse_set_args
from vadlab.errors import ConfigError
from vadlab.registry import PRESETS, create_method, get_config, get_spec, list_methods

METHODS = list_methods()


def test_methods_are_registered():
    assert {"mnad_pred", "mnad_recon"} <= set(METHODS)


def _batch(cfg, b=2):
    size = cfg.image_size
    return {"input": torch.rand(b, cfg.frames_in, cfg.channels, size, size) * 2 - 1,
            "target": torch.rand(b, cfg.channels, size, size) * 2 - 1,
            "video": torch.zeros(b, dtype=torch.long), "index": torch.arange(b)}


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_and_steps(name, preset):
    torch.manual_seed(0)
    method = create_method(name, preset)
    cfg = method.config
    assert dataclasses.is_dataclass(cfg) and cfg == get_config(name, preset)
    if preset == "paper":
        # a GPU preset: here only shapes and one step, at batch 1
        batch = _batch(cfg, b=1 if cfg.image_size > 64 else 2)
        method.model.eval()  # BatchNorm with one sample
    else:
        batch = _batch(cfg)
        method.model.train()
    losses = method.training_step(batch)
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    grads = [p.grad for p in method.model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    method.model.eval()
    method.reset_test_state()
    signals = method.score_batch(batch)
    maps = signals.pop("_map", None)
    assert set(signals) == set(method.fusion_weights())
    assert maps is None or maps.shape == (batch["input"].shape[0], cfg.image_size, cfg.image_size)
    for value in signals.values():
        assert value.shape == (batch["input"].shape[0],) and torch.isfinite(value).all()


@pytest.mark.parametrize("name", METHODS)
def test_paper_preset_cites_its_numbers(name):
    """The paper preset differs from cpu and smoke, and its module names the paper's sections."""
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
