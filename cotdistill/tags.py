"""Sequence tags ↔ spans.

Two decoding modes:

* ``"conlleval"`` (the default, what the field reports): the semantics of the conlleval script and of
  seqeval's default mode. An ``I-`` that does not continue an entity of its own type (an "orphan", after
  ``O`` or after another type) starts a new entity. IOB1, IOB2 and IOBES tags are all understood.
* ``"strict"``: IOB2 read strictly, as seqeval's ``mode="strict", scheme=IOB2``: an entity starts only at
  ``B-`` and continues with ``I-`` of the same type; an orphan ``I-`` belongs to no entity.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cotdistill.errors import InputError

TAG_RE = re.compile(r"^(?:O|[BIES]-\S+)$")
MODES = ("conlleval", "strict")


def is_valid_tag(tag: str) -> bool:
    """``O`` or a ``B-``/``I-``/``E-``/``S-`` prefix followed by a non-empty type."""
    return TAG_RE.match(tag) is not None


def _split(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    return tag[0], tag[2:]


def tags_to_spans(tags: Sequence[str], mode: str = "conlleval") -> list[tuple[int, int, str]]:
    """Decode tags into ``(start, end, type)`` spans, end exclusive, in order of start."""
    if mode == "conlleval":
        return _conlleval_spans(tags)
    if mode == "strict":
        return _strict_iob2_spans(tags)
    raise InputError(f"unknown tag decoding mode {mode!r}; expected one of {', '.join(MODES)}")


def _conlleval_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    # A transcription of conlleval's startOfChunk/endOfChunk, which seqeval's default mode copies.
    spans: list[tuple[int, int, str]] = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, raw in enumerate([*tags, "O"]):
        tag, type_ = _split(raw)
        end = (
            prev_tag in ("E", "S")
            or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
            or (prev_tag != "O" and prev_type != type_)
        )
        if end:
            spans.append((begin, i, prev_type))
        start = (
            tag in ("B", "S")
            or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
            or (tag != "O" and prev_type != type_)
        )
        if start:
            begin = i
        prev_tag, prev_type = tag, type_
    return spans


def _strict_iob2_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    current: list = []  # [start, type] of the open entity, if any
    for i, raw in enumerate(tags):
        tag, type_ = _split(raw)
        if tag not in ("B", "I", "O"):
            # As seqeval's strict IOB2 does: E-/S- belong to IOBES, which this mode does not read.
            raise InputError(
                f"tag {raw!r} at position {i} is not IOB2 (allowed prefixes: B-, I-, O); strict mode reads "
                "IOB2 only, use mode='conlleval' for IOBES tags"
            )
        if tag == "I" and current and current[1] == type_:
            continue
        if current:
            spans.append((current[0], i, current[1]))
            current = []
        if tag == "B":
            current = [i, type_]
    if current:
        spans.append((current[0], len(tags), current[1]))
    return spans


def spans_to_tags(n_tokens: int, spans: Sequence[tuple[int, int, str]]) -> list[str]:
    """Write spans as IOB2 tags; overlapping spans keep the earlier one and drop the rest."""
    tags = ["O"] * n_tokens
    for start, end, type_ in sorted(spans):
        if start < 0 or end > n_tokens or start >= end:
            raise InputError(f"span [{start}, {end}) is outside {n_tokens} tokens")
        if any(t != "O" for t in tags[start:end]):
            continue
        tags[start] = f"B-{type_}"
        for j in range(start + 1, end):
            tags[j] = f"I-{type_}"
    return tags
