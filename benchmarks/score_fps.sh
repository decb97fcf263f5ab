#!/usr/bin/env bash
# `vadlab score` frames per second of every method at its `cpu` preset architecture (README "Scoring your own video").
# Each method is trained for one epoch on ped2-mini (the weights do not change the speed; STD two epochs, one of
# them the K-means stage, so the cluster scoring runs; DREAM on the ped2-mini fold with labelled anomalies), then
# scores one ped2-mini test video (a folder of frames) three ways: whole with the overlay MP4, whole without it,
# streamed with it. One method's training and scoring hold the CPU lock together (under 3 minutes each).
# usage: benchmarks/score_fps.sh [DATA] [FOLD] [OUT]    then: python benchmarks/score_report.py fps OUT
set -euo pipefail
DATA=${1:-data/ped2-mini}
FOLD=${2:-data/ped2-k3f0}
OUT=${3:-runs/score-fps}
VIDEO=$DATA/testing/frames/Test001
LOCK=${LOCK:-runs/cpu.lock}  # the CPU lock file (a shared machine's: LOCK=/path/to/cpu.lock)
mkdir -p "$(dirname "$LOCK")"
VADLAB=${VADLAB:-.venv/bin/vadlab}
mkdir -p "$OUT"
for method in mnad_pred mnad_recon dream dream_convlstm maam std; do
  data=$DATA; extra="--epochs 1"
  case $method in
    dream|dream_convlstm) data=$FOLD ;;
    std) extra="--epochs 2 --set pretrain_epochs=1" ;;
  esac
  run=$OUT/$method
  steps=()
  if [ ! -f "$run/calibration.npz" ]; then
    rm -rf "$run"
    steps+=("$VADLAB train $method --data $data --out $run --preset cpu $extra --quiet")
  fi
  for mode in video novideo stream; do
    [ -f "$run/fps-$mode/summary.json" ] && continue
    case $mode in video) flag="" ;; novideo) flag="--no-video" ;; stream) flag="--stream" ;; esac
    steps+=("$VADLAB score $run $VIDEO --out $run/fps-$mode $flag --quiet")
  done
  [ ${#steps[@]} -eq 0 ] && continue
  script=$(printf '%s && ' "${steps[@]}")
  flock "$LOCK" bash -c "set -x; ${script}true"
done
