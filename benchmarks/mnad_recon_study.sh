#!/usr/bin/env bash
# Why MNAD-R does not beat the frame-difference baseline at the cpu preset: the variants measured on 2026-11-23.
# Usage: benchmarks/mnad_recon_study.sh DATA OUT [SEEDS...]   (about 40 minutes per seed on 2 cores)
# Then:  vadlab compare ped2=OUT/seed0,OUT/seed1,OUT/seed2 --out reports/mnadr-study
set -euo pipefail
data=${1:?dataset root}; out=${2:?output folder}; shift 2
seeds=${*:-0 1 2}
for s in $seeds; do
  run() { name=$1; shift; vadlab train mnad_recon --data "$data" --out "$out/seed$s/$name" --preset cpu --seed "$s" \
            --evaluate --quiet "$@"; }
  run cpu                                                  # the preset: Eq. 8-12 as written, 8 epochs, 64x64
  run cpu_nomem --no-memory                                # the paper's w/o Mem. ablation
  run epochs24 --epochs 24                                 # 3x longer (about 4 minutes)
  run loss_mean --set loss_form=mean                       # the public code's loss scale
  run motion16 --set frames_in=16 --set target_index=8     # Sec. 4.3: 16 frames in, the 9th reconstructed
  run size128 --set image_size=128                         # 4x the pixels
  run size128_e32 --set image_size=128 --epochs 32         # toward the paper's scale (about 15 minutes)
done
