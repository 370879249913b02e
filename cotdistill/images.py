"""Reading image files safely: only regular files, never more than a size cap.

A post's image path may name anything the image folder holds: a FIFO or a device would block a plain
``open().read()`` forever, and a huge file would fill memory. Every place that reads an image's bytes goes
through :func:`read_image_bytes`, which opens without blocking, checks that the opened file is a regular
file and refuses one larger than ``MAX_IMAGE_BYTES``. :func:`image_problem` says the same without opening
(the readers use it to refuse such an image up front, counted and logged).
"""

from __future__ import annotations

import io
import os
import stat

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # what OpenAI-compatible servers accept for one image, too


class ImageFileError(OSError):
    """An image path that is not a regular file, or a file over the size cap."""


def _problem(st: os.stat_result, max_bytes: int) -> str | None:
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size > max_bytes:
        return f"{st.st_size:,} bytes, over the {max_bytes:,}-byte cap"
    return None


def image_problem(path: str | os.PathLike, max_bytes: int = MAX_IMAGE_BYTES) -> str | None:
    """Why the image at ``path`` cannot be read (not a regular file, over the cap, unreadable), or None."""
    try:
        return _problem(os.stat(path), max_bytes)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"


def read_image_bytes(path: str | os.PathLike, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of the image file at ``path``. Raises ImageFileError for a FIFO, device, folder or socket
    (opened without blocking, so a FIFO with no writer cannot hang the caller) or a file over ``max_bytes``,
    OSError when it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        problem = _problem(os.fstat(fd), max_bytes)
        if problem:
            raise ImageFileError(f"image {os.fspath(path)}: {problem}")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew since the check
        raise ImageFileError(f"image {os.fspath(path)}: over the {max_bytes:,}-byte cap")
    return data


def open_image(path: str | os.PathLike, max_bytes: int = MAX_IMAGE_BYTES):
    """The image as an RGB ``PIL.Image``, read through :func:`read_image_bytes` (PIL's own decompression
    bomb check applies to its pixel count)."""
    from PIL import Image

    with Image.open(io.BytesIO(read_image_bytes(path, max_bytes))) as im:
        return im.convert("RGB")


def thumbnail_data_url(path: str | os.PathLike, px: int = 120) -> str | None:
    """The image as a small JPEG ``data:`` URL (at most ``px`` on its longer side), for pages that must hold
    their images; None when it cannot be read."""
    import base64

    try:
        image = open_image(path)
    except Exception:  # unreadable, refused, or anything PIL raises: the caller shows the name instead
        return None
    image.thumbnail((px, px))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
