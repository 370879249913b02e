"""PGIM's published ChatGPT knowledge and BLIP-2 captions for Twitter-2015/2017.

A knowledge file (``pgim/train.txt`` etc., CRLF) holds, per post, its ``token<TAB>tag`` lines (no IMGID),
then ``<EOS>\\tX``, then the teacher's answer split on whitespace, one word per line tagged ``X``. The blocks
follow UMT's order, but Twitter-2015's splits lack the last post of each split, so blocks are matched to
examples by order *and* content, and every mismatch is reported rather than shifting the rest by one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from cotdistill.readers.common import DataFormatError, read_lines
from cotdistill.readers.conll import iter_blocks
from cotdistill.records import Example

EOS = "<EOS>"
_CAPTION_RE = re.compile(r"^(?P<id>.+?)\.jpg :(?P<caption>.*)$")


@dataclass(slots=True)
class KnowledgeBlock:
    tokens: list[str]
    tags: list[str]
    text: str
    line: int


def read_pgim_knowledge(path: str | os.PathLike) -> list[KnowledgeBlock]:
    """Read a PGIM knowledge file; the teacher text is its answer words joined with single spaces."""
    blocks = []
    for b in iter_blocks(path, require_imgid=False, eos_marker=EOS):
        if not b.extra:
            raise DataFormatError(
                path, b.line, f"post has no {EOS} line and teacher answer; expected '{EOS}\\tX' then words"
            )
        blocks.append(KnowledgeBlock(b.tokens, b.tags, " ".join(b.extra), b.line))
    return blocks


def read_captions(path: str | os.PathLike) -> dict[str, str]:
    """Read a BLIP-2 caption file (``<id>.jpg :<caption>`` per line) into ``{id: caption}``."""
    captions: dict[str, str] = {}
    for lineno, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        m = _CAPTION_RE.match(line)
        if m is None:
            raise DataFormatError(path, lineno, f"expected '<id>.jpg :<caption>', got {line[:60]!r}")
        captions[m.group("id")] = m.group("caption").strip()
    return captions


@dataclass(slots=True)
class Alignment:
    """Knowledge text per example id, and what could not be matched."""

    knowledge: dict[str, str] = field(default_factory=dict)
    missing_examples: list[str] = field(default_factory=list)  # example ids with no block
    unmatched_blocks: list[int] = field(default_factory=list)  # line numbers of blocks matching no example

    def summary(self) -> str:
        parts = [f"{len(self.knowledge)} examples matched"]
        if self.missing_examples:
            shown = ", ".join(self.missing_examples[:5])
            parts.append(f"{len(self.missing_examples)} examples without knowledge ({shown})")
        if self.unmatched_blocks:
            shown = ", ".join(f"line {n}" for n in self.unmatched_blocks[:5])
            parts.append(f"{len(self.unmatched_blocks)} knowledge blocks matching no example ({shown})")
        return "; ".join(parts)


def align_knowledge(examples: list[Example], blocks: list[KnowledgeBlock], window: int = 50) -> Alignment:
    """Match blocks to examples in order, by their tokens.

    When block and example differ, the block is looked for among the next ``window`` examples: examples
    skipped on the way have no knowledge; a block found nowhere is reported as unmatched and skipped.
    """
    out = Alignment()
    keys = [tuple(ex.tokens or ()) for ex in examples]
    j = 0
    for block in blocks:
        key = tuple(block.tokens)
        hit = next((k for k in range(j, min(j + window, len(examples))) if keys[k] == key), None)
        if hit is None:
            out.unmatched_blocks.append(block.line)
            continue
        out.missing_examples.extend(examples[k].id for k in range(j, hit))
        out.knowledge[examples[hit].id] = block.text
        j = hit + 1
    out.missing_examples.extend(ex.id for ex in examples[j:])
    return out
