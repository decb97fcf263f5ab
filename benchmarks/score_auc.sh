#!/usr/bin/env bash
# `vadlab score` against the labels (README "Scoring your own video"):
# 1. a trained MNAD-P `cpu` run (RUN, made before calibration existed: `score` calibrates it once) scores every
#    ped2-mini test video as a folder of frames; the calibrated AUC beside `vadlab evaluate`'s of the same run;
# 2. MNAD-P at the `cpu` preset trained 4 epochs on synthetic `default` scores a synthetic test video written to an
#    MP4 with OpenCV.
# Every heavy command takes the CPU lock on its own.
# usage: benchmarks/score_auc.sh [RUN] [DATA] [SYNTH] [OUT]
set -euo pipefail
RUN=${1:-runs/p128}
DATA=${2:-data/ped2-mini}
SYNTH=${3:-data/synthetic-default}
OUT=${4:-runs/score-synth}
LOCK=${LOCK:-runs/cpu.lock}  # the CPU lock file (a shared machine's: LOCK=/path/to/cpu.lock)
mkdir -p "$(dirname "$LOCK")"
VADLAB=${VADLAB:-.venv/bin/vadlab}
PY=${PY:-.venv/bin/python}

flock "$LOCK" "$VADLAB" evaluate "$RUN" --data "$DATA" --quiet
for video in "$DATA"/testing/frames/*/; do
  name=$(basename "$video")
  flock "$LOCK" "$VADLAB" score "$RUN" "$video" --out "$RUN/score-test/$name" --quiet
done
"$PY" benchmarks/score_report.py auc "$RUN" "$DATA" "$RUN/score-test"

if [ ! -f "$OUT/calibration.npz" ]; then
  rm -rf "$OUT"
  flock "$LOCK" "$VADLAB" train mnad_pred --data "$SYNTH" --out "$OUT" --preset cpu --epochs 4 --quiet
fi
VIDEO=$("$PY" - "$SYNTH" "$OUT/test.mp4" <<'PYEOF'
import sys

import cv2

from vadlab.data.layout import load_layout, read_image

video = load_layout(sys.argv[1]).testing[0]
first = read_image(video.frames[0], 3)
writer = cv2.VideoWriter(sys.argv[2], cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (first.shape[1], first.shape[0]))
for path in video.frames:
    writer.write(cv2.cvtColor(read_image(path, 3), cv2.COLOR_RGB2BGR))
writer.release()
print(video.name)
PYEOF
)
flock "$LOCK" "$VADLAB" score "$OUT" "$OUT/test.mp4" --out "$OUT/score-mp4" --quiet
flock "$LOCK" "$VADLAB" score "$OUT" "$OUT/test.mp4" --out "$OUT/score-mp4-stream" --stream --quiet
"$PY" - "$SYNTH" "$VIDEO" "$OUT/score-mp4/scores.csv" <<'PYEOF'
import sys

from vadlab.data.layout import load_layout
from vadlab.eval.metrics import frame_auc
from vadlab.score import read_scores

labels = {sys.argv[2]: load_layout(sys.argv[1]).video(sys.argv[2]).labels}
scores = read_scores(sys.argv[3])
print(f"synthetic {sys.argv[2]} as MP4: micro AUC calibrated {frame_auc({sys.argv[2]: scores['calibrated']}, labels):.4f}"
      f", per-video min-max {frame_auc({sys.argv[2]: scores['score_minmax']}, labels):.4f}")
PYEOF
