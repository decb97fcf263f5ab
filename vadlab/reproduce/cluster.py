"""`vadlab reproduce TABLE --executor slurm|local`: each run of a spec as a job of a cluster, through submitit.

One submitit job per run folder: a trained run (`workers.execute`: train, resuming from its checkpoint, then
evaluate), followed in the same job by the rows re-scored from it (so a re-scoring never waits on another job); a
row re-scored from a run finished earlier is a job of its own. The jobs run exactly what `reproduce` runs in one
process (`workers.execute` on the `workers._payload` of each planned job); this module only submits, watches and
requeues.

Preemption and time limits: Slurm sends the job SIGUSR2 (submitit's `signal_delay_s` before the limit, or on
preemption). `RunJob` forwards it to the training in progress (`runs.Interrupts.request`): the engine saves its
position inside the epoch and stops after the current step, then submitit's own handler calls `RunJob.checkpoint`
and requeues the job, which resumes from that checkpoint. A notice that comes outside training (during an
evaluation) requeues at once; the evaluation is redone. `executor="local"` is submitit's local executor: the same
jobs as real subprocesses of this machine (a requeue restarts the job's process), for tests and single machines.

The table is written when the last job has ended, and only if every job succeeded; the same command again reuses
finished runs and resumes stopped ones, as without `--executor`.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from vadlab.errors import ConfigError, Interrupted, VadlabError
from vadlab.reproduce.plan import Job

EXECUTORS = ("slurm", "local")
JOBS_FOLDER = ".submitit"  # RUNS/<spec>/.submitit/: submitit's pickles and each job's logs (a row id never starts
#                            with a dot, so it cannot meet a row's folder)


@dataclass(frozen=True)
class ClusterOptions:
    """What each job asks of the cluster. `max_jobs`: jobs submitted at once (None: all; the local executor's
    default is 1, the machine being shared by every job)."""

    executor: str = "slurm"
    partition: str | None = None
    gpus: int = 0
    time_min: int = 240
    mem_gb: int | None = None
    cpus: int | None = None
    max_jobs: int | None = None
    poll_s: float = 5.0

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise ConfigError(f"--executor {self.executor!r}: must be one of {', '.join(EXECUTORS)}")
        for name, low in (("gpus", 0), ("time_min", 1), ("mem_gb", 1), ("cpus", 1), ("max_jobs", 1)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < low):
                raise ConfigError(f"--{name.replace('_min', '').replace('_gb', '').replace('_', '-')} {value!r}: "
                                  f"must be an integer >= {low}")

    def parameters(self, name: str) -> dict:
        """submitit `AutoExecutor.update_parameters` keywords (the `slurm_` ones are ignored by the local one)."""
        params = {"name": name, "timeout_min": self.time_min, "gpus_per_node": self.gpus, "tasks_per_node": 1,
                  "nodes": 1}
        if self.mem_gb is not None:
            params["mem_gb"] = self.mem_gb
        if self.cpus is not None:
            params["cpus_per_task"] = self.cpus
        if self.partition is not None:
            params["slurm_partition"] = self.partition
        return params


def _submitit():
    try:
        import submitit
    except ModuleNotFoundError:
        raise ConfigError("--executor needs submitit: pip install 'vadlab[cluster]' (or pip install submitit)") \
            from None
    return submitit


class RunJob:
    """What each submitit job runs: `workers.execute` on each payload in order (a run, then its re-scorings).
    Checkpointable: on submitit's preemption/time-limit signal the training in progress saves its position and the job
    is requeued with the same payloads, which resume from the run folder's checkpoint."""

    def __call__(self, payloads: list[dict]) -> dict:
        """{"done": the folders run, "error": None or the message of the VadlabError that stopped the job (a bad
        input, or SIGTERM/SIGINT, e.g. `scancel`, which stops the training with a checkpoint)}."""
        from vadlab import runs
        from vadlab.reproduce.workers import execute

        submitit = _submitit()
        notice = getattr(signal, "SIG" + submitit.JobEnvironment.USR_SIG)
        requeue = signal.getsignal(notice)  # submitit's handler: calls self.checkpoint, then requeues and exits
        received: list[int] = []

        def on_notice(signum, frame):
            received.append(signum)
            if runs.Interrupts.active is not None:  # training: stop after this step with a checkpoint
                runs.Interrupts.active.request(signum)
            elif callable(requeue):  # evaluating or between runs: requeue now, the evaluation is redone
                requeue(signum, frame)

        signal.signal(notice, on_notice)
        done: list[str] = []
        try:
            for payload in payloads:
                try:
                    execute(payload, device="auto", progress=False)
                except Interrupted as exc:
                    if received and callable(requeue):
                        requeue(received[0], None)  # exits the process (SystemExit) once requeued
                    return {"done": done, "error": str(exc)}
                except VadlabError as exc:
                    return {"done": done, "error": str(exc)}
                done.append(payload["folder"])
                if received and callable(requeue):  # the notice came as a training ended: requeue before the next
                    requeue(received[0], None)
        finally:
            signal.signal(notice, requeue)
        return {"done": done, "error": None}

    def checkpoint(self, payloads: list[dict]):
        """submitit's hook on preemption: the same payloads again; the runs resume from their own checkpoints."""
        return _submitit().helpers.DelayedSubmission(RunJob(), payloads)


