"""One rule for every path that comes from data or configs: it must stay inside the folder it is read from.

Image names in dataset files, template files in template folders and run names all go through ``inside``:
symlinks are resolved first, so neither ``..`` nor a link (at any depth) leads out of the folder.
"""

from __future__ import annotations

import os


def inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether ``path``, with every symlink resolved, lies in ``root`` (itself resolved)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    try:
        return os.path.commonpath([real_root, real]) == real_root and real != real_root
    except ValueError:  # different drives
        return False


def plain_name(name: str) -> bool:
    """A single path component: no separator, not ``.`` or ``..``, no NUL."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in ("/", "\\", "\x00"))
