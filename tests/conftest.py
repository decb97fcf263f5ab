"""Shared fixtures: small datasets in the common layout, made fresh or once per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
# The throwaway fifth method (tests/plugins/toy_dual.py) joins the registry for the whole test session, so every
# test that walks `list_methods()` covers it, and subprocesses (the CLI, papermill kernels) inherit it.
TOY_PLUGIN = REPO / "tests" / "plugins" / "toy_dual.py"
os.environ["VADLAB_PLUGINS"] = ",".join(filter(None, [os.environ.get("VADLAB_PLUGINS"), str(TOY_PLUGIN)]))
PED2_MINI = Path(os.environ.get("VADLAB_PED2_MINI", REPO.parent / "shared" / "data" / "ped2-mini" / "UCSDped2"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Frame cache and prepared datasets of the test session live in a temp folder, not in ~/.cache."""
    root = tmp_path_factory.getbasetemp()
    os.environ.setdefault("VADLAB_CACHE", str(root / "cache"))
    os.environ.setdefault("VADLAB_DATA", str(root / "datasets"))
    os.environ.setdefault("MPLBACKEND", "Agg")


def checkpoint(run: Path) -> dict:
    """The state `engine.fit` saved in a run folder."""
    import torch

    from vadlab import engine

    return torch.load(run / engine.CHECKPOINT, weights_only=False)


def assert_same_tensors(a: dict, b: dict) -> None:
    """Two state dicts hold the same keys and bit-identical tensors."""
    import torch

    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def write_random_layout(root: Path, *, n_train=2, n_test=2, n_abnormal=1, frames=12, size=(24, 32), seed=0) -> Path:
    """A tiny random dataset in the common layout (test videos: second half anomalous, masks included; an
    `abnormal/` pool of `n_abnormal` wholly anomalous clips)."""
    from vadlab.data.layout import LayoutWriter

    rng = np.random.default_rng(seed)
    with LayoutWriter(root) as w:
        for i in range(n_train):
            w.add_frames("training", f"train{i:02d}", rng.integers(0, 256, (frames, *size), dtype=np.uint8))
        for i in range(n_test):
            labels = np.zeros(frames, np.uint8)
            labels[frames // 2:] = 1
            masks = np.zeros((frames, *size), np.uint8)
            masks[frames // 2:, 4:10, 4:10] = 1
            w.add_frames("testing", f"test{i:02d}", rng.integers(0, 256, (frames, *size), dtype=np.uint8),
                         labels=labels, masks=masks)
        for i in range(n_abnormal):
            w.add_frames("abnormal", f"abn{i:02d}", rng.integers(0, 256, (frames, *size), dtype=np.uint8),
                         labels=np.ones(frames, np.uint8))
    return root


@pytest.fixture
def random_layout(tmp_path) -> Path:
    return write_random_layout(tmp_path / "rand")


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """The synthetic `tiny` preset, generated once per test session."""
    from vadlab.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("synth") / "tiny"
    synthesize(root, "tiny", seed=0, progress=False)
    return root


def skip_or_fail_without_ped2() -> None:
    """Tests on the real slice skip on a machine without it, but fail in CI, where shared/ is beside the clone."""
    if not PED2_MINI.is_dir():
        message = f"ped2-mini not found at {PED2_MINI} (set VADLAB_PED2_MINI)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def ped2_mini(tmp_path_factory) -> Path:
    """ped2-mini imported into the common layout."""
    skip_or_fail_without_ped2()
    from vadlab.data.importers import import_dataset

    root = tmp_path_factory.mktemp("ped2") / "ped2-mini"
    import_dataset("ucsd", PED2_MINI, root, progress=False)
    return root


@pytest.fixture(scope="session")
def smoke_run(tiny_synthetic, tmp_path_factory):
    """`smoke_run(method)`: a run folder of `method` trained once per session at its smoke preset."""
    from vadlab import engine
    from vadlab.registry import create_method

    runs: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in runs:
            run = tmp_path_factory.mktemp(f"run-{name}") / "run"
            engine.fit(create_method(name, "smoke"), tiny_synthetic, run, device="cpu", progress=False)
            runs[name] = run
        return runs[name]

    return get
