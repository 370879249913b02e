"""Twitter CoNLL: Twitter-2015, Twitter-2017 and Twitter-SNAP as UMT distributes them.

Each post is an ``IMGID:<id>`` line followed by one ``token<TAB>tag`` line per token; a blank line separates
posts; the last post may or may not be followed by one. Tokens are kept exactly as written (a lone U+00A0 or
U+FE0F is a token), tags are kept as written, and entity spans are decoded with conlleval semantics.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from cotdistill.errors import InputError
from cotdistill.readers.common import DataFormatError, ImageResolver, ReadReport, read_lines
from cotdistill.records import Entity, EntityAnswer, Example
from cotdistill.tags import is_valid_tag, spans_to_tags, tags_to_spans


@dataclass(slots=True)
class TaggedBlock:
    """One post as written: its image id (if any), tokens, tags, and the line it starts on (its IMGID line,
    or its first token line when it has none)."""

    image_id: str | None
    tokens: list[str]
    tags: list[str]
    line: int
    extra: list[str]  # lines after a "<EOS>" marker (PGIM knowledge files); empty otherwise


def iter_blocks(
    path: str | os.PathLike,
    *,
    require_imgid: bool = True,
    eos_marker: str | None = None,
    tagged: bool = True,
) -> Iterator[TaggedBlock]:
    """Yield the posts of a tagged file, validating every line.

    Args:
        require_imgid: every block must start with ``IMGID:<id>`` (UMT files); PGIM files have none.
        eos_marker: a token (``<EOS>``) after which the remaining lines of the block are free text
            (one word per line, tag ``X``) returned in ``extra``.
        tagged: False for posts that never had gold: one token a line, no tag column (``tags`` stays
            empty). A line of a lone U+00A0 or U+FE0F is then a token; only spaces and tabs make a blank.
    """
    lines = read_lines(path)
    block: TaggedBlock | None = None
    in_extra = False

    def finish(b: TaggedBlock | None) -> Iterator[TaggedBlock]:
        if b is None:
            return
        if not b.tokens:
            what = "token<TAB>tag lines" if tagged else "one token a line"
            raise DataFormatError(path, b.line, f"IMGID:{b.image_id} has no token lines; expected {what}")
        yield b

    for lineno, line in enumerate(lines, start=1):
        if not line.strip(" \t") or (tagged and "\t" not in line and not line.strip()):
            yield from finish(block)
            block, in_extra = None, False
            continue
        if line.startswith("IMGID:"):
            if block is not None:
                raise DataFormatError(
                    path, lineno, "IMGID line inside a post; expected a blank line before it"
                )
            image_id = line[len("IMGID:") :].strip()
            if not image_id:
                raise DataFormatError(path, lineno, "empty IMGID; expected IMGID:<id>")
            block = TaggedBlock(image_id, [], [], lineno, [])
            continue
        if block is None:
            if require_imgid:
                raise DataFormatError(path, lineno, f"expected IMGID:<id> to start a post, got {line[:40]!r}")
            block = TaggedBlock(None, [], [], lineno, [])
        if not tagged:
            if "\t" in line:
                raise DataFormatError(
                    path, lineno, "a tag column: a file of posts without gold has one token a line"
                )
            block.tokens.append(line)
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataFormatError(
                path, lineno, f"expected token<TAB>tag, got {len(parts) - 1} tabs in {line[:60]!r}"
            )
        token, tag = parts
        if in_extra:
            block.extra.append(token)
            continue
        if eos_marker is not None and token == eos_marker:
            in_extra = True
            continue
        if not token:
            raise DataFormatError(path, lineno, "empty token; expected token<TAB>tag")
        if not is_valid_tag(tag):
            raise DataFormatError(
                path, lineno, f"bad tag {tag!r}; expected O or B-/I-/E-/S- followed by a type (e.g. B-PER)"
            )
        block.tokens.append(token)
        block.tags.append(tag)
    yield from finish(block)


def block_to_example(
    block: TaggedBlock, *, split: str, images: ImageResolver, path: str | os.PathLike, index: int
) -> Example:
    tokens = tuple(block.tokens)
    entities = tuple(
        Entity(start, end, type_, " ".join(tokens[start:end]))
        for start, end, type_ in tags_to_spans(block.tags)
    )
    image_id = block.image_id
    image = images.resolve(f"{image_id}.jpg", path, block.line) if image_id else None
    meta = {"split": split, "image_id": image_id, "tags": list(block.tags), "line": block.line}
    ex_id = image_id if image_id is not None else f"{split}-{index}"
    return Example(
        id=ex_id,
        task="mner",
        text=" ".join(tokens),
        tokens=tokens,
        image=image,
        gold=EntityAnswer(entities),
        meta=meta,
    )


def read_conll(
    path: str | os.PathLike, *, split: str, images: ImageResolver, report: ReadReport | None = None
) -> list[Example]:
    """Read a Twitter CoNLL file into MNER examples (id = IMGID)."""
    examples = []
    seen: dict[str, int] = {}
    for i, block in enumerate(iter_blocks(path)):
        ex = block_to_example(block, split=split, images=images, path=path, index=i)
        if ex.id in seen:
            raise DataFormatError(
                path, block.line, f"IMGID:{ex.id} repeats the post at line {seen[ex.id]}; ids must be unique"
            )
        seen[ex.id] = block.line
        examples.append(ex)
    return examples


def write_conll(
    path: str | os.PathLike, examples: list[Example], tags: list[list[str]] | None = None
) -> None:
    """Write examples in the same format (gold tags, or the given predicted tags)."""
    with open(path, "w", encoding="utf-8") as f:
        for i, ex in enumerate(examples):
            if ex.tokens is None:
                raise InputError(f"example {ex.id} has no tokens")
            row_tags = tags[i] if tags is not None else ex.meta.get("tags")
            if row_tags is None:
                assert isinstance(ex.gold, EntityAnswer)
                row_tags = spans_to_tags(
                    len(ex.tokens), [(e.start, e.end, e.type or "MISC") for e in ex.gold.entities]
                )
            if i:
                f.write("\n")
            f.write(f"IMGID:{ex.meta.get('image_id') or ex.id}\n")
            for token, tag in zip(ex.tokens, row_tags, strict=True):
                f.write(f"{token}\t{tag}\n")
