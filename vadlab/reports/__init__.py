"""Reports: metrics and figures with provenance, the demo job, and papermill runs of the notebooks.

One job per module: `provenance` (versions, git state, data, metrics beside them), `notebooks` (papermill runs and
report folders), `comparisons` (runs and methods side by side, the papers' numbers), `index` (the HTML index),
`demo` (`vadlab demo`)."""

# the public names of the submodules, so `vadlab.reports.NAME` keeps working
from vadlab.reports.comparisons import compare_methods as compare_methods
from vadlab.reports.comparisons import compare_runs as compare_runs
from vadlab.reports.comparisons import comparison_table as comparison_table
from vadlab.reports.comparisons import per_type_table as per_type_table
from vadlab.reports.comparisons import reported_table as reported_table
from vadlab.reports.comparisons import score_curves as score_curves
from vadlab.reports.demo import demo as demo
from vadlab.reports.index import SMOKE_NOTE as SMOKE_NOTE
from vadlab.reports.index import smoke_banner as smoke_banner
from vadlab.reports.index import write_index as write_index
from vadlab.reports.notebooks import NOTEBOOKS as NOTEBOOKS
from vadlab.reports.notebooks import _defaults as _defaults
from vadlab.reports.notebooks import build_report as build_report
from vadlab.reports.notebooks import read_notebook_scraps as read_notebook_scraps
from vadlab.reports.notebooks import report_notebooks as report_notebooks
from vadlab.reports.notebooks import run_notebook as run_notebook
from vadlab.reports.provenance import PACKAGES as PACKAGES
from vadlab.reports.provenance import baseline_report as baseline_report
from vadlab.reports.provenance import data_provenance as data_provenance
from vadlab.reports.provenance import git_state as git_state
from vadlab.reports.provenance import package_versions as package_versions
from vadlab.reports.provenance import provenance as provenance
from vadlab.reports.provenance import write_metrics as write_metrics
