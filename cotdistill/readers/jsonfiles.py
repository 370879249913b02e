"""WikiDiverse (MNER over Wikinews captions) and MAE (product attribute extraction): JSON formats.

WikiDiverse: a JSON list of ``[text, img_url, topic, [[mention, type, start, end, wiki_url], ...]]`` with
character offsets, end exclusive. The text is tokenised on words and punctuation, with extra token
boundaries at every mention edge so each mention is a whole token span. The image is the URL's file name.

MAE: a JSON list (or JSON lines) of products ``{"clean_title", "clean_text", "specs": {attribute: value},
"images": [...]}``. The text is the title and the description on two lines; a value written in the text gets
its character span (first occurrence, case-insensitive), otherwise no span.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from urllib.parse import unquote, urlparse

from cotdistill.readers.common import DataFormatError, ImageResolver, ReadReport, read_text
from cotdistill.records import AttributeAnswer, AttributeValue, Entity, EntityAnswer, Example

_WORD_RE = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]", re.UNICODE)


def _load_json_records(path: str | os.PathLike) -> list:
    """The records of a JSON list, or of JSON lines (one record per line; blank lines skipped)."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        records = _parse_json(path, text)
    else:
        # Lines end at "\n" only: splitlines() would also cut at U+2028 and the like, which JSON strings
        # may hold as they are.
        lines = enumerate(text.split("\n"), start=1)
        records = [_parse_json(path, line, lineno) for lineno, line in lines if line.strip()]
    if not isinstance(records, list):
        raise DataFormatError(path, 1, "expected a JSON list of records")
    return records


def _parse_json(path: str | os.PathLike, text: str, lineno: int | None = None):
    """One JSON document: the whole file (``lineno`` None) or its line ``lineno``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        line = err.lineno if lineno is None else lineno
        raise DataFormatError(path, line, f"invalid JSON ({err.msg}, column {err.colno})") from None
    except RecursionError:
        raise DataFormatError(path, lineno, "JSON nested too deeply to be a dataset record") from None


def tokenize_with_boundaries(text: str, boundaries: set[int]) -> tuple[list[str], list[tuple[int, int]]]:
    """Word/punctuation tokens of ``text``, split further so that every offset in ``boundaries`` that falls
    inside a token becomes a token edge."""
    tokens: list[str] = []
    offsets: list[tuple[int, int]] = []
    for m in _WORD_RE.finditer(text):
        cuts = [m.start(), *sorted(b for b in boundaries if m.start() < b < m.end()), m.end()]
        for a, b in itertools.pairwise(cuts):
            tokens.append(text[a:b])
            offsets.append((a, b))
    return tokens, offsets


def read_wikidiverse(
    path: str | os.PathLike, *, split: str, images: ImageResolver, report: ReadReport | None = None
) -> list[Example]:
    """Read a WikiDiverse JSON file into MNER examples (id = ``<split>-<index>``)."""
    examples = []
    realigned = 0
    for i, rec in enumerate(_load_json_records(path)):
        where = f"record {i}"
        if not (
            isinstance(rec, list) and len(rec) >= 4 and isinstance(rec[0], str) and isinstance(rec[3], list)
        ):
            raise DataFormatError(
                path,
                None,
                f"{where}: expected [text, img_url, topic, [[mention, type, start, end, url], ...]]",
            )
        text, img_url, topic, mentions = rec[0], rec[1], rec[2], rec[3]
        spans = []
        for m in mentions:
            if not (isinstance(m, list) and len(m) >= 4 and isinstance(m[2], int) and isinstance(m[3], int)):
                raise DataFormatError(
                    path, None, f"{where}: mention {m!r} is not [mention, type, start, end, url]"
                )
            surface, type_, start, end = str(m[0]), str(m[1]), m[2], m[3]
            if not (0 <= start < end <= len(text)):
                raise DataFormatError(
                    path,
                    None,
                    f"{where}: mention {surface!r} span [{start}, {end}) is outside the {len(text)} characters",
                )
            if text[start:end] != surface:
                # A shifted offset: use the occurrence of the surface form nearest to it, and count it.
                found = [k.start() for k in re.finditer(re.escape(surface), text)] if surface else []
                if not found:
                    raise DataFormatError(
                        path,
                        None,
                        f"{where}: mention {surface!r} is not in the text (offsets [{start}, {end}) hold {text[start:end]!r})",
                    )
                start = min(found, key=lambda k: abs(k - start))
                end = start + len(surface)
                realigned += 1
            spans.append((start, end, type_))
        tokens, offsets = tokenize_with_boundaries(text, {b for s, e, _ in spans for b in (s, e)})
        starts = {a: k for k, (a, _) in enumerate(offsets)}
        ends = {b: k + 1 for k, (_, b) in enumerate(offsets)}
        entities = []
        for start, end, type_ in spans:
            # Mention edges that touch whitespace are trimmed to the nearest token edge.
            s_char = next((c for c in range(start, end) if c in starts), None)
            e_char = next((c for c in range(end, start, -1) if c in ends), None)
            if s_char is None or e_char is None or starts[s_char] >= ends[e_char]:
                raise DataFormatError(path, None, f"{where}: mention [{start}, {end}) holds no token")
            s, e = starts[s_char], ends[e_char]
            entities.append(Entity(s, e, type_, " ".join(tokens[s:e])))
        name = os.path.basename(unquote(urlparse(str(img_url)).path)) if img_url else ""
        image = images.resolve(name, path, None) if name else None
        examples.append(
            Example(
                id=f"{split}-{i}",
                task="mner",
                text=text,
                tokens=tuple(tokens),
                image=image,
                gold=EntityAnswer(tuple(entities)),
                meta={
                    "split": split,
                    "image_id": name or None,
                    "img_url": img_url,
                    "topic": topic,
                    "offsets": offsets,
                },
            )
        )
    if report is not None and realigned:
        report.note(
            f"{path}: {realigned} mention offsets did not match their surface form and were realigned"
        )
    return examples


def read_mae(
    path: str | os.PathLike, *, split: str, images: ImageResolver, report: ReadReport | None = None
) -> list[Example]:
    """Read an MAE JSON file into MAE examples (id = the product's ``id`` field, else ``<split>-<index>``)."""
    examples = []
    for i, rec in enumerate(_load_json_records(path)):
        where = f"record {i}"
        if not isinstance(rec, dict):
            raise DataFormatError(path, None, f"{where}: expected a product object")
        specs = rec.get("specs")
        if not isinstance(specs, dict):
            raise DataFormatError(path, None, f"{where}: 'specs' must be an object of attribute -> value")
        title, body = str(rec.get("clean_title") or ""), str(rec.get("clean_text") or "")
        text = f"{title}\n{body}" if title and body else title or body
        lowered = text.lower()
        values = []
        for attr, value in specs.items():
            value = str(value)
            if not value.strip():
                raise DataFormatError(path, None, f"{where}: attribute {attr!r} has an empty value")
            at = lowered.find(value.lower())
            span = (at, at + len(value)) if at >= 0 else (None, None)
            values.append(AttributeValue(str(attr), value, *span))
        names = rec.get("images") or []
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            raise DataFormatError(
                path, None, f"{where}: 'images' must be a list of file names, got {names!r}"
            )
        resolved = [images.resolve(n, path, None) for n in names]
        image = next((p for p in resolved if p), None)
        examples.append(
            Example(
                id=str(rec.get("id", f"{split}-{i}")),
                task="mae",
                text=text,
                image=image,
                gold=AttributeAnswer(tuple(values)),
                meta={"split": split, "image_id": names[0] if names else None, "image_ids": names},
            )
        )
    return examples
