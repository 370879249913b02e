"""MNRE v2 and v1: one Python dict literal per line (single-quoted, so not JSON).

``{'token': [...], 'h': {'name': ..., 'pos': [start, end]}, 't': {...}, 'img_id': '...jpg', 'relation': ...}``
with token spans whose end is exclusive. One record per entity pair; the head may follow the tail and the two
may overlap. v2 writes the no-relation label ``None``, v1 ``none``; both are kept as written.
"""

from __future__ import annotations

import ast
import os

from cotdistill.readers.common import DataFormatError, ImageResolver, ReadReport, read_lines
from cotdistill.records import Entity, Example, Relation, RelationAnswer


def _span(obj: object, role: str, n: int, path, lineno: int) -> Entity:
    if not isinstance(obj, dict) or "pos" not in obj:
        raise DataFormatError(path, lineno, f"'{role}' must be a dict with 'name' and 'pos'")
    pos = obj["pos"]
    if not (isinstance(pos, (list, tuple)) and len(pos) == 2 and all(isinstance(p, int) for p in pos)):
        raise DataFormatError(path, lineno, f"'{role}' pos must be [start, end] integers, got {pos!r}")
    start, end = pos
    if not (0 <= start < end <= n):
        raise DataFormatError(path, lineno, f"'{role}' span [{start}, {end}) is outside the {n} tokens")
    return Entity(start, end, None, str(obj.get("name", "")))


def read_mnre(
    path: str | os.PathLike, *, split: str, images: ImageResolver, report: ReadReport | None = None
) -> list[Example]:
    """Read an MNRE file into MRE examples (id = ``<split>-<record index>``)."""
    examples = []
    numeric_ids = 0
    for lineno, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            # literal_eval only builds literals: a line can never run code.
            rec = ast.literal_eval(line)
        except (RecursionError, MemoryError):
            raise DataFormatError(path, lineno, "nested too deeply to be an MNRE record") from None
        except (SyntaxError, ValueError) as err:
            raise DataFormatError(
                path,
                lineno,
                f"not a Python dict literal ({err.__class__.__name__}: {err.msg if isinstance(err, SyntaxError) else err})",
            ) from None
        if not isinstance(rec, dict):
            raise DataFormatError(path, lineno, f"expected a dict literal, got {type(rec).__name__}")
        missing = [k for k in ("token", "h", "t", "relation") if k not in rec]
        if missing:
            raise DataFormatError(
                path, lineno, f"record lacks {', '.join(missing)}; expected token, h, t, img_id, relation"
            )
        tokens = rec["token"]
        if not (isinstance(tokens, list) and tokens and all(isinstance(t, str) for t in tokens)):
            raise DataFormatError(path, lineno, "'token' must be a non-empty list of strings")
        head = _span(rec["h"], "h", len(tokens), path, lineno)
        tail = _span(rec["t"], "t", len(tokens), path, lineno)
        label = rec["relation"]
        if not isinstance(label, str) or not label:
            raise DataFormatError(path, lineno, f"'relation' must be a label string, got {label!r}")
        image_id = rec.get("img_id")
        if isinstance(image_id, int):  # some v1 records name a Twitter-2015-style numeric image id
            image_id = f"{image_id}.jpg"
            numeric_ids += 1
        if image_id is not None and not isinstance(image_id, str):
            raise DataFormatError(path, lineno, f"'img_id' must be a file name, got {image_id!r}")
        image = images.resolve(image_id, path, lineno) if image_id else None
        index = len(examples)
        examples.append(
            Example(
                id=f"{split}-{index}",
                task="mre",
                text=" ".join(tokens),
                tokens=tuple(tokens),
                image=image,
                gold=RelationAnswer((Relation(head, tail, label),)),
                meta={"split": split, "image_id": image_id, "line": lineno},
            )
        )
    if report is not None and numeric_ids:
        report.note(f"{path}: {numeric_ids} records give a numeric img_id, read as <id>.jpg")
    return examples
