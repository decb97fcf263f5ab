#!/usr/bin/env bash
# Issue 27, item 3: every `cpu` preset trained on a Ped2-size training set (ped2-dev: all 16 training videos, 2,550
# frames; DREAM on its 3-fold segment split, fold 0) and evaluated on its test videos beside frame difference on the
# same frames, one after the other, each under the CPU lock (nothing else may train: the wall time is the point).
# Then, for issue 28, MNAD-P and MNAD-R without memory on the same data (seed 0).
# usage: benchmarks/cpu_budget_fullsize.sh [DATA] [FOLD] [OUT] [SEEDS]   then: python benchmarks/cpu_budget_report.py OUT
set -euo pipefail
DATA=${1:-data/ped2-dev}
FOLD=${2:-data/ped2-dev-k3f0}
OUT=${3:-runs/fullsize}
SEEDS=${4:-0}
LOCK=${LOCK:-runs/cpu.lock}  # the CPU lock file (a shared machine's: LOCK=/path/to/cpu.lock)
mkdir -p "$(dirname "$LOCK")" "$OUT"
VADLAB=${VADLAB:-.venv/bin/vadlab}
run() {  # NAME METHOD DATA [ARGS...]: train + evaluate once; the wall time of the whole command in NAME/wall.txt
  local name=$1 method=$2 data=$3; shift 3
  for seed in $SEEDS; do
    local dir=$OUT/seed$seed/$name
    [ -f "$dir/metrics.json" ] && continue
    rm -rf "$dir"; mkdir -p "$(dirname "$dir")"
    local t0; t0=$(date +%s.%N)
    flock "$LOCK" "$VADLAB" train "$method" --data "$data" --out "$dir" --preset cpu --seed "$seed" --evaluate \
      --quiet "$@"
    echo "$(date +%s.%N) - $t0" | bc > "$dir/wall.txt"
  done
}
run mnad_pred mnad_pred "$DATA"
run dream dream "$FOLD"
run dream_convlstm dream_convlstm "$FOLD"
run maam maam "$DATA"
run std std "$DATA"
run mnad_recon mnad_recon "$DATA"
run mnad_pred-no_memory mnad_pred "$DATA" --no-memory
run mnad_recon-no_memory mnad_recon "$DATA" --no-memory
