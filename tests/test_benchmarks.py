"""The benchmark scripts' functions run (on `smoke` shapes): never a timing, only that they measure what they say."""

from __future__ import annotations

import importlib.util
import math

import pytest
from conftest import REPO

from vadlab.data.clips import frame_size
from vadlab.data.layout import load_layout
from vadlab.registry import get_config, list_methods


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def roofline():
    return _load("bench_roofline")


def test_the_machine_peaks_are_measured_at_the_thread_count(roofline):
    import torch

    peaks = roofline.machine_peaks(n=128, conv_shape=(1, 8, 16, 16), warmup=0, reps=1)
    assert peaks["threads"] == torch.get_num_threads()
    assert peaks["matmul_flops_per_s"] > 0 and peaks["conv_flops_per_s"] > 0


@pytest.mark.parametrize("name", sorted(set(list_methods()) - {"toy_dual"}))
def test_the_roofline_measures_every_method_on_batches_of_its_preset(roofline, name, tiny_synthetic):
    layout = load_layout(tiny_synthetic)
    rows = roofline.measure(name, "smoke", layout, warmup=0, reps=1)
    config = get_config(name, "smoke")
    stages = 1 + (name == "std" and 0 < config.pretrain_epochs < config.epochs)  # STD: pretrain, then alternate
    assert [r["method"] for r in rows] == ([f"std ({s})" for s in ("pretrain", "alternate")[2 - stages:]]
                                           if name == "std" else [name])
    for row in rows:
        batch = row["batch"]
        assert batch[-3:] == [config.channels, *frame_size(config.image_size)]
        assert batch[0] == config.batch_size
        assert row["step_flops"] > row["score_flops_per_frame"] > 0
        for key in ("step_seconds", "achieved_flops_per_s", "loader_seconds", "score_model_seconds_per_frame"):
            assert math.isfinite(row[key]) and row[key] > 0, key
    text = roofline.table(rows, {"threads": 1, "matmul_n": 8, "conv_input": [1], "matmul_flops_per_s": 1e9,
                                 "conv_flops_per_s": 1e9})
    assert all(f"| {row['method']} |" in text for row in rows)


def test_the_roofline_profiles_a_step_in_channels_last(roofline, tiny_synthetic):
    rows = roofline.measure("mnad_recon", "smoke", load_layout(tiny_synthetic), warmup=0, reps=1, top_ops=4,
                            channels_last=True)
    ops = rows[0]["top_ops"]
    assert rows[0]["channels_last"] and 1 <= len(ops) <= 4
    assert all(o["ms_per_step"] > 0 for o in ops) and sum(o["share"] for o in ops) <= 1 + 1e-9
    assert [o["share"] for o in ops] == sorted((o["share"] for o in ops), reverse=True)
    assert "Slowest ops of a step" in roofline.ops_table(rows) and roofline.ops_table([]) == ""


def test_bench_train_times_each_method_as_its_preset_is(tiny_synthetic, capsys, monkeypatch):
    bench = _load("bench_train")
    monkeypatch.setattr("sys.argv", ["bench_train", "--data", str(tiny_synthetic), "--preset", "smoke",
                                     "--methods", "mnad_pred,dream", "--no-ablations", "--threads", "1"])
    bench.main()
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert set(rows) == {"mnad_pred", "dream"}  # no ablation rows
    for steps, per_epoch, per_fit, *_ in rows.values():
        assert int(steps) >= 1 and 0 < float(per_epoch) <= float(per_fit)


def test_the_full_size_report_reads_every_run(tmp_path, tiny_synthetic):
    import json

    from vadlab import engine
    from vadlab.registry import create_method

    run = tmp_path / "seed0" / "mnad_pred"
    engine.fit(create_method("mnad_pred", "smoke", steps_per_epoch=2), tiny_synthetic, run, device="cpu",
               progress=False)
    engine.evaluate_run(run, tiny_synthetic, device="cpu", progress=False)
    (run / "wall.txt").write_text("12.5\n")
    report = _load("cpu_budget_report")
    rows = report.rows(tmp_path)
    assert len(rows) == 1 and rows[0]["steps"] == 2 and rows[0]["full_steps"] > 2 and rows[0]["wall_s"] == 12.5
    metrics = json.loads((run / "metrics.json").read_text())
    assert rows[0]["auc"] == metrics["micro_auc"]
    assert "| mnad_pred | 0 |" in report.table(rows)


def test_the_mnad_memory_study_measures_each_cause_and_replots(tmp_path, tiny_synthetic, monkeypatch, capsys):
    """Issue 28's study on smoke runs with and without the memory: every column it promises is measured (the
    memory losses' pull at initialisation and at the end, the read with and without the mean item, the run's
    evaluation without the test-time update), and --replot redraws from --json without loading a model."""
    import json
    import sys

    from vadlab import engine
    from vadlab.registry import create_method

    runs = {}
    for name, kw in (("mnad_pred", {}), ("mnad_pred-no_memory", {"use_memory": False})):
        runs[name] = tmp_path / "seed0" / name
        engine.fit(create_method("mnad_pred", "smoke", steps_per_epoch=2, **kw), tiny_synthetic, runs[name],
                   device="cpu", progress=False)
        engine.evaluate_run(runs[name], tiny_synthetic, device="cpu", progress=False)
    engine.evaluate_run(runs["mnad_pred"], tiny_synthetic, device="cpu", progress=False,
                        overrides={"test_update": False})
    study = _load("mnad_memory_study")
    mem, plain = (study.causes(runs[n], videos=2, batches=1) for n in ("mnad_pred", "mnad_pred-no_memory"))
    for key in ("pull_init", "pull_end", "cosine_end", "top_weight", "auc_psnr_read", "auc_psnr_mean_item",
                "auc_no_test_update", "neg_psnr_pooled", "distance_pooled", "rec_last"):
        assert math.isfinite(mem[key]), key
    assert mem["pull_init"] > 0 and 0.25 <= mem["top_weight"] <= 1.0  # smoke: M = 4 items, 1/M = 0.25
    no_update = json.loads((runs["mnad_pred"] / "metrics[test_update=False].json").read_text())
    assert mem["auc_no_test_update"] == no_update["micro_auc"]
    assert "pull_end" not in plain and "distance_pooled" not in plain and math.isfinite(plain["neg_psnr_pooled"])
    assert "| 0 | yes |" in study.causes_table([mem]) and "| 0 | no |" in study.causes_table([plain])
    saved, figure = tmp_path / "rows.json", tmp_path / "causes.png"
    monkeypatch.setattr(sys, "argv", ["study", str(runs["mnad_pred"]), str(runs["mnad_pred-no_memory"]),
                                      "--videos", "2", "--causes", "--json", str(saved)])
    study.main()
    first = capsys.readouterr().out
    monkeypatch.setattr(study, "causes", None)  # --replot loads no model and measures nothing
    monkeypatch.setattr(study, "study", None)
    monkeypatch.setattr(sys, "argv", ["study", "--replot", str(saved), "--cause-figure", str(figure)])
    study.main()
    assert capsys.readouterr().out == first and figure.stat().st_size > 10_000
