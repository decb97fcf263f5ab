"""CPU threads: how many cores this process may use, and OpenMP threads that do not spin long on shared cores.

Two trainings on a 2-core machine each start 2 OpenMP threads by default; GNU OpenMP's idle threads spin on their
core for a long while (300,000 spins) before they sleep, so the two processes' threads fight for the cores at every
parallel region and each step becomes 50 to 100 times slower (benchmarks/README.md has the measured figures).
vadlab therefore
1. shortens the spin to `GOMP_SPINCOUNT=10000`, set when `vadlab` is imported, before torch loads its OpenMP runtime
   (unless the user set `GOMP_SPINCOUNT` or `OMP_WAIT_POLICY`; torch imported before vadlab keeps its own): measured,
   a run alone is as fast as with the default and two at once are about 4x slower each instead of 50-100x (a fully
   passive wait costs a run alone 45 %);
2. sizes torch's pool from the cores this process may run on (CPU affinity and the cgroup quota of a container),
   not from the machine's core count, or from `--threads N` / `$VADLAB_THREADS` / `$OMP_NUM_THREADS`: two runs side
   by side on 2 cores are fastest with `--threads 1` each.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

SPIN_COUNT = "10000"


def set_wait_policy() -> None:
    """OpenMP threads spin briefly, then sleep, while they wait (only effective before torch is imported)."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2/v1 CPU quota when one is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else max(1, cores)


def _cgroup_quota() -> float | None:
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()  # cgroup v2: "max 100000" or "200000 100000"
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v1
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def configure(threads: int | None = None) -> int:
    """Set torch's intra-op thread count: `threads`, else `$VADLAB_THREADS`, else `$OMP_NUM_THREADS`, else the
    cores this process may use. Returns it."""
    import torch

    if threads is None:
        env = os.environ.get("VADLAB_THREADS") or os.environ.get("OMP_NUM_THREADS")
        threads = int(env) if env and env.strip().isdigit() else available_cores()
    if threads < 1:
        from vadlab.errors import ConfigError

        raise ConfigError(f"threads={threads}: must be an integer >= 1")
    torch.set_num_threads(threads)
    return threads
