"""Reproduce runs: one job (`execute`), the derived splits, the worker pool over devices (one subprocess per device,
`python -m vadlab.reproduce`), and `reproduce`, the whole command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vadlab.errors import ConfigError, DataError, Interrupted, VadlabError
from vadlab.reproduce.plan import RECORD, Job, _check_data, _key_hash, _overrides, _split_root, default_data, plan
from vadlab.reproduce.spec import Spec, load_spec
from vadlab.reproduce.tables import summarise, write_table


# --- running --------------------------------------------------------------------------------------------------
def _payload(job: Job, preset: str) -> dict:
    return {"folder": str(job.folder), "data": str(job.data), "key": job.key, "hash": _key_hash(job.key),
            "method": job.row.method, "preset": preset, "ablation": job.row.ablation, "set": job.row.set,
            "seed": job.seed, "score_set": job.row.score_set if job.row.scored_from else None,
            "train": not job.row.scored_from}


def execute(payload: dict, *, device: str = "auto", threads: int | None = None, progress: bool = True) -> None:
    """Run one job (a `_payload`): train (resuming from a checkpoint) and evaluate, or re-score with overrides."""
    from vadlab import engine
    from vadlab.io import write_json
    from vadlab.registry import create_method

    folder, data = Path(payload["folder"]), payload["data"]
    if payload["train"]:
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / RECORD).exists():
            write_json(folder / RECORD, {"key": payload["key"], "hash": payload["hash"]})
        method = create_method(payload["method"], payload["preset"],
                               ablations=[payload["ablation"]] if payload["ablation"] else [], **payload["set"])
        history = folder / "history.json"
        done = len(json.loads(history.read_text())) if history.exists() else 0
        if not (folder / engine.CHECKPOINT).exists() or done < method.config.epochs:
            engine.fit(method, data, folder, seed=payload["seed"], device=device, resume=True, progress=progress,
                       threads=threads)
        if not (folder / "metrics.json").exists():
            engine.evaluate_run(folder, data, device=device, progress=progress, threads=threads)
    else:
        engine.evaluate_run(folder, data, device=device, progress=progress, overrides=payload["score_set"] or None,
                            threads=threads)


def _derive_splits(spec: Spec, root: Path, runs: Path) -> None:
    """Write the few-anomaly split of each fold (once; an existing one must come from the same root and args)."""
    if not spec.split:
        return
    from vadlab.data.splits import derived_meta, kfold_split

    s = spec.split
    for fold in s["folds"]:
        out = _split_root(spec, runs, fold)
        args = {"k": s["k"], "fold": fold, "unit": s["unit"], "margin": s["margin"]}
        if out.exists():
            meta = derived_meta(out)
            same = meta.get("derived_from") == str(root.resolve()) and all(meta["args"].get(k) == v
                                                                            for k, v in args.items())
            if not same:
                raise DataError(f"{out}: a split of {meta.get('derived_from')} with {meta.get('args')}, not of "
                                f"{root.resolve()} with {args}; remove it or give another --runs")
            continue
        kfold_split(root, out, **args)


def reproduce(table: str | os.PathLike, *, preset: str = "cpu", data: str | os.PathLike | None = None,
              runs: str | os.PathLike = "runs/reproduce", out: str | os.PathLike = "reports",
              seeds: list[int] | None = None, devices: list[str] | None = None, progress: bool = True,
              log=None, cluster=None) -> dict:
    """Run every missing run of a spec (see the module docstring), then write `out/<spec>/table.md`, `table.csv`,
    `table.png` and `provenance.json`. `devices`: CUDA device indices ("0", "1") or "cpu", one worker process each;
    `cluster` (`cluster.ClusterOptions`): one submitit job per run on Slurm or submitit's local executor (see
    `vadlab.reproduce.cluster`); neither: one run at a time in this process. Returns {"spec", "jobs", "rows"} (rows
    as in `summarise`)."""
    if devices and cluster is not None:
        raise ConfigError("--devices and --executor: give one (--devices shares this machine's devices, --executor "
                          "submits each run as a cluster job)")
    from vadlab.progress import tqdm

    log = log or tqdm.write  # messages above the progress bars, not through them
    spec = load_spec(table, preset)
    root = Path(data) if data is not None else default_data(spec.dataset)
    _check_data(spec, root, create=True)
    jobs = plan(spec, preset=preset, data=root, runs=runs, seeds=seeds)  # refuses a changed spec before any work
    _derive_splits(spec, root, Path(runs))
    todo = [j for j in jobs if j.status not in ("finished", "with source")]
    for job in jobs:
        if job.status == "finished":
            log(f"{job.name}: finished, reused ({job.metrics_file})")
    bar = tqdm(total=len(todo), desc=f"reproduce {spec.name}", unit="run", disable=not progress or not todo)
    if cluster is not None and todo:
        from vadlab.reproduce.cluster import jobs_folder, run_jobs

        run_jobs(todo, preset, cluster, jobs_folder(runs, spec.name), spec.name, bar, log)
    elif devices:
        _run_pool(todo, devices, preset, bar, log)
    else:
        for job in todo:
            log(_start_message(job))
            execute(_payload(job, preset), device="auto", progress=progress)
            bar.update(1)
    bar.close()
    rows = summarise(spec, jobs)
    paths = write_table(spec, rows, Path(out) / spec.name, preset=preset, data=root, runs=Path(runs), jobs=jobs)
    log(f"wrote {', '.join(str(p) for p in paths)}")
    return {"spec": spec, "jobs": jobs, "rows": rows, "files": paths}


def _start_message(job: Job) -> str:
    if job.row.scored_from:
        return f"{job.name}: re-scoring {job.folder} with {_overrides(job.row.score_set) or job.row.metric}"
    if job.status == "resume":
        return f"{job.name}: resuming {job.folder} after epoch {job.epochs_done} of {job.epochs}"
    if job.status == "evaluate":
        return f"{job.name}: trained, evaluating {job.folder}"
    return f"{job.name}: training into {job.folder}"


def parse_devices(text: str) -> list[str]:
    """`--devices 0,1` (CUDA indices) or `cpu,cpu` (CPU workers sharing the cores) -> ["0", "1"]."""
    items = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in items if not (d.isdigit() or d == "cpu")]
    if not items or bad:
        raise ConfigError(f"--devices {text!r}: expected CUDA device indices or 'cpu', comma-separated (e.g. 0,1)")
    if len(set(d for d in items if d != "cpu")) != sum(d != "cpu" for d in items):
        raise ConfigError(f"--devices {text!r}: a CUDA device listed twice")
    return items


def next_job(pending: list, trained_here: set, done_folders: set, busy_folders: set):
    """The first pending job a free worker may take, or None: a scored row waits until its source run, trained in
    this command, is done, and no two workers ever hold the same run folder (two rows re-scored from one run would
    meet on its evaluation lock)."""
    for job in pending:
        if job.folder in busy_folders:
            continue
        if job.row.scored_from and job.folder in trained_here and job.folder not in done_folders:
            continue
        return job
    return None


def _run_pool(todo: list[Job], devices: list[str], preset: str, bar, log) -> None:
    """One worker subprocess per device (`python -m vadlab.reproduce JOB_JSON`): CUDA_VISIBLE_DEVICES=<index> and
    device cuda, or device cpu with the cores divided among the CPU workers. A scored row waits for its source run.
    SIGINT/SIGTERM are passed to the workers (each saves its checkpoint), then Interrupted is raised."""
    from vadlab import runs as run_utils
    from vadlab.threads import available_cores

    n_cpu = sum(d == "cpu" for d in devices)
    cpu_threads = max(1, available_cores() // max(n_cpu, 1))
    pending, done_folders = list(todo), set()
    trained_here = {(j.folder) for j in todo if not j.row.scored_from}
    free, busy = list(devices), {}
    failed = []
    with run_utils.Interrupts() as interrupts:
        while pending or busy:
            if interrupts.requested:
                for proc, _ in busy.values():
                    proc.send_signal(interrupts.signum)
                for proc, _ in busy.values():
                    proc.wait()
                raise Interrupted(f"{signal.Signals(interrupts.signum).name}: stopped {len(busy)} worker(s); their "
                                  "checkpoints are saved; run the same command again to resume", interrupts.signum)
            while free:
                job = next_job(pending, trained_here, done_folders, {j.folder for _, j in busy.values()})
                if job is None:
                    break
                pending.remove(job)
                device = free.pop(0)
                env = dict(os.environ)
                if device == "cpu":
                    env["VADLAB_THREADS"] = str(cpu_threads)
                    args = ["--device", "cpu"]
                else:
                    env["CUDA_VISIBLE_DEVICES"] = device
                    args = ["--device", "cuda"]
                log(f"{_start_message(job)} [worker on {'cpu' if device == 'cpu' else 'cuda:' + device}]")
                proc = subprocess.Popen([sys.executable, "-m", "vadlab.reproduce", json.dumps(_payload(job, preset)),
                                         *args], env=env)
                busy[device + f"#{id(proc)}"] = (proc, job)
            time.sleep(0.2)
            for slot, (proc, job) in list(busy.items()):
                if proc.poll() is None:
                    continue
                del busy[slot]
                free.append(slot.partition("#")[0])
                bar.update(1)
                if proc.returncode != 0:
                    failed.append(f"{job.name} (exit {proc.returncode})")
                    pending = [p for p in pending if not (p.row.scored_from and p.folder == job.folder)]
                elif not job.row.scored_from:
                    done_folders.add(job.folder)
    if failed:
        raise VadlabError(f"runs failed: {', '.join(failed)}; their messages are above; the others are kept")


def _worker(argv: list[str]) -> int:
    """`python -m vadlab.reproduce JOB_JSON [--device D]`: one job of `_run_pool` (exit 128+signal when stopped)."""
    payload = json.loads(argv[0])
    device = argv[argv.index("--device") + 1] if "--device" in argv else "auto"
    try:
        execute(payload, device=device, progress=False)
    except Interrupted as exc:
        print(f"vadlab: {exc}", file=sys.stderr)
        return exc.exit_status
    except VadlabError as exc:
        print(f"vadlab: error: {exc}", file=sys.stderr)
        return exc.exit_status
    return 0
