"""What every task plug-in provides, and the task spec (a task over one dataset's label set).

A task's behaviour lives in its own module (``mner``, ``mre``, ``mae``): its answers' items and labels,
the answer schema, the parser of free model output, the metric, and the hooks the students featurise
with. Adding a task means one module here plus a reader.

A spec's label set comes from the data (Twitter-2015 says ``OTHER`` where Twitter-2017 says ``MISC``; MNRE
v2 writes ``None`` where v1 writes ``none``), so one spec type serves every dataset of a task.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from cotdistill.errors import InputError
from cotdistill.records import Answer, Example


def is_no_relation(label: str | None) -> bool:
    """MNRE v2 writes ``None``, v1 ``none``: both (and a missing label) mean no relation."""
    return label is None or label.strip().lower() == "none"


def value_key(v) -> tuple:
    """An attribute value as scored: attribute, value (case- and space-insensitive), span."""
    return (v.attribute, v.value.strip().lower(), v.start, v.end)


def json_object(key: str, schema: dict) -> dict:
    return {"type": "object", "properties": {key: schema}, "required": [key], "additionalProperties": False}


class Task:
    """One information-extraction task. Subclasses set the class attributes and the methods below."""

    name: ClassVar[str]
    answer_type: ClassVar[type]
    metric: ClassVar[str]  # the Hugging Face ``evaluate`` metric under eval/hf_metrics
    has_spans: ClassVar[bool] = True  # answers are spans in the text (an error breakdown applies)
    tagger: ClassVar[bool] = True  # the encoder student tags units (True) or classifies a pair (False)
    unit: ClassVar[str] = "tokens"  # what the dataset statistics count per example
    student_answer_key: ClassVar[str]  # the key of the generative student's JSON answer

    def labels_of(self, answer: Answer) -> Iterable[str]:
        """The labels an answer uses (entity types, relation labels, attribute names)."""
        raise NotImplementedError

    def complete_labels(self, labels: set[str]) -> tuple[set[str], str | None]:
        """The label set to use, and its no-relation label (MRE only)."""
        return labels, None

    def is_scored(self, label: str) -> bool:
        """Whether a metric reports this label (MRE's no-relation label is not)."""
        return True

    def items(self, answer: Answer | None) -> set:
        """The scored items of one answer; two answers agree on an item when both contain it."""
        raise NotImplementedError

    def item_label(self, item: tuple) -> str:
        """The type / relation label / attribute an item is counted under."""
        return item[-1]

    def score(self, gold: Sequence[Answer], pred: Sequence[Answer | None]) -> dict:
        """Micro P/R/F1 (and per label) of aligned gold and predicted answers."""
        from cotdistill.metrics import set_scores

        return set_scores([self.items(g) for g in gold], [self.items(p) for p in pred], group=self.item_label)

    def answer_schema(self, labels: Sequence[str]) -> dict:
        raise NotImplementedError

    def parse(self, raw: str, example: Example, labels: Sequence[str], none_label: str | None) -> tuple:
        """``(answer or None, rationale, error or None)`` from free model output; never raises."""
        raise NotImplementedError

    def label_descriptions(self, labels: Sequence[str], given: dict[str, str]) -> dict[str, str]:
        """One-line gloss of each label for prompts (``given`` overrides)."""
        from cotdistill.prompts.library import DEFAULT_DESCRIPTIONS

        return {**DEFAULT_DESCRIPTIONS, **given}

    def show(self, example: Example, items: set) -> list[str]:
        """Items written for a person to read (report and compare examples)."""
        raise NotImplementedError

    def spans(self, answer: Answer | None) -> list[tuple[int, int, str]] | None:
        """``(start, end, type)`` of each span an answer predicts, for the error breakdown; None when the
        task's answers are not spans (MRE)."""
        return None

    def span_text(self, example: Example, start: int, end: int) -> str:
        return example.text[start:end]

    def student_units(self, example: Example) -> tuple[tuple[str, ...], list[tuple[int, int]] | None]:
        """The units a tagger labels, and their character offsets when they are not the tokens."""
        if example.tokens is None:
            raise InputError(f"example {example.id} has no tokens; the tagger needs tokenised posts")
        return example.tokens, None

    def student_target(self, answer: Answer, example: Example) -> dict:
        """The generative student's JSON answer for ``answer``."""
        raise NotImplementedError


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
        from cotdistill.tasks import get_task

        get_task(self.name)
        if not self.labels:
            raise InputError(
                f"task {self.name}: the label set is empty; read it from data with from_examples()"
            )

    @property
    def task(self) -> Task:
        from cotdistill.tasks import get_task

        return get_task(self.name)

    @property
    def metric(self) -> str:
        return self.task.metric

    @property
    def scored_labels(self) -> list[str]:
        """The labels a metric reports: every label but MRE's no-relation one."""
        return [lab for lab in self.labels if self.task.is_scored(lab)]

    @classmethod
    def from_examples(
        cls, task: str, examples: Iterable[Example], extra_labels: Iterable[str] = ()
    ) -> TaskSpec:
        """Collect the label set that the examples' gold answers use (plus ``extra_labels``)."""
        from cotdistill.tasks import get_task

        plugin = get_task(task)
        labels: set[str] = set(extra_labels)
        for ex in examples:
            if ex.task != task:
                raise InputError(f"example {ex.id} is a {ex.task} example, not {task}")
            labels.update(lab for lab in plugin.labels_of(ex.gold) if lab)
        labels, none_label = plugin.complete_labels(labels)
        return cls(name=task, labels=tuple(sorted(labels)), none_label=none_label)

    def answer_schema(self) -> dict:
        """The JSON schema a teacher's or student's answer must follow for this label set."""
        return self.task.answer_schema(list(self.labels))

    def label_descriptions(self) -> dict[str, str]:
        return self.task.label_descriptions(self.labels, self.descriptions)
