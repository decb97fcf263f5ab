"""Atomic file writes: everything vadlab writes (checkpoints, metrics, scores, figures, caches, executed
notebooks) goes to a temp file beside its target and is moved into place by `os.replace`, so an interrupted run
never leaves a half-written file."""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

# `.{stem}.{pid}.tmp{suffix}`: the temp file `atomic_path` writes beside its target, named after the writing process
_TEMP_NAME = re.compile(r"\.(?P<stem>.+)\.(?P<pid>\d+)\.tmp(?P<suffix>\.[^.]*)?")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path (same folder, same suffix) to write to; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # see _TEMP_NAME
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def temp_file_owner(path: str | os.PathLike) -> tuple[str, int] | None:
    """(target file name, writer's pid) of a temp file `atomic_path` made, or None for any other file: a writer killed
    mid-write (SIGKILL) leaves it behind, and `vadlab.runs` removes it once that pid is gone."""
    match = _TEMP_NAME.fullmatch(Path(path).name)
    if match is None:
        return None
    return match["stem"] + (match["suffix"] or ""), int(match["pid"])


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """`torch.save` through `atomic_path` (checkpoints)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj)}")


def write_json(path: str | os.PathLike, obj) -> None:
    """Pretty, sorted JSON, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
