"""Errors that carry a message a user can act on. The CLI turns them into exit status 2."""


class VadlabError(Exception):
    """Base class: bad input named by file, key or value."""


class DataError(VadlabError, ValueError):
    """A dataset on disk is malformed: the message names the file or folder."""


class ConfigError(VadlabError, KeyError):
    """An unknown method, preset or config key: the message names it and the valid choices."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
