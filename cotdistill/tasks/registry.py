"""Task plug-ins by name, the task spec (a task over one dataset's label set), and the functions that
pick a task's own parser or metric by its name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cotdistill.errors import InputError
from cotdistill.records import Answer, Example
from cotdistill.tasks.base import Task
from cotdistill.tasks.mae import TASK as MAE
from cotdistill.tasks.mner import TASK as MNER
from cotdistill.tasks.mre import TASK as MRE

TASK_PLUGINS: dict[str, Task] = {t.name: t for t in (MNER, MRE, MAE)}
METRICS = {name: t.metric for name, t in TASK_PLUGINS.items()}


def get_task(name: str) -> Task:
    """The plug-in of a task by name; an unknown name is an error that lists the known ones."""
    try:
        return TASK_PLUGINS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown task {name!r}; expected one of {', '.join(TASK_PLUGINS)}") from None


def answer_items(task: str, answer: Answer | None) -> set:
    """The scored items of one answer (see ``Task.items``)."""
    return get_task(task).items(answer)


def item_label(task: str, item: tuple) -> str:
    """The type / relation label / attribute an item is counted under."""
    return get_task(task).item_label(item)


def score_answers(task: str, gold: Sequence[Answer], pred: Sequence[Answer | None]) -> dict:
    """Score aligned gold and predicted answers of one task; a None prediction counts as an empty answer."""
    if len(gold) != len(pred):
        raise InputError(f"{len(gold)} gold answers but {len(pred)} predictions")
    return get_task(task).score(gold, pred)


def label_counts(task: str, answers: Iterable[Answer]) -> Counter:
    """How many entities per type, relations per label or values per attribute the answers hold."""
    plugin = get_task(task)
    counts: Counter = Counter()
    for a in answers:
        counts.update(plugin.labels_of(a))
    return counts


def parse_answer(
    task: str,
    raw: str,
    example: Example,
    labels: Sequence[str],
    none_label: str | None = None,
    type_map: Mapping[str, str] | None = None,
    unmapped: str = "misc",
) -> tuple:
    """Any task's parser: ``(answer or None, rationale, error or None)``; never raises on model output.
    ``type_map`` and ``unmapped`` say how an MNER answer's free-text types map to labels (``parse_mner``)."""
    return get_task(task).parse(raw, example, labels, none_label, type_map, unmapped)


@dataclass(slots=True, frozen=True)
class TaskSpec:
    """A task over one dataset's label set.

    Attributes:
        name: ``mner``, ``mre`` or ``mae``.
        labels: entity types (MNER), relation labels including the no-relation one (MRE), or attribute
            names (MAE), sorted.
        none_label: the dataset's no-relation label (MRE only).
        descriptions: optional one-line description per label, for prompts.
        type_map: how a teacher's free-text types map to the labels, learned from labelled posts
            (``parsing.learn_type_map``; MNER only).
        unmapped: what a free-text type that maps to no label becomes: ``misc`` or ``drop`` (MNER only).
    """

    name: str
    labels: tuple[str, ...]
    none_label: str | None = None
    descriptions: dict[str, str] = field(default_factory=dict)
    type_map: dict[str, str] = field(default_factory=dict)  # a teacher's free-text types → labels (MNER)
    unmapped: str = "misc"  # a free-text type that maps to no label: the misc label, or "drop" (MNER)

    def __post_init__(self) -> None:
        get_task(self.name)
        if not self.labels:
            raise InputError(
                f"task {self.name}: the label set is empty; read it from data with from_examples()"
            )

    @property
    def task(self) -> Task:
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
