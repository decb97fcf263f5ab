"""Progress bars: tqdm's auto form where a person watches (a widget in Jupyter, text at a terminal), none where
nobody does: a headless report run (`vadlab report` and the demo set `$VADLAB_HEADLESS`, so an executed notebook
keeps no stale "0%" bar) and a command whose stderr is not a terminal (a log file, a pipe)."""

from __future__ import annotations

import os
import sys

HEADLESS_ENV = "VADLAB_HEADLESS"


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and hasattr(shell, "kernel")


def shown() -> bool:
    """Whether a bar here would be seen: not headless, and in a Jupyter kernel or at a terminal."""
    if os.environ.get(HEADLESS_ENV) == "1":
        return False
    if _in_kernel():
        return True
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def tqdm(*args, disable: bool = False, **kwargs):
    """`tqdm.auto.tqdm`, disabled where nobody would see it (`shown`)."""
    from tqdm.auto import tqdm as auto

    return auto(*args, disable=disable or not shown(), **kwargs)


def _write(message: str, file=None, end: str = "\n", nolock: bool = False) -> None:
    """`tqdm.write`: a message printed above any bars that are showing, not through them."""
    from tqdm.auto import tqdm as auto

    auto.write(message, file=file, end=end, nolock=nolock)


tqdm.write = _write  # callers use `tqdm.write` as they would tqdm's class method
