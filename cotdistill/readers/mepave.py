"""MEPAVE (JD product attribute value extraction): ``cid<TAB>sid<TAB>sentence<TAB>annotated``.

``annotated`` is the sentence with values wrapped in XML-like attribute tags, e.g.
``爱华仕<闭合方式>搭扣</闭合方式>单肩包``; the tags become character spans over the sentence. ``cid`` names the
product, whose image is ``<cid>.jpg``. Attribute names come from ``vocab.label`` when it is present.
"""

from __future__ import annotations

import os
import re

from cotdistill.readers.common import DataFormatError, ImageResolver, ReadReport, read_lines
from cotdistill.records import AttributeAnswer, AttributeValue, Example

_TAG_RE = re.compile(r"<(/?)([^<>/]+)>")


def read_label_vocab(path: str | os.PathLike) -> list[str]:
    """Attribute names of ``vocab.label``, without the ``[PAD]``-style special entries."""
    names = [line.strip() for line in read_lines(path)]
    return [n for n in names if n and not (n.startswith("[") and n.endswith("]"))]


def parse_annotated(
    annotated: str, path, lineno: int, labels: set[str] | None
) -> tuple[str, list[AttributeValue]]:
    """Strip the inline tags, returning the plain text and one value per tagged stretch."""
    plain: list[str] = []
    values: list[AttributeValue] = []
    open_attr: str | None = None
    open_at = 0
    pos = 0
    length = 0
    for m in _TAG_RE.finditer(annotated):
        chunk = annotated[pos : m.start()]
        plain.append(chunk)
        length += len(chunk)
        pos = m.end()
        closing, attr = m.group(1) == "/", m.group(2)
        if labels is not None and attr not in labels:
            raise DataFormatError(
                path,
                lineno,
                f"unknown attribute tag <{attr}>; expected one of the {len(labels)} names in vocab.label",
            )
        if not closing:
            if open_attr is not None:
                raise DataFormatError(
                    path, lineno, f"<{attr}> opens inside <{open_attr}>; tags must not nest"
                )
            open_attr, open_at = attr, length
            continue
        if open_attr != attr:
            raise DataFormatError(
                path, lineno, f"</{attr}> closes {'nothing' if open_attr is None else f'<{open_attr}>'}"
            )
        if length == open_at:
            raise DataFormatError(path, lineno, f"<{attr}></{attr}> tags an empty value")
        text = "".join(plain)
        values.append(AttributeValue(attr, text[open_at:length], open_at, length))
        open_attr = None
    if open_attr is not None:
        raise DataFormatError(path, lineno, f"<{open_attr}> is never closed")
    plain.append(annotated[pos:])
    return "".join(plain), values


def read_mepave(
    path: str | os.PathLike,
    *,
    split: str,
    images: ImageResolver,
    labels: list[str] | None = None,
    report: ReadReport | None = None,
) -> list[Example]:
    """Read a MEPAVE file into MAE examples (id = sid)."""
    label_set = set(labels) if labels else None
    examples = []
    for lineno, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise DataFormatError(
                path, lineno, f"expected cid<TAB>sid<TAB>sentence<TAB>annotated, got {len(parts)} fields"
            )
        cid, sid, sentence, annotated = parts
        text, values = parse_annotated(annotated, path, lineno, label_set)
        if text != sentence:
            raise DataFormatError(
                path, lineno, "the annotated text without its tags differs from the sentence field"
            )
        image = images.resolve(f"{cid}.jpg", path, lineno)
        examples.append(
            Example(
                id=sid,
                task="mae",
                text=sentence,
                image=image,
                gold=AttributeAnswer(tuple(values)),
                meta={"split": split, "image_id": f"{cid}.jpg", "cid": cid, "line": lineno},
            )
        )
    return examples
