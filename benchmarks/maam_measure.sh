#!/bin/sh
# The measurements of issue 9 ("Must show") for one dataset, at the cpu preset (see benchmarks/README.md).
#   benchmarks/maam_measure.sh ped2   |   benchmarks/maam_measure.sh synthetic
set -e
PY=.venv/bin/python
export VADLAB_CACHE=${VADLAB_CACHE:-$PWD/data/cache}
mkdir -p reports/maam
case "$1" in
ped2)
  $PY benchmarks/bench_flow.py data/ped2-mini --size 64x96 | tee reports/maam/bench_flow.txt
  $PY benchmarks/bench_maam_memory.py --threads 2 | tee reports/maam/bench_maam_memory.txt
  $PY benchmarks/maam_study.py run data/ped2-mini runs/maam/ped2 --seeds 0 1 2
  $PY benchmarks/maam_study.py run data/ped2-mini runs/maam/ped2 --seeds 0 --ablation no_latent
  $PY benchmarks/maam_study.py run data/ped2-mini runs/maam/ped2 --seeds 0 --set flow_method=farneback
  ;;
synthetic)
  $PY benchmarks/maam_study.py run data/synthetic-default runs/maam/synthetic --seeds 0 1 2
  $PY benchmarks/maam_study.py run data/synthetic-default runs/maam/synthetic --seeds 0 --ablation no_latent
  ;;
esac
