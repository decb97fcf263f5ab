"""`vadlab reproduce`: spec validation, the dry-run listing, a full tiny reproduction, reuse, a real process stopped
by SIGTERM and run again, a changed spec refused, CPU workers (`--devices cpu,cpu`). Everything at the `smoke`
preset on tiny data."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vadlab import reproduce
from vadlab.cli import main
from vadlab.errors import ConfigError
from vadlab.registry import get_spec

VADLAB = [sys.executable, "-m", "vadlab.cli"]

TINY = """\
title = "tiny table"
paper = "Park, Noh and Ham, CVPR 2020"
table = "Table 2"
section = "Sec. 4.3"
dataset = "synthetic:tiny"
seeds = [0]
paper_on = "UCSD Ped2 (full)"

[[rows]]
id = "A"
label = "w/o memory"
method = "mnad_pred"
ablation = "no_memory"
set = { epochs = EPOCHS }
paper = 94.3

[[rows]]
id = "B"
label = "full"
method = "mnad_pred"
set = { epochs = EPOCHS }
paper = 97.0

[[rows]]
id = "C"
label = "full, w/o test-time update"
scored_from = "B"
score_set = { test_update = false }
paper = 96.0

[[rows]]
id = "D"
label = "full, macro AUC"
scored_from = "B"
metric = "macro_auc"
"""


def _spec(tmp_path: Path, text: str = TINY, name: str = "tiny", epochs: int = 1) -> Path:
    file = tmp_path / f"{name}.toml"
    file.write_text(text.replace("EPOCHS", str(epochs)))
    return file


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", VADLAB_THREADS="1")


# --- specs --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(reproduce.list_specs()))
@pytest.mark.parametrize("preset", ["smoke", "cpu"])
def test_every_shipped_spec_validates(name, preset):
    spec = reproduce.load_spec(name, preset)
    assert spec.rows and spec.title and spec.paper_on
    for row in spec.rows:  # every paper number is on its own scale, and every scored row points at a trained one
        assert row.paper is None or 0 < spec.paper_fraction(row) <= 1
        assert row.scored_from is None or spec.row(row.scored_from).scored_from is None


def test_the_mnad_prediction_spec_trains_five_rows_and_rescores_two():
    spec = reproduce.load_spec("mnad_table2_pred")
    assert [r.id for r in spec.rows] == [f"T2.P{i}" for i in range(1, 8)]
    rescored = {r.id: (r.scored_from, r.score_set) for r in spec.rows if r.scored_from}
    assert rescored == {"T2.P5": ("T2.P7", {"test_update": False}), "T2.P6": ("T2.P7", {"score_lambda": 1.0})}
    assert spec.paper_fraction(spec.row("T2.P7")) == pytest.approx(0.970)  # = mnad_pred's registered ped2


BAD = [  # (what to change in TINY, the words the error must contain)
    (("title = \"tiny table\"\n", ""), "missing key 'title'"),
    (("section = ", "sektion = "), "unknown key 'sektion'"),
    (("dataset = \"synthetic:tiny\"", "dataset = \"ped3\""), "dataset = 'ped3': unknown dataset kind"),
    (("dataset = \"synthetic:tiny\"", "dataset = \"synthetic:huge\""), "unknown synthetic preset"),
    (("seeds = [0]", "seeds = [0, 0]"), "seeds = [0, 0]"),
    (("method = \"mnad_pred\"\nablation", "method = \"mnad_prd\"\nablation"), "rows[0] (A).method: unknown method"),
    (("ablation = \"no_memory\"", "ablation = \"no_memry\""), "rows[0] (A).ablation: mnad_pred has no ablation"),
    (("set = { epochs = EPOCHS }\npaper = 97.0", "set = { epochz = 1 }\npaper = 97.0"),
     "rows[1] (B).set: unknown config key 'epochz'"),
    (("set = { epochs = EPOCHS }\npaper = 97.0", "set = { epochs = 0 }\npaper = 97.0"), "rows[1] (B).set: epochs=0"),
    (("scored_from = \"B\"\nscore_set", "scored_from = \"Z\"\nscore_set"),
     "rows[2] (C).scored_from = 'Z': no such row"),
    (("scored_from = \"B\"\nmetric", "scored_from = \"C\"\nmetric"),
     "rows[3] (D).scored_from = 'C': must name a trained"),
    (("score_set = { test_update = false }", "score_set = { test_updat = false }"),
     "rows[2] (C).score_set: unknown config key 'test_updat'"),
    (("id = \"D\"", "id = \"C\""), "rows[2] (C).id = 'C': used by more than one row"),
    (("id = \"D\"", "id = \"../D\""), "rows[3] (../D).id = '../D': must be a folder name"),
    (("paper = 94.3", "paper = 943"), "rows[0] (A).paper = 943: outside the percent scale"),
    (("ablation = \"no_memory\"\n", ""), "rows[1] (B): trains the same config as row A"),
    (("metric = \"macro_auc\"\n", ""), "rows[3] (D): score_set is empty and the metric is its source's"),
]


@pytest.mark.parametrize("change,words", BAD, ids=[w[:40] for _, w in BAD])
def test_a_bad_spec_is_refused_naming_the_file_and_key(tmp_path, change, words):
    old, new = change
    assert old in TINY
    file = _spec(tmp_path, TINY.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        reproduce.load_spec(file, "smoke")
    assert str(file) in str(info.value) and words in str(info.value), str(info.value)


def test_the_cli_exits_2_on_a_bad_spec_before_anything_runs(tmp_path, tiny_synthetic, capsys):
    file = _spec(tmp_path, TINY.replace("ablation = \"no_memory\"", "ablation = \"no_memry\""))
    runs = tmp_path / "runs"
    assert main(["reproduce", str(file), "--preset", "smoke", "--data", str(tiny_synthetic), "--runs", str(runs),
                 "--out", str(tmp_path / "reports")]) == 2
    assert "rows[0] (A).ablation" in capsys.readouterr().err
    assert not runs.exists()


def test_list_names_every_spec(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("mnad_table2_pred", "mnad_table2_recon", "dream_table3", "maam_table5_branches", "std_table2"):
        assert name in out


# --- running ------------------------------------------------------------------------------------------------------
def _args(file, data, root) -> list[str]:
    return ["reproduce", str(file), "--preset", "smoke", "--data", str(data), "--runs", str(root / "runs"), "--out",
            str(root / "reports"), "--quiet"]


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_tiny_reproduction_writes_the_table_then_reuses_every_run(tmp_path, tiny_synthetic, capsys):
    file = _spec(tmp_path)
    assert main(_args(file, tiny_synthetic, tmp_path) + ["--dry-run"]) == 0
    listing = capsys.readouterr().out
    assert "A              seed0          new" in listing and "C              seed0          re-evaluate" in listing
    assert "trainings: 2 new, 0 to resume, 0 to evaluate, 0 finished" in listing
    seconds, source = get_spec("mnad_pred").step_seconds["smoke"]  # the estimate reads the registered step time
    assert f"mnad_pred at smoke: {seconds} s per step ({source})" in listing
    assert main(_args(file, tiny_synthetic, tmp_path)) == 0
    runs = tmp_path / "runs" / "tiny"
    assert sorted(p.name for p in runs.iterdir()) == ["A", "B"]  # C and D trained nothing
    assert (runs / "B" / "seed0" / "metrics[test_update=False].json").exists()
    out = tmp_path / "reports" / "tiny"
    for name in ("table.md", "table.csv", "table.png", "provenance.json"):
        assert (out / name).stat().st_size > 0
    rows = {r["id"]: r for r in csv.DictReader((out / "table.csv").open())}
    b = json.loads((runs / "B" / "seed0" / "metrics.json").read_text())
    c = json.loads((runs / "B" / "seed0" / "metrics[test_update=False].json").read_text())
    assert float(rows["B"]["ours_mean"]) == pytest.approx(b["micro_auc"], abs=1e-4)
    assert float(rows["C"]["ours_mean"]) == pytest.approx(c["micro_auc"], abs=1e-4)
    assert float(rows["D"]["ours_mean"]) == pytest.approx(b["macro_auc"], abs=1e-4)
    assert rows["A"]["paper"] == "94.3" and rows["A"]["paper_on"] == "UCSD Ped2 (full)"
    table = (out / "table.md").read_text()
    assert "| A | w/o memory |" in table and "94.3 % (0.943)" in table and "re-scored from B" in table
    assert json.loads((out / "provenance.json").read_text())["spec"] == "tiny"

    before = _mtimes(runs)
    assert main(_args(file, tiny_synthetic, tmp_path)) == 0
    assert _mtimes(runs) == before  # nothing trained, evaluated or re-scored again
    assert main(_args(file, tiny_synthetic, tmp_path) + ["--dry-run"]) == 0
    assert "trainings: 0 new, 0 to resume, 0 to evaluate, 2 finished; re-evaluations: 0 to do, 1 done; 1 read " \
        "another metric" in capsys.readouterr().out


def test_a_changed_spec_or_preset_is_refused_naming_the_row_and_the_change(tmp_path, tiny_synthetic, capsys):
    file = _spec(tmp_path)
    assert main(_args(file, tiny_synthetic, tmp_path)) == 0
    before = _mtimes(tmp_path / "runs")
    _spec(tmp_path, TINY.replace("set = { epochs = EPOCHS }\npaper = 97.0",
                                 "set = { epochs = EPOCHS, lambda_s = 0.5 }\npaper = 97.0"))
    assert main(_args(file, tiny_synthetic, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "row B (seed0)" in err and "config.lambda_s 0.1 -> 0.5" in err and "set {'epochs': 1}" in err
    _spec(tmp_path)
    args = _args(file, tiny_synthetic, tmp_path)
    args[args.index("smoke")] = "cpu"
    assert main(args) == 2
    assert "row A (seed0)" in capsys.readouterr().err
    assert _mtimes(tmp_path / "runs") == before


def test_a_reproduction_stopped_by_sigterm_resumes_and_redoes_nothing_finished(tmp_path):
    from conftest import write_random_layout

    data = write_random_layout(tmp_path / "data", n_train=3, frames=40, size=(32, 32))
    file = _spec(tmp_path, TINY.replace("synthetic:tiny", "ped2"), epochs=4)
    args = _args(file, data, tmp_path)
    runs = tmp_path / "runs" / "tiny"
    proc = subprocess.Popen(VADLAB + args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not (runs / "B" / "seed0" / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # into B's second epoch
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "resume with the same command" in stderr
    assert (runs / "A" / "seed0" / "metrics.json").exists()
    stopped = len(json.loads((runs / "B" / "seed0" / "history.json").read_text()))
    assert 1 <= stopped < 4 and not (runs / "B" / "seed0" / "metrics.json").exists()
    finished_a = _mtimes(runs / "A")

    again = subprocess.run(VADLAB + args[:-1], env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "A seed0: finished, reused" in again.stdout
    assert f"B seed0: resuming {runs / 'B' / 'seed0'} after epoch {stopped} of 4" in again.stdout
    assert _mtimes(runs / "A") == finished_a
    assert [h["epoch"] for h in json.loads((runs / "B" / "seed0" / "history.json").read_text())] == [1, 2, 3, 4]
    assert (tmp_path / "reports" / "tiny" / "table.csv").exists()


SPLIT = """\
title = "split table"
paper = "Guo et al."
table = "Table III"
section = "Sec. IV-D"
dataset = "ped2"
seeds = [0]
paper_on = "UCSD Ped2 (full), 10 folds"

