"""Errors that carry a message a user can act on. The CLI turns them into exit status 2 (`exit_status`)."""


class VadlabError(Exception):
    """Base class: bad input named by file, key or value."""

    exit_status = 2  # what `vadlab` exits with


class DataError(VadlabError, ValueError):
    """A dataset on disk is malformed: the message names the file or folder."""


class ConfigError(VadlabError, KeyError):
    """An unknown method, preset or config key: the message names it and the valid choices."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DivergenceError(VadlabError):
    """A loss term went NaN or Inf: training stopped before that step's optimiser step; the message names the epoch,
    the step and the terms, and the last good checkpoint is kept untouched."""


class Interrupted(VadlabError):
    """SIGINT or SIGTERM stopped training after a step, with a checkpoint to resume from (`--resume`).

    The CLI exits 128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + int(signum)


class VadlabWarning(UserWarning):
    """Something a user should look at that does not stop the run (a stale lock taken over, a suspicious loss)."""


def no_checkpoint(run) -> DataError:
    """The error of a run folder without a checkpoint, one message for the engine and the CLI's early check."""
    from pathlib import Path

    return DataError(f"{Path(run) / 'checkpoint.pt'}: no checkpoint (is {run} a run folder written by "
                     "`vadlab train`?)")
