"""Posts that never had gold labels, for the teacher to read and the student to learn from.

Two formats, told apart by the first non-blank character of the file:

- JSONL, one post a line: ``{"text": "...", "id": "...", "tokens": [...], "image": "name.jpg"}``; only
  ``text`` is required (``tokens`` default to the text split on whitespace, ``id`` to ``unlabelled-<line>``).
- CoNLL without the tag column: an ``IMGID:<id>`` line, then one token a line, a blank line between posts
  (the Twitter files with their tags removed), read by the Twitter reader's own ``iter_blocks``. The image
  is ``<id>.jpg``.

Every example has an empty gold answer. MRE posts need a head and a tail to relate, so they are not read
from these files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cotdistill.readers.common import DataFormatError, ImageResolver, ReadReport, read_lines
from cotdistill.readers.conll import iter_blocks
from cotdistill.records import Example
from cotdistill.tasks import get_task

UNLABELLED = "unlabelled"  # the split name the run gives these posts


def _from_json(path, lineno: int, line: str, task: str, images: ImageResolver) -> Example:
    try:
        obj = json.loads(line)
    except ValueError as err:
        raise DataFormatError(path, lineno, f"not JSON ({err.msg}); expected one post a line") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
        raise DataFormatError(path, lineno, 'expected an object with a non-empty "text"')
    tokens = obj.get("tokens", obj["text"].split())
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t for t in tokens):
        raise DataFormatError(path, lineno, '"tokens" must be a non-empty list of non-empty strings')
    image = obj.get("image")
    if image is not None and not isinstance(image, str):
        raise DataFormatError(path, lineno, '"image" must be a file name inside the image folder')
    return Example(
        id=str(obj.get("id", f"{UNLABELLED}-{lineno}")),
        task=task,
        text=obj["text"] if task != "mner" else " ".join(tokens),
        gold=get_task(task).answer_type(),
        tokens=tuple(tokens) if task == "mner" else None,
        image=images.resolve(image, path, lineno) if image else None,
        meta={"split": UNLABELLED, "image_id": image, "line": lineno},
    )


def read_unlabelled(
    path: str | os.PathLike, task: str, image_dir: str | os.PathLike | None = None
) -> list[Example]:
    """The posts of ``path`` (see the module docstring), with empty gold."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "no such file; data.unlabelled names a file of posts without gold")
    if task == "mre":
        raise DataFormatError(
            path, None, "MRE posts need a head and a tail entity; no unlabelled file format"
        )
    images = ImageResolver(image_dir)
    lines = read_lines(path)
    first = next((line.lstrip() for line in lines if line.strip()), "")
    if first.startswith("{"):
        examples = [
            _from_json(path, n, line, task, images) for n, line in enumerate(lines, 1) if line.strip()
        ]
    elif task != "mner":
        raise DataFormatError(path, 1, 'expected JSONL with a "text" field (CoNLL holds token-level posts)')
    else:
        examples = [
            Example(
                id=b.image_id,
                task=task,
                text=" ".join(b.tokens),
                gold=get_task(task).answer_type(),
                tokens=tuple(b.tokens),
                image=images.resolve(f"{b.image_id}.jpg", path, b.line),
                meta={"split": UNLABELLED, "image_id": b.image_id, "line": b.line},
            )
            for b in iter_blocks(path, tagged=False)
        ]
    seen: dict[str, int] = {}
    for ex in examples:
        if ex.id in seen:
            raise DataFormatError(
                path, ex.meta["line"], f"id {ex.id!r} repeats the post at line {seen[ex.id]}"
            )
        seen[ex.id] = ex.meta["line"]
    if not examples:
        raise DataFormatError(path, 1, "no posts")
    return examples


def unlabelled_report(path, examples: list[Example]) -> ReadReport:
    report = ReadReport(files=[str(path)])
    report.images_found = sum(ex.image is not None for ex in examples)
    report.images_missing = sum(ex.image is None and ex.meta.get("image_id") is not None for ex in examples)
    return report
