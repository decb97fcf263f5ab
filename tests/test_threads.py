"""CPU threads: the pool is sized from the cores the process may use, and OpenMP does not spin on shared cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from vadlab import threads
from vadlab.errors import ConfigError


def test_available_cores_follow_the_affinity_mask():
    assert 1 <= threads.available_cores() <= len(os.sched_getaffinity(0))
    code = "import os; os.sched_setaffinity(0, {0}); from vadlab import threads; print(threads.available_cores())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_configure_precedence(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("VADLAB_THREADS", raising=False)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert threads.configure() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("VADLAB_THREADS", "2")
        assert threads.configure() == 2
        assert threads.configure(1) == 1  # an explicit count wins
        with pytest.raises(ConfigError, match="threads=0"):
            threads.configure(0)
    finally:
        torch.set_num_threads(before)


def test_importing_vadlab_shortens_the_openmp_spin_but_keeps_the_users_setting():
    code = "import os, vadlab; print(os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == threads.SPIN_COUNT
    for user in ({"GOMP_SPINCOUNT": "300000"}, {"OMP_WAIT_POLICY": "ACTIVE"}):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**env, **user})
        assert out.stdout.strip() == user.get("GOMP_SPINCOUNT", "None")


def test_the_run_records_its_thread_count(random_layout, tmp_path):
    from vadlab import engine
    from vadlab.registry import create_method

    before = torch.get_num_threads()
    try:
        engine.fit(create_method("mnad_pred", "smoke"), random_layout, tmp_path / "run", device="cpu",
                   progress=False, threads=1)
    finally:
        torch.set_num_threads(before)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["threads"] == 1
