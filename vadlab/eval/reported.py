"""The frame-level AUCs the papers report on their datasets (full UCSD Ped2, CUHK Avenue, ShanghaiTech, trained on a
GPU at the papers' settings), printed beside ours in comparisons and always labelled as the papers' own numbers:
vadlab has not reproduced them. A method class may carry its own as a class attribute `reported` (same shape:
{"source": ..., "ped2": AUC, "avenue": AUC, "shanghaitech": AUC}); else the table below is used."""

from __future__ import annotations

DATASETS = ("ped2", "avenue", "shanghaitech")

PAPER_AUC: dict[str, dict] = {
    "mnad_pred": {"source": "Park et al. CVPR 2020, Table 1 (Ours-P w/ Mem.)", "ped2": 0.970, "avenue": 0.885,
                  "shanghaitech": 0.705},
    "mnad_recon": {"source": "Park et al. CVPR 2020, Table 1 (Ours-R w/ Mem.)", "ped2": 0.902, "avenue": 0.828,
                   "shanghaitech": 0.698},
    "dream": {"source": "Guo et al. (DREAM), Table II (DREAM-UNet)", "ped2": 0.978, "avenue": 0.912,
              "shanghaitech": 0.727},
    "dream_convlstm": {"source": "Guo et al. (DREAM), Table II (DREAM-ConvLSTM)", "ped2": 0.985, "avenue": 0.936,
                       "shanghaitech": 0.795},
    "maam": {"source": "Wang et al. Pattern Recognition 2023, Table 2 (Ours)", "ped2": 0.977, "avenue": 0.909,
             "shanghaitech": 0.713},
    "std": {"source": "Chang et al. Pattern Recognition 2021, Table 1 (STD, K 32, T 5)", "ped2": 0.967,
            "avenue": 0.871, "shanghaitech": 0.737},
}


def reported(name: str) -> dict | None:
    """The paper's reported AUCs of a registered method (its class attribute `reported`, else `PAPER_AUC`), or
    None when there is none (the test plugin, your own method)."""
    from vadlab.registry import get_spec, list_methods

    if name in list_methods():
        own = getattr(get_spec(name).cls, "reported", None)
        if own:
            return dict(own)
    return dict(PAPER_AUC[name]) if name in PAPER_AUC else None