[split]
protocol = "kfold"
k = 3
folds = [0, 2]

[[rows]]
id = "mem"
label = "UNet+Mem"
method = "dream"
ablation = "unet_mem"
paper = 94.4
"""


def test_a_fold_split_is_derived_once_per_fold_and_each_fold_is_a_replicate(tmp_path):
    from conftest import write_random_layout

    from vadlab.data.splits import derived_meta

    data = write_random_layout(tmp_path / "data", n_train=3, n_test=3, frames=40, size=(32, 32))
    result = reproduce.reproduce(_spec(tmp_path, SPLIT, "split"), preset="smoke", data=data, runs=tmp_path / "runs",
                                 out=tmp_path / "reports", progress=False, log=lambda _: None)
    assert list(result["rows"][0]["ours"]) == ["fold0-seed0", "fold2-seed0"]
    for fold in (0, 2):
        root = tmp_path / "runs" / "split" / "data" / f"kfold-k3-segment-m5-fold{fold}"
        assert derived_meta(root)["args"]["fold"] == fold
        run = json.loads((tmp_path / "runs" / "split" / "mem" / f"fold{fold}-seed0" / "run.json").read_text())
        assert run["data"] == str(root)


def test_cpu_workers_run_the_same_table(tmp_path, tiny_synthetic):
    """--devices cpu,cpu: two worker processes (the path CUDA devices take, with CUDA_VISIBLE_DEVICES), the scored
    rows after their source; the same numbers as a run in one process."""
    file = _spec(tmp_path)
    result = reproduce.reproduce(file, preset="smoke", data=tiny_synthetic, runs=tmp_path / "w", out=tmp_path / "rw",
                                 devices=["cpu", "cpu"], progress=False, log=lambda _: None)
    single = reproduce.reproduce(file, preset="smoke", data=tiny_synthetic, runs=tmp_path / "s", out=tmp_path / "rs",
                                 progress=False, log=lambda _: None)
    assert [r["ours"] for r in result["rows"]] == [r["ours"] for r in single["rows"]]
    assert all(j.status == "new" or j.row.scored_from for j in result["jobs"])


def test_two_workers_never_hold_one_run_folder(tmp_path, ped2_mini):
    """Two rows re-scored from one run (MNAD's P5 and P6 from P7) go one after the other, not to two workers at once:
    the second would find the run's evaluation lock taken (seen on ped2-mini with --devices cpu,cpu)."""
    spec = reproduce.load_spec(reproduce.SPEC_DIR / "mnad_table2_pred.toml", "cpu")
    jobs = reproduce.plan(spec, preset="cpu", data=ped2_mini, runs=tmp_path, seeds=[0])
    p7 = next(j for j in jobs if j.row.id == "T2.P7")
    p5, p6 = (next(j for j in jobs if j.row.id == i) for i in ("T2.P5", "T2.P6"))
    trained = {j.folder for j in jobs if not j.row.scored_from}
    assert reproduce.next_job([p5, p6], trained, set(), set()) is None  # P7 not trained yet
    assert reproduce.next_job([p5, p6], trained, {p7.folder}, set()) is p5
    assert reproduce.next_job([p6], trained, {p7.folder}, {p5.folder}) is None  # P5 re-scores P7's folder now
    assert reproduce.next_job([p6, p7], set(), set(), {p7.folder}) is None


def test_devices_are_parsed_strictly():
    assert reproduce.parse_devices("0,1") == ["0", "1"]
    assert reproduce.parse_devices("cpu,cpu") == ["cpu", "cpu"]
    for bad in ("", "cuda:0", "0,0", "a"):
        with pytest.raises(ConfigError, match="--devices"):
            reproduce.parse_devices(bad)


def test_the_mnad_table_dry_run_on_ped2_mini(ped2_mini, tmp_path, capsys):
    assert main(["reproduce", "mnad_table2_pred", "--data", str(ped2_mini), "--runs", str(tmp_path / "runs"),
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "trainings: 15 new, 0 to resume, 0 to evaluate, 0 finished; re-evaluations: 6 to do, 0 done" in out
    seconds = get_spec("mnad_pred").step_seconds["cpu"][0]
    assert f"mnad_pred at cpu: {seconds} s per step" in out and not (tmp_path / "runs").exists()


def test_data_of_another_kind_is_refused(tmp_path, capsys):
    from conftest import write_random_layout

    data = write_random_layout(tmp_path / "data")
    (data / "meta.json").write_text(json.dumps({"dataset": "avenue"}))
    file = _spec(tmp_path, TINY.replace("synthetic:tiny", "ped2"))
    assert main(_args(file, data, tmp_path) + ["--dry-run"]) == 2
    assert f"{data / 'meta.json'}: dataset 'avenue', but tiny.toml is a table on 'ped2'" in capsys.readouterr().err
    assert main(_args(file, tmp_path / "nowhere", tmp_path) + ["--seeds", "0"]) == 2
    assert "no such dataset; give the ped2 root with --data ROOT" in capsys.readouterr().err
    assert main(_args(file, data, tmp_path) + ["--seeds", "0,x"]) == 2
    assert "--seeds '0,x': expected integers" in capsys.readouterr().err


@pytest.mark.parametrize("table,row,method", [("mnad_table2_pred", "T2.P7", "mnad_pred"),
                                              ("mnad_table2_recon", "T2.R7", "mnad_recon"),
                                              ("dream_table3", "T3.dream", "dream"),
                                              ("maam_table5_branches", "T5.both", "maam"),
                                              ("std_table2", "T2.full", "std")])
def test_the_full_rows_carry_the_papers_numbers_already_in_the_package(table, row, method):
    from vadlab.registry import reported

    spec = reproduce.load_spec(table)
    assert spec.paper_fraction(spec.row(row)) == pytest.approx(reported(method)["ped2"])


def test_the_std_rows_carry_the_numbers_of_std_table2():
    spec = reproduce.load_spec("std_table2")
    table2 = get_spec("std").cls.TABLE2
    assert {r.ablation or "full": r.paper for r in spec.rows} == table2


def test_the_dream_video_spec_is_the_papers_protocol_beside_the_segment_spec(tmp_path):
    from conftest import write_random_layout

    from vadlab.data.splits import derived_meta, kfold_split

    video, segment = reproduce.load_spec("dream_table3_video"), reproduce.load_spec("dream_table3")
    assert video.split["unit"] == "video" and segment.split["unit"] == "segment"
    assert 2 <= video.split["k"] <= 10 and video.split["folds"] == list(range(video.split["k"]))  # every fold
    for row in segment.rows:  # the same Table III rows with the paper's numbers
        twin = video.row(row.id)
        assert (twin.method, twin.ablation, twin.paper) == (row.method, row.ablation, row.paper)
    assert video.row("T3.mnad_p").method == "mnad_pred" and video.row("T3.mnad_p").paper is None
    # the split the spec asks for cuts whole test videos: on 3 anomalous test videos, each fold moves one
    data = write_random_layout(tmp_path / "data", n_train=2, n_test=3, frames=40, size=(32, 32))
    moved = set()
    for fold in video.split["folds"]:
        out = tmp_path / f"fold{fold}"
        kfold_split(data, out, k=video.split["k"], fold=fold, unit="video", margin=video.split["margin"])
        units = derived_meta(out)["units"]
        assert len({u[0] for u in units}) == 1  # one whole video per fold
        moved |= {u[0] for u in units}
    assert len(moved) == 3


def test_the_std_table3_rows_carry_the_numbers_of_std_table3():
    """Issue 21: K = 8, 16, 32, 64 (set clusters) and "-" (the both + attention ablation), with Table 3's numbers."""
    from vadlab.registry import get_spec

    spec = reproduce.load_spec("std_table3")
    table3 = get_spec("std").cls.TABLE3
    got = {r.set.get("clusters") if r.ablation is None else None: r.paper for r in spec.rows}
    assert got == {k: v for k, v in table3.items() if k != 4}
    assert spec.row("T3.none").ablation == "t2_both_att"


def test_a_run_made_before_a_config_field_existed_is_reused_only_when_the_default_keeps_its_behaviour(
        tmp_path, tiny_synthetic):
    """A finished run's key lacks a field added since: filled as loading its checkpoint fills it (the field's
    default), it matches when the preset keeps that default and is refused, naming the field, when it does not."""
    import dataclasses
    import importlib

    planning = importlib.import_module("vadlab.reproduce.plan")  # the module (the package exports its `plan`)

    spec = reproduce.load_spec(_spec(tmp_path), "smoke")
    runs = tmp_path / "runs"
    job = planning.plan(spec, preset="smoke", data=tiny_synthetic, runs=runs)[0]
    config = job.key["config"]
    cls = get_spec(job.row.method).config_cls
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    same = next(k for k, v in config.items() if k in defaults and json.loads(json.dumps(defaults[k])) == v)
    other = next(k for k, v in config.items() if k in defaults and json.loads(json.dumps(defaults[k])) != v)
    for missing, accepted in ((same, True), (other, False)):
        old = {**job.key, "config": {k: v for k, v in config.items() if k != missing}}
        job.folder.mkdir(parents=True, exist_ok=True)
        (job.folder / planning.RECORD).write_text(json.dumps({"hash": planning._key_hash(old), "key": old}))
        if accepted:
            planning.plan(spec, preset="smoke", data=tiny_synthetic, runs=runs)
        else:
            with pytest.raises(ConfigError, match=f"config.{other}"):
                planning.plan(spec, preset="smoke", data=tiny_synthetic, runs=runs)


# --- cluster jobs through submitit (--executor) -------------------------------------------------------------------
def _job_tasks(root: Path) -> list[int]:
    """The pids of the running submitit job tasks under `root` (`python -m submitit.core._submit ROOT/...`)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"submitit.core._submit" in cmd and any(str(root).encode() in part for part in cmd):
            pids.append(int(proc.name))
    return pids


def _wait_for_task(runs: Path, root: Path, proc) -> int:
    """Once B's first epoch is checkpointed, the pid of the job task training it (the only task: --max-jobs 1)."""
    deadline = time.time() + 300
    while not (runs / "B" / "seed0" / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    tasks = _job_tasks(root)
    assert len(tasks) == 1, (tasks, proc.poll())
    time.sleep(0.05)  # into B's second epoch
    return tasks[0]


def _cluster_run(tmp_path: Path) -> tuple[Path, list[str], Path]:
    pytest.importorskip("submitit")
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("finds the job's process through /proc")
    from conftest import write_random_layout

    data = write_random_layout(tmp_path / "data", n_train=3, frames=40, size=(32, 32))
    file = _spec(tmp_path, TINY.replace("synthetic:tiny", "ped2"), epochs=4)
    return file, _args(file, data, tmp_path) + ["--executor", "local", "--max-jobs", "1"], tmp_path / "runs" / "tiny"


def test_a_local_executor_job_killed_midway_resumes_on_the_rerun_and_the_table_is_written(tmp_path):
    """`--executor local`: each run a submitit job (a real subprocess). B's job is killed (SIGKILL, as a lost node):
    the command names the failed runs, keeps A, writes no table; the same command again reuses A, resumes B from
    its checkpoint and writes the table."""
    file, args, runs = _cluster_run(tmp_path)
    proc = subprocess.Popen(VADLAB + args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.kill(_wait_for_task(runs, tmp_path, proc), signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert "runs failed: B seed0, C seed0 (job" in err and "it ended without a result (killed" in err, err
    assert (runs / "A" / "seed0" / "metrics.json").exists()
    stopped = len(json.loads((runs / "B" / "seed0" / "history.json").read_text()))
    assert 1 <= stopped < 4 and not (runs / "B" / "seed0" / "metrics.json").exists()
    assert not (tmp_path / "reports" / "tiny" / "table.csv").exists()
    finished_a = _mtimes(runs / "A")

    again = subprocess.run(VADLAB + args[:-5] + args[-4:], env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "A seed0: finished, reused" in again.stdout
    assert f"B seed0: resuming {runs / 'B' / 'seed0'} after epoch {stopped} of 4 [local job" in again.stdout
    assert _mtimes(runs / "A") == finished_a
    assert [h["epoch"] for h in json.loads((runs / "B" / "seed0" / "history.json").read_text())] == [1, 2, 3, 4]
    rows = {r["id"]: r for r in csv.DictReader((tmp_path / "reports" / "tiny" / "table.csv").open())}
    c = json.loads((runs / "B" / "seed0" / "metrics[test_update=False].json").read_text())
    assert float(rows["C"]["ours_mean"]) == pytest.approx(c["micro_auc"], abs=1e-4)


def test_a_preempted_local_job_is_requeued_resumes_and_trains_the_same_weights(tmp_path, monkeypatch):
    """The preemption notice (SIGUSR2, what Slurm sends before a time limit or on preemption) to B's job: the
    training saves its position inside the epoch, submitit requeues the job, it resumes from that checkpoint, and the
    one command ends with the table. B's weights equal those of the same table run in one process (the CPU resume
    is bit-exact)."""
    from conftest import assert_same_tensors, checkpoint

    file, args, runs = _cluster_run(tmp_path)
    proc = subprocess.Popen(VADLAB + args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.kill(_wait_for_task(runs, tmp_path, proc), signal.SIGUSR2)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    logs = "".join(p.read_text() for p in (runs / ".submitit").rglob("*_log.*"))  # submitit logs INFO to .out
    assert "Caught signal SIGUSR2" in logs and "Requeued job" in logs and "Job completed successfully" in logs
    assert [h["epoch"] for h in json.loads((runs / "B" / "seed0" / "history.json").read_text())] == [1, 2, 3, 4]
    assert (tmp_path / "reports" / "tiny" / "table.csv").exists()

    monkeypatch.setenv("VADLAB_THREADS", "1")
    reproduce.reproduce(file, preset="smoke", data=tmp_path / "data", runs=tmp_path / "one", out=tmp_path / "r1",
                        progress=False, log=lambda _: None)
    assert_same_tensors(checkpoint(runs / "B" / "seed0")["model"], checkpoint(tmp_path / "one" / "tiny" / "B" /
                                                                               "seed0")["model"])


def test_cluster_options_are_checked():
    from vadlab.reproduce.cluster import ClusterOptions

    with pytest.raises(ConfigError, match="--executor 'pbs'"):
        ClusterOptions("pbs")
    with pytest.raises(ConfigError, match="--gpus -1"):
        ClusterOptions("slurm", gpus=-1)
    params = ClusterOptions("slurm", partition="gpu", gpus=1, time_min=60, mem_gb=32).parameters("vadlab-x")
    assert params["slurm_partition"] == "gpu" and params["gpus_per_node"] == 1 and params["timeout_min"] == 60
    assert params["mem_gb"] == 32 and "cpus_per_task" not in params
