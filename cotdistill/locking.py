"""One writer per run directory: an advisory lock (``fcntl.flock``) on a ``.lock`` file in the folder.

A second ``cotdistill`` process on the same run directory (or the same teacher folder) refuses at once with
the pid of the one holding it, instead of making and paying for the same requests twice. The lock is the
kernel's: it is released when the holder exits, even on ``kill -9``, so a stale ``.lock`` file never blocks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from cotdistill.errors import RunError


class RunLocked(RunError):
    """Another process is writing the same run directory."""

    exit_code = 2


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, what: str = "this run directory") -> Iterator[None]:
    """Hold ``folder/.lock`` for the block, or raise ``RunLocked`` naming the holder's pid."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks, run unguarded
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise RunLocked(
                f"{folder.resolve()} is being written by another cotdistill process (pid {holder}); "
                f"two writers would make {what}'s requests twice: wait for it to finish, or use another "
                "run name (name=...)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
