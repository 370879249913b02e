"""What every reader shares: the input-error type, text and line reading, and image resolution."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cotdistill.errors import InputError
from cotdistill.images import image_problem
from cotdistill.paths import inside

logger = logging.getLogger(__name__)


class DataFormatError(InputError):
    """A dataset file is not in the format its reader expects. The message names file, line and expectation."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def decode_text(data: bytes, path: str | os.PathLike) -> str:
    """A file's bytes as UTF-8 text, without a leading byte-order mark (Windows tools write one).

    Every text file cotdistill reads goes through here, so a file in another encoding is one
    DataFormatError naming the file, the line and the byte offset of the first byte that is not UTF-8.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataFormatError(
            path,
            line,
            f"invalid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start}); expected UTF-8 text",
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file's content (see ``decode_text``)."""
    return decode_text(Path(path).read_bytes(), path)


def read_lines(path: str | os.PathLike) -> list[str]:
    """Read a UTF-8 text file as lines, without their LF or CRLF ends.

    Only ``\\n`` separates lines: ``str.splitlines`` would also split inside tweets at U+0085, U+2028 and
    the like. A file that ends with a newline yields a last empty line, as a blank separator would.
    """
    lines = read_text(path).split("\n")
    return [line[:-1] if line.endswith("\r") else line for line in lines]


class ImageResolver:
    """Maps a dataset's image names to files inside one image directory.

    Names that would leave the directory (absolute paths, ``..``) are input errors. A name whose file is
    absent is counted as missing, never an error: most distributions ship images separately. A file that
    is not a regular file (a FIFO, a device, a folder) or is over ``cotdistill.images.MAX_IMAGE_BYTES`` is
    refused: counted, logged, and the post is read without it.
    """

    def __init__(self, image_dir: str | os.PathLike | None):
        self.root = os.path.realpath(image_dir) if image_dir is not None else None
        self.found = 0
        self.missing = 0
        self.refused = 0  # present but not a regular file, or over the size cap (read without the image)
        self._listing: set[str] | None = None
        if self.root is not None and os.path.isdir(self.root):
            self._listing = set(os.listdir(self.root))

    def resolve(self, name: str, path: str | os.PathLike, line: int | None) -> str | None:
        """The image file's path, or None when it is absent. Raises DataFormatError for an unsafe name."""
        if not name or "\x00" in name or os.path.isabs(name) or name.startswith(("/", "\\")):
            raise DataFormatError(path, line, f"image name {name!r} must be a relative file name")
        parts = name.replace("\\", "/").split("/")
        if ".." in parts:
            raise DataFormatError(path, line, f"image name {name!r} points outside the image directory")
        if self._listing is None:
            self.missing += 1
            return None
        assert self.root is not None
        full = os.path.join(self.root, *parts)
        exists = name in self._listing if len(parts) == 1 else os.path.isfile(full)
        if exists and (len(parts) > 1 or os.path.islink(full)):
            # A link (the file or any folder on its way) may point anywhere: follow it only when the file
            # it reaches stays inside the image directory. Plain one-part names need no resolving.
            exists = inside(self.root, full)
        if not exists:
            self.missing += 1
            return None
        problem = image_problem(
            full
        )  # a FIFO or a device would hang whoever reads it; a huge file fills memory
        if problem:
            self.refused += 1
            if self.refused <= 5:
                logger.warning("image %s refused: %s; the post is read without it", full, problem)
            return None
        self.found += 1
        return full


@dataclass(slots=True)
class ReadReport:
    """What a reader noticed about the files it read, beyond the examples."""

    files: list[str] = field(default_factory=list)
    image_dir: str | None = None
    images_found: int = 0
    images_missing: int = 0
    images_refused: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        logger.info(message)
        self.notes.append(message)
