"""Memory health (vadlab.analysis.memory.memory_health, issue 23): the top item's share and the entropy of the
nearest-item assignments per memory space, DREAM's active triplets, and their place in metrics.json."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_random_layout

from vadlab import engine
from vadlab.analysis.memory import assignment_health, health_table, memory_health
from vadlab.models.base import MemorySpace
from vadlab.registry import create_method


def test_one_item_taking_every_query_has_share_one_and_entropy_zero():
    h = assignment_health(np.full(500, 3), items=10)
    assert h["top_item_share"] == 1.0 and h["entropy_nats"] == 0.0 and h["entropy_normalised"] == 0.0
    assert h["items_used"] == 1 and h["queries"] == 500


def test_uniform_use_has_share_one_over_m_and_entropy_log_m():
    h = assignment_health(np.tile(np.arange(10), 30), items=10)
    assert h["top_item_share"] == pytest.approx(0.1)
    assert h["entropy_nats"] == pytest.approx(math.log(10))
    assert h["entropy_normalised"] == pytest.approx(1.0)
    half = assignment_health(np.array([0, 0, 1, 1]), items=4)  # two of four items, equally
    assert half["top_item_share"] == 0.5 and half["entropy_nats"] == pytest.approx(math.log(2))
    assert half["entropy_normalised"] == pytest.approx(0.5)
    assert math.isnan(assignment_health(np.array([], int), items=4)["top_item_share"])


class _Constructed:
    """A method whose one memory space has queries built to match given items, the second clip not routed."""

    def __init__(self, nearest: list[int], items: int = 4, dim: int = 8):
        self.items = F.normalize(torch.randn(items, dim, generator=torch.Generator().manual_seed(0)), dim=1)
        self.nearest = torch.tensor(nearest)
        self.model = torch.nn.Linear(1, 1)
        self.config = SimpleNamespace(batch_size=2)

    def train_batches(self, dataset, **kw):
        return None

    def memory_spaces(self, batch):
        b = len(batch["label"])
        queries = self.items[self.nearest][None].expand(b, -1, -1)  # (B, K, C): query k sits on item nearest[k]
        routed = batch["label"] == 0  # only the first kind of clip updates (and counts)
        return {"memory": MemorySpace(queries, self.items, queries @ self.items.T, routed=routed)}


def test_memory_health_counts_the_routed_queries_of_a_bounded_number_of_batches():
    dataset = [{"label": torch.tensor(i % 2)} for i in range(8)]  # 8 clips (4 batches of 2), half of them routed
    method = _Constructed([2, 2, 2, 2])
    h = memory_health(method, dataset, max_batches=10, seed=0)
    assert h["memory"]["queries"] == 4 * 4  # every batch read: the 4 routed clips, K = 4 queries each
    assert memory_health(method, dataset, max_batches=1, seed=0)["memory"]["queries"] <= 2 * 4  # one batch only
    assert h["memory"]["top_item_share"] == 1.0 and h["memory"]["entropy_nats"] == 0.0
    uniform = memory_health(_Constructed([0, 1, 2, 3]), dataset, max_batches=4)["memory"]
    assert uniform["top_item_share"] == 0.25 and uniform["entropy_nats"] == pytest.approx(math.log(4))
    assert method.model.training  # the mode is restored


def test_a_smoke_run_writes_memory_health_into_metrics(tmp_path):
    data = write_random_layout(tmp_path / "d")
    run = tmp_path / "run"
    method = create_method("dream", "smoke")
    engine.fit(method, data, run, seed=0, device="cpu", progress=False)
    report = engine.evaluate_run(run, data, device="cpu", progress=False)
    health = report["memory_health"]
    assert health == json.loads((run / "metrics.json").read_text())["memory_health"]
    m = method.config.memory_items
    for space in ("normality", "abnormality"):
        h = health[space]
        assert h["items"] == m and h["queries"] > 0
        assert 1 / m <= h["top_item_share"] <= 1 and 0 <= h["entropy_nats"] <= math.log(m) + 1e-9
        assert h["entropy_normalised"] == pytest.approx(h["entropy_nats"] / math.log(m))
    for branch in ("normal", "abnormal"):
        t = health[f"triplets_{branch}"]
        assert t["triplets"] > 0 and 0 <= t["active_share"] <= 1 and t["mean_hinge"] >= 0
    table = health_table(report)  # what the notebooks show: one row per memory and per triplet branch
    assert set(table.index) == set(health)
    assert table.loc["normality", "top item's share"] == round(health["normality"]["top_item_share"], 3)
    assert table.loc["triplets_normal", "active triplet share"] == round(health["triplets_normal"]["active_share"], 3)
    assert health_table({}).empty  # a run from before the diagnostic
    # the same numbers straight from the trained model on the same batches
    again = memory_health(engine.load_run(run, "cpu"), method.train_dataset(engine.as_layout(data)),
                          max_batches=engine.MEMORY_HEALTH_BATCHES, seed=0)
    assert again["normality"] == health["normality"]
    # MNAD: one space, all queries (no routing)
    run2 = tmp_path / "mnad"
    engine.fit(create_method("mnad_pred", "smoke"), data, run2, seed=0, device="cpu", progress=False)
    assert set(engine.evaluate_run(run2, data, device="cpu", progress=False)["memory_health"]) == {"memory"}
