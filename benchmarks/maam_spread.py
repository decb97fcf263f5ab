#!/usr/bin/env python
"""MAAM-Net (issue 22): why a fusion follows one branch. Per evaluated run: each branch's raw per-frame maximum on
the test frames in units of its spread on the normal training frames (scoring_fit.json), on normal and abnormal
frames, its spread within a test video, and the AUCs.

    python benchmarks/maam_spread.py RUN [RUN ...]
"""
import json
import sys
from pathlib import Path

import numpy as np

for run in map(Path, sys.argv[1:]):
    fit = json.loads((run / "scoring_fit.json").read_text())
    z = np.load(run / "scores.npz")
    m = json.loads((run / "metrics.json").read_text())
    vids = sorted({k.split("/")[1] for k in z.files if k.startswith("label/")})
    row = {}
    for b in ("app", "mot"):
        sd, mu = fit[b]["frame_max_std"], fit[b]["frame_max_mean"]
        test = np.concatenate([z[f"{b}/{v}"] for v in vids])
        lab = np.concatenate([z[f"label/{v}"] for v in vids])
        ok = np.isfinite(test)
        zt = (test[ok] - mu) / sd
        within = np.mean([np.nanstd(z[f"{b}/{v}"]) / sd for v in vids])  # per-video spread in training sigmas
        row[b] = (f"test mean {zt.mean():+.1f} sd, normal {zt[lab[ok] == 0].mean():+.1f}, abnormal "
                  f"{zt[lab[ok] == 1].mean():+.1f}, within-video spread {within:.2f} sd")
    psa = m.get("per_signal_auc", {})
    print(f"{run}: App {psa.get('app', float('nan')):.3f} Mot {psa.get('mot', float('nan')):.3f} "
          f"fused {m['micro_auc']:.3f} fd {m['baseline_frame_difference']['micro_auc']:.3f}")
    for b in ("app", "mot"):
        print(f"   {b}: {row[b]}")
