"""`vadlab reproduce TABLE`: re-run a paper's table from a declarative spec shipped in `vadlab/specs/TABLE.toml`.

A spec (TOML, read with `tomllib`) names the paper, its table and section, a dataset kind (`ped2`, `avenue`,
`shanghaitech` or `synthetic:<preset>`; `--data ROOT` gives the path), an optional few-anomaly `[split]` (DREAM's
fold protocol, `vadlab.data.splits.kfold_split`, each fold a replicate beside the seeds), the seeds, the metric (a
dotted key of `metrics.json`, default `micro_auc`) and its rows. A row is either trained (`method`, optional
`ablation` and `set` of config overrides on top of the preset) or scored from another row (`scored_from = "ID"`
with `score_set` test-time overrides and/or its own `metric`): it re-scores that row's trained runs
(`engine.evaluate_run(..., overrides=...)`), never trains. Each row carries the paper's number (`paper`, in
`paper_unit` "percent" or "fraction") and the spec says on what the paper measured it (`paper_on`).

Runs live in `RUNS/<spec>/<row>/seed<k>` (`fold<f>-seed<k>` with a split). Each run folder holds `reproduce.json`:
the resolved key of the run (method, preset, ablation, overrides, the full config, data, split and fold, seed) and
its SHA-256. A finished run (its epochs done, `metrics.json` there, same hash) is reused, an unfinished one resumes
from its checkpoint (`engine.fit(..., resume=True)`), and a run whose hash differs is refused, naming the row and
what changed. Time estimates come from the measured seconds per training step each method registers
(`register_method(step_seconds=...)`) times the steps of the preset's epochs on the given data.

One job per module: `spec` (the TOML schema and its checks), `plan` (jobs, their status, estimates), `workers`
(running jobs, the worker pool, `reproduce`), `tables` (the results table and its files); `python -m
vadlab.reproduce` runs one job of the pool.
"""

# the public names of the submodules, so `vadlab.reproduce.NAME` keeps working
from vadlab.reproduce.plan import KEY_FORMAT as KEY_FORMAT
from vadlab.reproduce.plan import RECORD as RECORD
from vadlab.reproduce.plan import Job as Job
from vadlab.reproduce.plan import default_data as default_data
from vadlab.reproduce.plan import describe_plan as describe_plan
from vadlab.reproduce.plan import estimate as estimate
from vadlab.reproduce.plan import plan as plan
from vadlab.reproduce.plan import step_seconds as step_seconds
from vadlab.reproduce.spec import DATA_DEFAULTS as DATA_DEFAULTS
from vadlab.reproduce.spec import SPEC_DIR as SPEC_DIR
from vadlab.reproduce.spec import Row as Row
from vadlab.reproduce.spec import Spec as Spec
from vadlab.reproduce.spec import list_specs as list_specs
from vadlab.reproduce.spec import load_spec as load_spec
from vadlab.reproduce.spec import spec_file as spec_file
from vadlab.reproduce.tables import summarise as summarise
from vadlab.reproduce.tables import write_table as write_table
from vadlab.reproduce.workers import execute as execute
from vadlab.reproduce.workers import next_job as next_job
from vadlab.reproduce.workers import parse_devices as parse_devices
from vadlab.reproduce.workers import reproduce as reproduce
