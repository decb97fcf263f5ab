#!/usr/bin/env bash
# DREAM's "Must show" measurements (issue 8), one training at a time under a CPU lock (default `flock runs/cpu.lock`;
# a shared machine's lock: LOCK="flock /path/to/cpu.lock"; LOCK= runs without it, for a caller that holds the lock
# around a whole seed: `flock /path/to/cpu.lock env LOCK= benchmarks/dream_study.sh OUT 1`).
# Usage: benchmarks/dream_study.sh OUT [SEEDS...]   (from the repository root, with data/synthetic-default and
#        data/ped2-mini made by `vadlab data synth` / `vadlab data import`; about 8 minutes per seed on 2 cores)
# Then:  vadlab compare synthetic=OUT/synth/seed0,OUT/synth/seed1,OUT/synth/seed2 --out reports/dream/table3
# Every run: 64x64 grey frames, 5 epochs (ped2: 8), the `cpu` preset's widths, C, M, batch and lr; MNAD-P at the
# same size and epochs with its test-time update off (Mem-Guided* of the paper) and the public code's decoder, which is
# DREAM's generator (issue 15).
set -euo pipefail
out=${1:?output folder}; shift
seeds=${*:-0 1 2}
V=.venv/bin/vadlab
LOCK=${LOCK-flock runs/cpu.lock}
mkdir -p runs
SET=(--set image_size=64 --epochs 5)
train() { # method dataset folder seed [args...]
  local m=$1 d=$2 o=$3 s=$4; shift 4
  [ -f "$o/metrics.json" ] && return 0
  rm -rf "$o"
  $LOCK $V train "$m" --data "$d" --out "$o" --preset cpu --seed "$s" --evaluate --quiet "$@"
}
[ -d data/synth-pool-sal ] || $V data split pool data/synthetic-default data/synth-pool-sal --types speed,appearance,location
[ -d data/ped2-k3f0 ] || $V data split kfold data/ped2-mini data/ped2-k3f0 --k 3 --fold 0
for s in $seeds; do
  for row in dream unet_mem unet_disc unet_mem_disc; do
    abl=(); [ "$row" = dream ] || abl=(--ablation "$row")
    train dream data/synthetic-default "$out/synth/seed$s/$row" "$s" "${SET[@]}" "${abl[@]}"
  done
  train mnad_pred data/synthetic-default "$out/synth/seed$s/mnad_pred" "$s" "${SET[@]}" --set test_update=false --set decoder=reference
  train dream data/synth-pool-sal "$out/unseen/seed$s/dream_pool_sal" "$s" "${SET[@]}"
  if [ "$s" = 0 ]; then
    train dream data/ped2-k3f0 "$out/ped2-k3f0/seed$s/dream" "$s" --set image_size=64 --epochs 8
    train mnad_pred data/ped2-k3f0 "$out/ped2-k3f0/seed$s/mnad_pred" "$s" --set image_size=64 --epochs 8 \
      --set test_update=false --set decoder=reference
  fi
done
