#!/bin/sh
# The measurements of issue 9 ("Must show") at the cpu preset, most important first (see benchmarks/README.md).
# Runs that finished are skipped when it runs again.   benchmarks/maam_measure.sh
set -e
PY=.venv/bin/python
export VADLAB_CACHE=${VADLAB_CACHE:-$PWD/data/cache}
mkdir -p reports/maam
study() { $PY benchmarks/maam_study.py run "$@"; }
study data/ped2-mini runs/maam/ped2 --seeds 0 1 2
study data/synthetic-default runs/maam/synthetic --seeds 0
$PY benchmarks/bench_flow.py data/ped2-mini --size 64x96 | tee reports/maam/bench_flow.txt
$PY benchmarks/bench_maam_memory.py --threads 2 | tee reports/maam/bench_maam_memory.txt
study data/ped2-mini runs/maam/ped2 --seeds 0 --ablation no_latent
study data/ped2-mini runs/maam/ped2 --seeds 0 --set flow_method=farneback
study data/synthetic-default runs/maam/synthetic --seeds 1 2
study data/synthetic-default runs/maam/synthetic --seeds 0 --ablation no_latent
