"""Answer parsing: a model's raw text → a task Answer plus its rationale, never an exception.

Teacher and student outputs go through the same parser. Accepted MNER forms, tried in order:

1. JSON — bare, inside a code fence, or followed/preceded by prose: ``{"entities": [{"text", "type"}]}``
   or a bare list of such objects (or of ``[text, type]`` pairs).
2. Numbered or bulleted lists: ``1. Obama (person)``, ``- Obama: PER``, and PGIM's run-together
   ``Named entities:1. X (type)2. Y (type)Reasoning:...``.

Free-text types map to the dataset's labels through a synonym table (person, handle → PER; city,
country → LOC; ...); a type that maps to nothing falls back to the dataset's miscellaneous label when it has
one (OTHER in Twitter-2015, MISC in Twitter-2017). Entity strings are aligned back to every token span they
match, case-insensitively, with or without ``@`` and ``#``, and across token boundaries (``New York`` ↔
``#NewYork``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cotdistill.records import (
    AttributeAnswer,
    AttributeValue,
    Entity,
    EntityAnswer,
    Example,
    Relation,
    RelationAnswer,
)

DEFAULT_TYPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "PER": (
        "per",
        "person",
        "people",
        "persons",
        "handle",
        "username",
        "user",
        "individual",
        "name",
        "politician",
        "athlete",
        "player",
        "actor",
        "actress",
        "singer",
        "musician",
        "artist",
        "celebrity",
        "character",
        "president",
        "author",
        "rapper",
        "comedian",
        "journalist",
        "footballer",
        "family",
        "human",
    ),
    "LOC": (
        "loc",
        "location",
        "place",
        "city",
        "country",
        "state",
        "region",
        "province",
        "county",
        "town",
        "village",
        "continent",
        "area",
        "neighborhood",
        "street",
        "address",
        "island",
        "river",
        "mountain",
        "lake",
        "park",
        "landmark",
        "venue",
        "stadium",
        "arena",
        "building",
        "airport",
        "geographical location",
        "gpe",
        "nation",
        "district",
        "capital",
    ),
    "ORG": (
        "org",
        "organization",
        "organisation",
        "company",
        "corporation",
        "business",
        "brand",
        "team",
        "sports team",
        "club",
        "band",
        "group",
        "university",
        "school",
        "college",
        "institution",
        "agency",
        "government",
        "party",
        "political party",
        "news outlet",
        "media",
        "network",
        "tv channel",
        "channel",
        "newspaper",
        "magazine",
        "league",
        "association",
        "union",
        "department",
        "ministry",
        "police",
        "army",
        "military",
        "charity",
        "nonprofit",
        "record label",
        "publisher",
        "website",
    ),
}
_MISC_LABELS = ("OTHER", "MISC", "MISCELLANEOUS")
_LIST_ITEM = re.compile(
    r"(?:^|(?<=\s)|(?<=[)\]:]))(?:\d{1,3}[.)]|[-*•])\s*(?P<text>[^()\n]+?)\s*[(:\[-]\s*(?P<type>[^()\]\n]*?)\s*(?:[)\]]|$|\n)",
    re.M,
)
_PGIM_ITEM = re.compile(r"(?:^|(?<=[)\s:]))\d{1,3}\.\s*(?P<text>[^()]+?)\s*\((?P<type>[^()]*)\)")
_TYPED_ITEM = re.compile(r"(?P<text>[^(),;:\n]+?)\s*\((?P<type>[^()]*)\)")
_NONE_ANSWER = re.compile(r"^\s*(none|n/a|\[\])\b|\bno\b[^.]*\bentit", re.I)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


@dataclass(slots=True)
class ParsedAnswer:
    """What a raw text parsed to. ``answer`` is None exactly when ``error`` says why."""

    answer: EntityAnswer | None
    rationale: str | None
    error: str | None
    mentions: list[tuple[str, str]]  # (surface, free-text type) as the text wrote them
    unaligned: list[str]  # mentions whose text matched no token span


UNMAPPED_TYPES = ("misc", "drop")


def map_type(
    free: str,
    labels: Sequence[str],
    synonyms: Mapping[str, Sequence[str]] = DEFAULT_TYPE_SYNONYMS,
    unmapped: str = "misc",
) -> str | None:
    """Map a free-text type (``person/handle``, ``city``, ``B-PER``) to one of ``labels``, or None.

    A type that maps to no label becomes the dataset's miscellaneous label (``unmapped="misc"``), or None
    (``"drop"``: the mention is left out, which trades recall for precision, e.g. for silver labels)."""
    by_upper = {label.upper(): label for label in labels}
    parts = [p.strip().lower() for p in re.split(r"[/,|;]| or ", free) if p.strip()]
    for part in parts:
        bare = re.sub(r"^[bies]-", "", part)
        if bare.upper() in by_upper:
            return by_upper[bare.upper()]
    for part in parts:
        for label, words in synonyms.items():
            if label.upper() in by_upper and (
                part in words or any(w == part.split()[-1] for w in words if " " not in w)
            ):
                return by_upper[label.upper()]
    if unmapped == "drop":
        return None
    misc = next((by_upper[m] for m in _MISC_LABELS if m in by_upper), None)
    return misc if parts else None


def _norm(s: str) -> str:
    s = s.lower().strip()
    s = re.sub(r"^[@#]+", "", s)
    return re.sub(r"[\W_]+", "", s)


def align_mention(tokens: Sequence[str], text: str, max_width: int = 12) -> list[tuple[int, int]]:
    """Every token span ``[i, j)`` whose joined, normalised tokens equal the normalised mention."""
    target = _norm("".join(text.split()))
    if not target:
        return []
    normed = [_norm(t) for t in tokens]
    spans = []
    for i in range(len(tokens)):
        if not normed[i] or not target.startswith(normed[i]):
            continue
        acc = ""
        for j in range(i, min(len(tokens), i + max_width)):
            acc += normed[j]
            if acc == target:
                spans.append((i, j + 1))
                break
            if not target.startswith(acc):
                break
    return spans


def _json_candidates(raw: str):
    """Yield (value, text around it) for each JSON object or array in the text, fenced ones first."""
    decoder = json.JSONDecoder()
    for text in [m.group(1) for m in _FENCE.finditer(raw)] + [raw]:
        for m in re.finditer(r"[\[{]", text):
            try:
                obj, end = decoder.raw_decode(text, m.start())
            except json.JSONDecodeError:
                continue
            yield obj, text[: m.start()] + text[end:]


def _mentions_from_json(obj) -> list[tuple[str, str]] | None:
    items = obj.get("entities") if isinstance(obj, dict) else obj
    if not isinstance(items, list):
        return None
    out = []
    for it in items:
        if isinstance(it, dict) and isinstance(it.get("text", it.get("entity", it.get("name"))), str):
            out.append(
                (it.get("text", it.get("entity", it.get("name"))), str(it.get("type", it.get("label", ""))))
            )
        elif isinstance(it, (list, tuple)) and len(it) == 2 and all(isinstance(x, str) for x in it):
            out.append((it[0], it[1]))
        else:
            return None
    return out


def normal_type(free: str) -> str:
    """A free-text type as a type map keys it: lower case, single spaces."""
    return " ".join(free.lower().split())


def learn_type_map(
    answered: Iterable[tuple[str, Example]],
    labels: Sequence[str],
    min_count: int = 2,
    min_share: float = 0.5,
) -> dict[str, str]:
    """How a teacher's free-text types map to the dataset's labels, learned from labelled posts.

    ``answered`` holds (the teacher's raw answer, the labelled post). Each mention the teacher wrote is
    aligned to the post's tokens and counted under the gold label of that span ("" where gold has no entity
    there). A type seen at least ``min_count`` times whose commonest outcome has at least ``min_share`` of
    them maps to it: a label, or "" (the teacher's mentions of that type are mostly not entities). Types not
    in the map fall back to the synonym table (``map_type``)."""
    counts: dict[str, Counter] = {}
    for raw, example in answered:
        parsed = parse_mner(raw, example, labels)
        gold = {(e.start, e.end): e.type for e in example.gold.entities}  # type: ignore[union-attr]
        for surface, free in parsed.mentions:
            for span in align_mention(example.tokens or (), surface.strip().strip("\"'“”")):
                counts.setdefault(normal_type(free), Counter())[gold.get(span, "")] += 1
    learned = {}
    for free, c in counts.items():
        outcome, n = c.most_common(1)[0]
        if sum(c.values()) >= min_count and n / sum(c.values()) >= min_share:
            learned[free] = outcome
    return learned


def parse_mner(
    raw: str,
    example: Example,
    labels: Sequence[str],
    synonyms: Mapping[str, Sequence[str]] = DEFAULT_TYPE_SYNONYMS,
    unmapped: str = "misc",
    type_map: Mapping[str, str] | None = None,
) -> ParsedAnswer:
    """Parse an MNER answer for ``example`` (whose tokens the mentions are aligned to); ``unmapped`` as in
    ``map_type``. ``type_map`` (``learn_type_map``) is asked first: a type it maps to "" is left out."""
    if example.tokens is None:
        return ParsedAnswer(None, None, "the example has no tokens to align mentions to", [], [])
    text = raw or ""
    if not text.strip():
        return ParsedAnswer(None, None, "empty output", [], [])
    mentions: list[tuple[str, str]] | None = None
    rationale: str | None = None
    for obj, rest in _json_candidates(text):
        mentions = _mentions_from_json(obj)
        if mentions is not None:
            rationale = rest.strip() or None
            break
    if mentions is None:
        m = re.search(r"(Reasoning|Rationale|Explanation)\s*:", text, re.I)
        head, rationale = (text[: m.start()], text[m.end() :].strip() or None) if m else (text, None)
        body = re.sub(r"^\s*(named\s+)?entities\s*:", "", head, flags=re.I)
        found = [(m.group("text"), m.group("type")) for m in _PGIM_ITEM.finditer(body)]
        if not found:
            found = [(m.group("text"), m.group("type")) for m in _LIST_ITEM.finditer(body)]
        if not found:  # "X (type), Y (type)" without numbers
            found = [(m.group("text"), m.group("type")) for m in _TYPED_ITEM.finditer(body)]
        if not found and re.search(r"\d{1,3}\.\s*\S", body):  # "1. Paris2. France": numbered, untyped
            found = [(t, "") for t in re.split(r"\d{1,3}\.\s*", body) if t.strip()]
        if found:
            mentions = found
        elif not body.strip(" .\n") or _NONE_ANSWER.search(body):
            mentions = []
    if mentions is None:
        return ParsedAnswer(None, rationale, "no JSON entity list or numbered entity list found", [], [])
    entities: dict[tuple[int, int], Entity] = {}
    unaligned = []
    for surface, free_type in mentions:
        surface = surface.strip().strip("\"'“”")
        learned = (type_map or {}).get(normal_type(free_type))
        label = (learned or None) if learned is not None else map_type(free_type, labels, synonyms, unmapped)
        spans = align_mention(example.tokens, surface)
        if not spans or label is None:
            unaligned.append(surface)
            continue
        for s, e in spans:
            entities.setdefault((s, e), Entity(s, e, label, " ".join(example.tokens[s:e])))
    # Overlapping spans: keep the longer (then the earlier) one.
    kept: list[Entity] = []
    for ent in sorted(entities.values(), key=lambda x: (-(x.end - x.start), x.start)):
        if all(ent.end <= k.start or ent.start >= k.end for k in kept):
            kept.append(ent)
    kept.sort(key=lambda x: x.start)
    return ParsedAnswer(EntityAnswer(tuple(kept)), rationale, None, list(mentions), unaligned)


def _norm_label(s: str) -> str:
    return re.sub(r"[\s_/\-]+", " ", s.strip().lower()).strip()


def map_relation(free: str, labels: Sequence[str], none_label: str) -> str | None:
    """Map a written relation (``/per/org/member_of``, ``member of``, ``no relation``) to a label, or None."""
    text = _norm_label(free.strip().strip("\"'`.").split("\n")[0])
    if not text or text in ("none", "no relation", "no_relation", "n a", "null"):
        return none_label
    by_norm = {_norm_label(label): label for label in labels}
    if text in by_norm:
        return by_norm[text]
    # the last path element alone ("member_of") when it names exactly one label
    tails = {}
    for label in labels:
        tails.setdefault(_norm_label(label.rsplit("/", 1)[-1]), []).append(label)
    hits = tails.get(text, [])
    return hits[0] if len(hits) == 1 else None


def parse_mre(
    raw: str, example: Example, labels: Sequence[str], none_label: str
) -> tuple[RelationAnswer | None, str | None, str | None]:
    """Parse a relation label for ``example``'s head/tail pair: (answer, rationale, error)."""
    text = raw or ""
    if not text.strip():
        return None, None, "empty output"
    gold = example.gold
    if not isinstance(gold, RelationAnswer) or not gold.relations:
        return None, None, "the example has no head/tail pair"
    head, tail = gold.relations[0].head, gold.relations[0].tail
    candidates: list[tuple[str, str | None]] = []
    for obj, rest in _json_candidates(text):
        if isinstance(obj, dict):
            value = obj.get("relation", obj.get("label"))
            if isinstance(value, str):
                candidates.append((value, rest.strip() or None))
                break
    m = re.search(r"(?:relation|answer|label)\s*[:=]\s*(?P<label>[^\n]+)", text, re.I)
    if m:
        candidates.append((m.group("label"), (text[: m.start()] + text[m.end() :]).strip() or None))
    candidates.append((text.strip().splitlines()[-1], "\n".join(text.strip().splitlines()[:-1]) or None))
    candidates.append((text.strip().splitlines()[0], "\n".join(text.strip().splitlines()[1:]) or None))
    for written, rationale in candidates:
        label = map_relation(written, labels, none_label)
        if label is not None:
            return RelationAnswer((Relation(head, tail, label),)), rationale, None
    return None, None, f"no relation label of the {len(labels)} known found"


def parse_mae(
    raw: str, example: Example, labels: Sequence[str]
) -> tuple[AttributeAnswer | None, str | None, str | None]:
    """Parse attribute values (JSON ``{"values": [...]}`` or ``attribute: value`` lines), aligning each
    value to its first case-insensitive occurrence in the text: (answer, rationale, error)."""
    text = raw or ""
    if not text.strip():
        return None, None, "empty output"
    pairs: list[tuple[str, str]] | None = None
    rationale = None
    for obj, rest in _json_candidates(text):
        items = obj.get("values") if isinstance(obj, dict) else obj
        if isinstance(items, list) and all(
            isinstance(i, dict) and "attribute" in i and "value" in i for i in items
        ):
            pairs = [(str(i["attribute"]), str(i["value"])) for i in items]
            rationale = rest.strip() or None
            break
        if (
            isinstance(obj, dict)
            and obj
            and all(isinstance(v, str) for v in obj.values())
            and "values" not in obj
        ):
            pairs = [(str(k), v) for k, v in obj.items()]
            rationale = rest.strip() or None
            break
    if pairs is None:
        known = {label.lower(): label for label in labels}
        found = [
            (m.group(1).strip(), m.group(2).strip())
            for m in re.finditer(r"^[\s\-*\d.]*([^:：\n]+)[:：]\s*(.+)$", text, re.M)
        ]
        pairs = [(a, v) for a, v in found if a.lower() in known]
        if not pairs:
            return None, None, "no JSON value list or 'attribute: value' lines found"
    by_lower = {label.lower(): label for label in labels}
    values = []
    lowered = example.text.lower()
    for attr, value in pairs:
        label = by_lower.get(attr.strip().lower())
        if label is None or not value.strip():
            continue
        at = lowered.find(value.strip().lower())
        span = (at, at + len(value.strip())) if at >= 0 else (None, None)
        values.append(
            AttributeValue(label, example.text[span[0] : span[1]] if at >= 0 else value.strip(), *span)
        )
    return AttributeAnswer(tuple(values)), rationale, None
