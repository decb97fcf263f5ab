"""`python -m vadlab.reproduce JOB_JSON [--device D]`: one job of the worker pool (`workers._worker`)."""

import sys

from vadlab.reproduce.workers import _worker

sys.exit(_worker(sys.argv[1:]))
