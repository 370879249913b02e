"""Posts that never had gold labels, for the teacher to read and the student to learn from.

Two formats, told apart by the first non-blank character of the file:

- JSONL, one post a line: ``{"text": "...", "id": "...", "tokens": [...], "image": "name.jpg"}``; only
  ``text`` is required (``tokens`` default to the text split on whitespace, ``id`` to ``unlabelled-<line>``).
- CoNLL without the tag column: an ``IMGID:<id>`` line, then one token a line, a blank line between posts
  (the Twitter files with their tags removed). The image is ``<id>.jpg``.

Every example has an empty gold answer. MRE posts need a head and a tail to relate, so they are not read
from these files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cotdistill.readers.common import DataFormatError, ImageResolver, ReadReport, read_lines
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


def _conll_blocks(path, lines: list[str]):
    """(IMGID, its line, tokens) of each post of a CoNLL file without tags."""
    image_id, start, tokens = None, 0, []
    for lineno, line in enumerate([*lines, ""], start=1):
        if not line.strip():
            if image_id is not None:
                if not tokens:
                    raise DataFormatError(path, start, f"IMGID:{image_id} has no token lines")
                yield image_id, start, tokens
            image_id, tokens = None, []
        elif line.startswith("IMGID:"):
            if image_id is not None:
                raise DataFormatError(
                    path, lineno, "IMGID line inside a post; expected a blank line before it"
                )
            image_id, start = line[len("IMGID:") :].strip(), lineno
            if not image_id:
                raise DataFormatError(path, lineno, "empty IMGID; expected IMGID:<id>")
        elif image_id is None:
            raise DataFormatError(path, lineno, f"expected IMGID:<id> to start a post, got {line[:40]!r}")
        elif "\t" in line:
            raise DataFormatError(
                path, lineno, "a tag column: a file of posts without gold has one token a line"
            )
        else:
            tokens.append(line)


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
                id=image_id,
                task=task,
                text=" ".join(tokens),
                gold=get_task(task).answer_type(),
                tokens=tuple(tokens),
                image=images.resolve(f"{image_id}.jpg", path, start),
                meta={"split": UNLABELLED, "image_id": image_id, "line": start},
            )
            for image_id, start, tokens in _conll_blocks(path, lines)
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
