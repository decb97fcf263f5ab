"""Provenance of every number: package versions, the git state, the data, written beside metrics.json (`write_metrics`,
`baseline_report`)."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from vadlab.data.layout import as_layout
from vadlab.engine import git_commit
from vadlab.eval.baselines import evaluate_frame_difference
from vadlab.io import write_json

PACKAGES = ("vadlab", "torch", "numpy", "scipy", "scikit-learn", "matplotlib", "plotly", "ipywidgets", "anywidget",
            "papermill", "scrapbook", "nbconvert", "opencv-python-headless", "jupyterlab")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a report depends on (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> dict:
    """{"commit": full hash or None, "dirty": tracked files changed since it (None outside a git checkout)}."""
    import subprocess

    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                text=True, timeout=10, cwd=here)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def data_provenance(root) -> dict:
    """A dataset root and a SHA-256 over its test labels (file names and contents, in order): two reports with the same
    checksum were scored against the same ground truth."""
    import hashlib

    root = Path(root)
    files = sorted((root / "testing" / "labels").glob("*.npy"))
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return {"root": str(root.resolve()), "label_files": len(files),
            "labels_sha256": digest.hexdigest() if files else None}


def provenance(**extra) -> dict:
    """Who made a report file, from what: command line, git commit and dirty flag, versions, time."""
    import torch

    git = git_state()
    return {"command": " ".join(sys.argv), "git_commit": git_commit(), "git": git, "python": platform.python_version(),
            "torch": torch.__version__, "host": platform.node(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            **extra}


def write_metrics(out: str | os.PathLike, report: dict, **prov) -> Path:
    """`metrics.json` and a sibling `provenance.json`, both written atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", report)
    write_json(out / "provenance.json", provenance(**prov))
    return out / "metrics.json"


def baseline_report(data, out, size: int = 64) -> dict:
    """Frame-difference baseline on a dataset's test split: metrics.json + provenance.json in `out`."""
    layout = as_layout(data)
    report = evaluate_frame_difference(layout, size)
    report["method"] = "frame_difference"
    write_metrics(out, report, data=str(layout.root), size=size)
    return report
