"""The batch contract (`vadlab.models.base.Batch`): what the datasets produce is what the methods are written for.

Checked on a real dataset (ped2-mini in the common layout), for every registered method's test clips and for the
training clips, and the check itself refuses a batch that breaks the contract, naming the field."""

from __future__ import annotations

import pytest
import torch

from vadlab.data.layout import load_layout
from vadlab.errors import DataError
from vadlab.models.base import BATCH_FIELDS, check_batch
from vadlab.registry import create_method, list_methods


def _first_batch(dataset, batch_size=3) -> dict:
    return next(iter(torch.utils.data.DataLoader(dataset, batch_size=batch_size)))


def _check(method, batch, dataset) -> None:
    check_batch(batch, frames_in=method.clip_spec().frames_in, channels=method.config.channels,
                frame_hw=method.frame_size, extras=tuple(dataset.extras))


@pytest.mark.parametrize("name", list_methods())
def test_a_real_datasets_test_batch_meets_the_contract(ped2_mini, name):
    method = create_method(name, "smoke")
    layout = load_layout(ped2_mini)
    dataset = method.test_dataset(layout.testing)
    batch = _first_batch(dataset)
    _check(method, batch, dataset)
    h, w = method.frame_size
    assert batch["input"].shape == (3, method.clip_spec().frames_in, method.config.channels, h, w)
    assert batch["target"].shape == (3, method.config.channels, h, w)
    assert batch["input"].min() >= -1 and batch["input"].max() <= 1 and batch["input"].min() < batch["input"].max()
    # the scored frame: index t of video 0, and the target is that frame (prediction: the one after the inputs)
    spec = method.clip_spec()
    assert batch["index"].tolist() == [spec.first_scored + i for i in range(3)] and batch["video"].tolist() == [0] * 3
    if spec.predict:
        assert not torch.equal(batch["target"][0], batch["input"][0, -1])
    with torch.no_grad():
        signals = method.score_batch(batch)  # and a method consumes it
    assert all(v.shape[0] == 3 for k, v in signals.items())


def test_a_real_datasets_training_batch_meets_the_contract(ped2_mini):
    method = create_method("mnad_pred", "smoke")
    dataset = method.train_dataset(load_layout(ped2_mini))
    batch = _first_batch(dataset, 4)
    _check(method, batch, dataset)
    assert set(batch) == set(BATCH_FIELDS) and batch["label"].tolist() == [0, 0, 0, 0]  # normal training videos


@pytest.mark.parametrize("field,change,message", [
    ("input", lambda b: b.pop("input"), r"missing field\(s\) \['input'\]"),
    ("input", lambda b: b.update(input=(b["input"] + 1) / 2 * 255),
     r"batch\['input'\]: values in \[.*\], expected within \[-1, 1\]"),
    ("target", lambda b: b.update(target=b["target"].double()), r"batch\['target'\]: dtype torch.float64"),
    ("input", lambda b: b.update(input=b["input"][:, :1]), r"batch\['input'\]: shape .*axis T is 1, expected 4"),
    ("label", lambda b: b.update(label=b["label"] + 2), r"batch\['label'\]: values in \[2, 2\]"),
])
def test_a_batch_that_breaks_the_contract_is_refused_naming_the_field(ped2_mini, field, change, message):
    method = create_method("mnad_pred", "smoke")
    dataset = method.train_dataset(load_layout(ped2_mini))
    batch = _first_batch(dataset, 2)
    change(batch)
    with pytest.raises(DataError, match=message):
        _check(method, batch, dataset)
