"""Datasets: the common layout, clips, the synthetic generator, importers, optical flow."""

from vadlab.data.layout import Layout, LayoutWriter, Video, load_layout
from vadlab.errors import DataError

__all__ = ["Layout", "Video", "load_layout", "LayoutWriter", "prepare"]


def prepare(root=None, synth_preset: str = "default", seed: int = 0):
    """The dataset a notebook works on: `root` if given (a common-layout root), else the synthetic dataset of
    `synth_preset`, generated once into `$VADLAB_DATA` (default `~/.cache/vadlab/datasets`)."""
    import os
    from pathlib import Path

    if root:
        return load_layout(root)
    from vadlab.data.synthetic import synthesize

    home = Path(os.environ.get("VADLAB_DATA", Path.home() / ".cache" / "vadlab" / "datasets")).expanduser()
    target = home / f"synthetic-{synth_preset}-s{seed}"
    if target.exists():
        return load_layout(target)
    try:
        return synthesize(target, synth_preset, seed=seed, progress=False)
    except (OSError, DataError):  # another process (a parallel test worker) finished the same dataset first
        if target.exists():
            return load_layout(target)
        raise
