"""Typed records that flow between cotdistill's stages.

Every stage boundary passes one of these dataclasses, never a loose dict. Each record converts to and from
plain JSON (``to_dict`` / ``from_dict``) so it can be written to JSONL shards and read back unchanged.

Spans are half-open: ``[start, end)``. Entity spans count tokens; attribute-value spans count characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from cotdistill.errors import InputError

TASKS: tuple[str, ...] = ("mner", "mre", "mae")


class RecordError(InputError):
    """A JSON object does not describe the record it is read as."""


def _require(obj: dict, key: str, kind: str) -> Any:
    if not isinstance(obj, dict):
        raise RecordError(f"{kind}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise RecordError(f"{kind}: missing field {key!r} (fields present: {sorted(obj)})")
    return obj[key]


_MISSING = object()


def _typed(obj: dict, key: str, kind: str, types: tuple, expected: str, default: Any = _MISSING) -> Any:
    """A field of a JSON record, checked for its type (``bool`` never passes as an int); ``default`` makes
    the field optional."""
    if default is not _MISSING and isinstance(obj, dict) and key not in obj:
        return default
    value = _require(obj, key, kind)
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        raise RecordError(f"{kind}: field {key!r} must be {expected}, got {value!r}")
    return value


def _list(obj: dict, key: str, kind: str) -> list:
    return _typed(obj, key, kind, (list, tuple), "a list")


@dataclass(slots=True, frozen=True)
class Entity:
    """A typed mention over tokens ``[start, end)``; ``type`` is None for an untyped argument (MNRE)."""

    start: int
    end: int
    type: str | None
    text: str

    def __post_init__(self) -> None:
        if not (0 <= self.start < self.end):
            raise RecordError(f"Entity span [{self.start}, {self.end}) is empty or negative")

    @property
    def key(self) -> tuple[int, int, str | None]:
        return (self.start, self.end, self.type)

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "type": self.type, "text": self.text}

    @classmethod
    def from_dict(cls, obj: dict) -> Entity:
        return cls(
            start=_typed(obj, "start", "Entity", (int,), "a token index"),
            end=_typed(obj, "end", "Entity", (int,), "a token index"),
            type=_typed(obj, "type", "Entity", (str, type(None)), "a label string or null", None),
            text=_typed(obj, "text", "Entity", (str,), "a string", ""),
        )


@dataclass(slots=True, frozen=True)
class Relation:
    """A labelled relation between two mentions. The no-relation label is kept as the dataset writes it."""

    head: Entity
    tail: Entity
    label: str

    def to_dict(self) -> dict:
        return {"head": self.head.to_dict(), "tail": self.tail.to_dict(), "label": self.label}

    @classmethod
    def from_dict(cls, obj: dict) -> Relation:
        return cls(
            head=Entity.from_dict(_require(obj, "head", "Relation")),
            tail=Entity.from_dict(_require(obj, "tail", "Relation")),
            label=_typed(obj, "label", "Relation", (str,), "a label string"),
        )


@dataclass(slots=True, frozen=True)
class AttributeValue:
    """An attribute's value; ``start``/``end`` are character offsets into the text, or None when the value
    is not written in the text (MAE's specs often are not)."""

    attribute: str
    value: str
    start: int | None = None
    end: int | None = None

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise RecordError("AttributeValue: start and end must both be set or both be None")
        if self.start is not None and not (0 <= self.start < self.end):  # type: ignore[operator]
            raise RecordError(f"AttributeValue span [{self.start}, {self.end}) is empty or negative")

    def to_dict(self) -> dict:
        return {"attribute": self.attribute, "value": self.value, "start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, obj: dict) -> AttributeValue:
        return cls(
            attribute=_typed(obj, "attribute", "AttributeValue", (str,), "an attribute name"),
            value=_typed(obj, "value", "AttributeValue", (str,), "a string"),
            start=_typed(
                obj, "start", "AttributeValue", (int, type(None)), "a character offset or null", None
            ),
            end=_typed(obj, "end", "AttributeValue", (int, type(None)), "a character offset or null", None),
        )


@dataclass(slots=True, frozen=True)
class EntityAnswer:
    """MNER answer: the typed entities of one post."""

    task: ClassVar[str] = "mner"
    entities: tuple[Entity, ...] = ()

    def to_dict(self) -> dict:
        return {"task": self.task, "entities": [e.to_dict() for e in self.entities]}

    @classmethod
    def from_dict(cls, obj: dict) -> EntityAnswer:
        return cls(tuple(Entity.from_dict(e) for e in _list(obj, "entities", "EntityAnswer")))


@dataclass(slots=True, frozen=True)
class RelationAnswer:
    """MRE answer: the relations of one example (MNRE has exactly one head/tail pair per example)."""

    task: ClassVar[str] = "mre"
    relations: tuple[Relation, ...] = ()

    def to_dict(self) -> dict:
        return {"task": self.task, "relations": [r.to_dict() for r in self.relations]}

    @classmethod
    def from_dict(cls, obj: dict) -> RelationAnswer:
        return cls(tuple(Relation.from_dict(r) for r in _list(obj, "relations", "RelationAnswer")))


@dataclass(slots=True, frozen=True)
class AttributeAnswer:
    """MAE answer: the attribute values of one product text."""

    task: ClassVar[str] = "mae"
    values: tuple[AttributeValue, ...] = ()

    def to_dict(self) -> dict:
        return {"task": self.task, "values": [v.to_dict() for v in self.values]}

    @classmethod
    def from_dict(cls, obj: dict) -> AttributeAnswer:
        return cls(tuple(AttributeValue.from_dict(v) for v in _list(obj, "values", "AttributeAnswer")))


Answer = Union[EntityAnswer, RelationAnswer, AttributeAnswer]  # noqa: UP007 (runtime alias for 3.10)
ANSWER_TYPES: dict[str, type] = {"mner": EntityAnswer, "mre": RelationAnswer, "mae": AttributeAnswer}


def answer_from_dict(obj: dict) -> Answer:
    """Read any Answer from its JSON form; the ``task`` field picks the type."""
    task = _require(obj, "task", "Answer")
    if task not in ANSWER_TYPES:
        raise RecordError(f"Answer: unknown task {task!r}; expected one of {', '.join(ANSWER_TYPES)}")
    return ANSWER_TYPES[task].from_dict(obj)


def empty_answer(task: str) -> Answer:
    """The answer that predicts nothing: what a missing or unparsable prediction is scored as."""
    if task not in ANSWER_TYPES:
        raise RecordError(f"unknown task {task!r}; expected one of {', '.join(ANSWER_TYPES)}")
    return ANSWER_TYPES[task]()


@dataclass(slots=True)
class Example:
    """One input of a task with its gold answer.

    ``tokens`` is set for token-level tasks (MNER, MRE); ``text`` always holds the readable text (tokens
    joined with spaces when the data is tokenised). ``image`` is the resolved path of an image that exists,
    or None; ``meta["image_id"]`` keeps the dataset's own image name either way.
    """

    id: str
    task: str
    text: str
    gold: Answer
    tokens: tuple[str, ...] | None = None
    image: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise RecordError(f"Example {self.id}: unknown task {self.task!r}; expected one of {TASKS}")
        if self.gold.task != self.task:
            raise RecordError(
                f"Example {self.id}: gold answer is for {self.gold.task}, example is {self.task}"
            )

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "task": self.task,
            "text": self.text,
            "tokens": list(self.tokens) if self.tokens is not None else None,
            "image": self.image,
            "gold": self.gold.to_dict(),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, obj: dict) -> Example:
        tokens = obj.get("tokens")
        return cls(
            id=str(_require(obj, "id", "Example")),
            task=str(_require(obj, "task", "Example")),
            text=str(_require(obj, "text", "Example")),
            gold=answer_from_dict(_require(obj, "gold", "Example")),
            tokens=tuple(tokens) if tokens is not None else None,
            image=obj.get("image"),
            meta=dict(obj.get("meta") or {}),
        )


@dataclass(slots=True, frozen=True)
class Usage:
    """What one generation cost."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, obj: dict) -> Usage:
        return cls(
            prompt_tokens=int(obj.get("prompt_tokens", 0)),
            completion_tokens=int(obj.get("completion_tokens", 0)),
            seconds=float(obj.get("seconds", 0.0)),
        )


@dataclass(slots=True)
class Prediction:
    """One teacher or student output for one example: the interchange record of every stage.

    ``answer`` is None exactly when parsing failed, and then ``parse_error`` says why; ``raw`` always keeps
    the model's text as generated.
    """

    id: str
    source: str
    answer: Answer | None
    raw: str
    rationale: str | None = None
    parse_error: str | None = None
    usage: Usage | None = None

    def __post_init__(self) -> None:
        if self.answer is None and not self.parse_error:
            raise RecordError(f"Prediction {self.id}: an answer of None needs a parse_error saying why")

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "source": self.source,
            "answer": self.answer.to_dict() if self.answer is not None else None,
            "rationale": self.rationale,
            "raw": self.raw,
            "parse_error": self.parse_error,
            "usage": self.usage.to_dict() if self.usage is not None else None,
        }

    @classmethod
    def from_dict(cls, obj: dict) -> Prediction:
        answer = obj.get("answer")
        usage = obj.get("usage")
        return cls(
            id=str(_require(obj, "id", "Prediction")),
            source=str(_require(obj, "source", "Prediction")),
            answer=answer_from_dict(answer) if answer is not None else None,
            raw=str(obj.get("raw", "")),
            rationale=obj.get("rationale"),
            parse_error=obj.get("parse_error"),
            usage=Usage.from_dict(usage) if usage is not None else None,
        )


def is_no_relation(label: str | None) -> bool:
    """MNRE v2 writes ``None``, v1 ``none``: both (and a missing label) mean no relation."""
    return label is None or label.strip().lower() == "none"


def value_key(v) -> tuple:
    """An attribute value as scored: attribute, value (case- and space-insensitive), span."""
    return (v.attribute, v.value.strip().lower(), v.start, v.end)
