"""Task specs: what a task's answers look like and how they are scored.

A spec's label set comes from the data (Twitter-2015 says ``OTHER`` where Twitter-2017 says ``MISC``; MNRE
v2 writes ``None`` where v1 writes ``none``), so one spec type serves every dataset of a task.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cotdistill.errors import InputError
from cotdistill.records import TASKS, Answer, AttributeAnswer, EntityAnswer, Example, RelationAnswer

METRICS = {"mner": "mner_f1", "mre": "mre_f1", "mae": "mae_f1"}


def is_no_relation(label: str | None) -> bool:
    """MNRE v2 writes ``None``, v1 ``none``: both (and a missing label) mean no relation."""
    return label is None or label.strip().lower() == "none"


@dataclass(slots=True, frozen=True)
class TaskSpec:
    """A task over one dataset's label set.

    Attributes:
        name: ``mner``, ``mre`` or ``mae``.
        labels: entity types (MNER), relation labels including the no-relation one (MRE), or attribute
            names (MAE), sorted.
        none_label: the dataset's no-relation label (MRE only).
        descriptions: optional one-line description per label, for prompts.
    """

    name: str
    labels: tuple[str, ...]
    none_label: str | None = None
    descriptions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise InputError(f"unknown task {self.name!r}; expected one of {', '.join(TASKS)}")
        if not self.labels:
            raise InputError(
                f"task {self.name}: the label set is empty; read it from data with from_examples()"
            )

    @property
    def metric(self) -> str:
        return METRICS[self.name]

    @property
    def scored_labels(self) -> list[str]:
        """The labels a metric reports: every label but MRE's no-relation one."""
        return [lab for lab in self.labels if not (self.name == "mre" and is_no_relation(lab))]

    @classmethod
    def from_examples(
        cls, task: str, examples: Iterable[Example], extra_labels: Iterable[str] = ()
    ) -> TaskSpec:
        """Collect the label set that the examples' gold answers use (plus ``extra_labels``)."""
        labels: set[str] = set(extra_labels)
        for ex in examples:
            if ex.task != task:
                raise InputError(f"example {ex.id} is a {ex.task} example, not {task}")
            gold = ex.gold
            if isinstance(gold, EntityAnswer):
                labels.update(e.type for e in gold.entities if e.type)
            elif isinstance(gold, RelationAnswer):
                labels.update(r.label for r in gold.relations)
            elif isinstance(gold, AttributeAnswer):
                labels.update(v.attribute for v in gold.values)
        none_label = None
        if task == "mre":
            nones = sorted(label for label in labels if is_no_relation(label))
            none_label = nones[0] if nones else "None"
            labels.add(none_label)
        return cls(name=task, labels=tuple(sorted(labels)), none_label=none_label)

    def answer_schema(self) -> dict:
        """The JSON schema a teacher's or student's answer must follow for this label set."""
        labels = list(self.labels)
        if self.name == "mner":
            item = {
                "type": "object",
                "properties": {"text": {"type": "string"}, "type": {"type": "string", "enum": labels}},
                "required": ["text", "type"],
                "additionalProperties": False,
            }
            return _object("entities", {"type": "array", "items": item})
        if self.name == "mre":
            return _object("relation", {"type": "string", "enum": labels})
        item = {
            "type": "object",
            "properties": {"attribute": {"type": "string", "enum": labels}, "value": {"type": "string"}},
            "required": ["attribute", "value"],
            "additionalProperties": False,
        }
        return _object("values", {"type": "array", "items": item})


def _object(key: str, schema: dict) -> dict:
    return {"type": "object", "properties": {key: schema}, "required": [key], "additionalProperties": False}


def value_key(v) -> tuple:
    """An attribute value as scored: attribute, value (case- and space-insensitive), span."""
    return (v.attribute, v.value.strip().lower(), v.start, v.end)


def answer_items(task: str, answer: Answer | None) -> set:
    """The scored items of one answer: typed spans (MNER), non-none relations with their argument spans
    (MRE), attribute values (MAE). Two answers agree on an item when both contain it."""
    if answer is None:
        return set()
    if task == "mner":
        return {e.key for e in answer.entities}  # type: ignore[union-attr]
    if task == "mre":
        return {
            ((r.head.start, r.head.end), (r.tail.start, r.tail.end), r.label)
            for r in answer.relations  # type: ignore[union-attr]
            if not is_no_relation(r.label)
        }
    if task == "mae":
        return {value_key(v) for v in answer.values}  # type: ignore[union-attr]
    raise InputError(f"unknown task {task!r}; expected mner, mre or mae")


def item_label(task: str, item: tuple) -> str:
    """The type / relation label / attribute an item is counted under."""
    return item[0] if task == "mae" else item[-1]
