"""Result files written whole or not at all.

A result file (metrics, a report, predictions, a stage log) is written to a temporary file beside it,
flushed and fsynced, then renamed over the target: a full disk, a kill or a crash mid-write leaves the old
file (or none) and a temporary file that nothing reads, never a half-written result that a rerun would
take for a finished one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` (after an fsync) when the block
    ends without an exception, removed when it raises."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # what a plain open() would have made, not mkstemp's 0600
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text or bytes) to ``path`` whole or not at all; the path."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)
    return Path(path)


def is_empty_leftover(path: str | os.PathLike) -> bool:
    """True for an empty file: what a write cut short before this module existed could leave; it holds
    nothing to keep, so it never blocks a rerun."""
    p = Path(path)
    return p.is_file() and p.stat().st_size == 0