def groups(todo: list[Job]) -> list[list[Job]]:
    """The jobs to submit: each trained run with the re-scorings of its folder after it; a re-scoring whose source
    is not trained in this command goes alone (or with the other re-scorings of that folder)."""
    out: dict[Path, list[Job]] = {}
    for job in todo:
        if not job.row.scored_from:
            out.setdefault(job.folder, []).insert(0, job)
    for job in todo:
        if job.row.scored_from:
            out.setdefault(job.folder, []).append(job)
    return list(out.values())


def run_jobs(todo: list[Job], preset: str, options: ClusterOptions, folder: Path, spec_name: str, bar, log) -> None:
    """Submit `todo` (grouped by run folder, at most `options.max_jobs` at once) and wait for every job to end.
    Raises VadlabError naming the failed runs and their logs (the others are kept); SIGINT while waiting cancels the
    local executor's jobs (each saves its checkpoint) and leaves cluster jobs running, naming them."""
    from vadlab.reproduce.workers import _payload, _start_message

    submitit = _submitit()
    executor = submitit.AutoExecutor(folder=folder, cluster=options.executor)
    executor.update_parameters(**options.parameters(f"vadlab-{spec_name}"))
    limit = options.max_jobs if options.max_jobs is not None else (1 if options.executor == "local" else None)
    pending, running, failed = groups(todo), [], []
    try:
        while pending or running:
            while pending and (limit is None or len(running) < limit):
                group = pending.pop(0)
                job = executor.submit(RunJob(), [_payload(j, preset) for j in group])
                for j in group:
                    log(f"{_start_message(j)} [{options.executor} job {job.job_id}]")
                running.append((job, group))
            time.sleep(options.poll_s)
            for job, group in list(running):
                if not job.done():
                    continue
                running.remove((job, group))
                bar.update(len(group))
                why = _failure(job, submitit)
                if why:
                    failed.append(f"{', '.join(j.name for j in group)} (job {job.job_id}: {why}; its log: "
                                  f"{job.paths.stderr})")
    except KeyboardInterrupt:
        ids = [job.job_id for job, _ in running]
        if options.executor == "local":
            for job, _ in running:
                job.cancel(check=False)
            raise Interrupted(f"SIGINT: cancelled {len(ids)} local job(s); run the same command again to resume",
                              signal.SIGINT) from None
        raise Interrupted(f"SIGINT: stopped waiting; {len(ids)} job(s) still run on the cluster ({', '.join(ids)}; "
                          f"scancel them to stop them). Run the same command again once they end: finished runs are "
                          "reused", signal.SIGINT) from None
    if failed:
        raise VadlabError(f"runs failed: {'; '.join(failed)}; the others are kept. Run the same command again to "
                          "resume them from their checkpoints")


def _failure(job, submitit) -> str | None:
    """Why a finished job failed, in a few words, or None."""
    error = job.exception()
    if isinstance(error, submitit.core.utils.FailedJobError):
        return "it raised an error, see the traceback in its log"
    if error is not None:
        return "it ended without a result (killed, or its node lost)"
    return job.result()["error"]


def jobs_folder(runs: str | os.PathLike, spec_name: str) -> Path:
    return Path(runs) / spec_name / JOBS_FOLDER / "%j"
