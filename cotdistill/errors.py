"""The one error family of cotdistill: every error it raises on purpose derives from ``CotdistillError``.

The command line prints such an error as one line and exits with its ``exit_code`` (2: the input or the
command cannot be used as given; 1: the run itself failed). Anything else is a bug or the machine's
trouble: one line too, and ``-v`` shows its traceback.
"""

from __future__ import annotations


class CotdistillError(Exception):
    """Base of every deliberate cotdistill error; the message names what went wrong and the fix."""

    exit_code = 2


class InputError(CotdistillError, ValueError):
    """A file, setting, record or argument that cannot be used as given."""


class MissingPathError(CotdistillError, FileNotFoundError):
    """A file or folder the command needs is not there."""


class PathExistsError(CotdistillError, FileExistsError):
    """A file or folder the command would write already holds something that must not be lost."""


class RunError(CotdistillError, RuntimeError):
    """The run could not go on (the teacher is gone, the disk is full, every request failed)."""

    exit_code = 1


class Interrupted(RunError):
    """Stopped on request (SIGINT, SIGTERM) after saving what can be resumed; the message says how."""

    exit_code = 130


__all__ = ["CotdistillError", "InputError", "Interrupted", "MissingPathError", "PathExistsError", "RunError"]
