"""What every task plug-in provides, and the task spec (a task over one dataset's label set).

A task's behaviour lives in its own module (``mner``, ``mre``, ``mae``): its answers' items and labels,
the answer schema, the parser of free model output, the metric, and the hooks the students featurise
with. Adding a task means one module here plus a reader.

A spec's label set comes from the data (Twitter-2015 says ``OTHER`` where Twitter-2017 says ``MISC``; MNRE
v2 writes ``None`` where v1 writes ``none``), so one spec type serves every dataset of a task.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from cotdistill.errors import InputError
from cotdistill.metrics import set_scores
from cotdistill.records import Answer, Example, is_no_relation, value_key  # noqa: F401  (re-exported)

DEFAULT_DESCRIPTIONS = {
    "PER": "names of people, including @handles of people and fictional characters",
    "LOC": "names of places: countries, cities, regions, landmarks, venues",
    "ORG": "names of organisations: companies, teams, bands, parties, institutions, media",
    "OTHER": "other named things: events, products, works, brands, hashtag topics",
    "MISC": "other named things: events, products, works, nationalities, hashtag topics",
    "Person": "people",
    "Organization": "organisations",
    "Location": "places",
    "Country": "countries",
    "Event": "named events",
    "Works": "creative works",
    "Misc": "other named things",
}


def describe_relation(label: str) -> str:
    """A readable gloss of an MNRE-style label: ``/per/org/member_of`` -> ``person -> organisation: member of``."""
    kinds = {"per": "person", "org": "organisation", "loc": "location", "misc": "other"}
    parts = [p for p in label.split("/") if p]
    if len(parts) == 3:
        return f"{kinds.get(parts[0], parts[0])} -> {kinds.get(parts[1], parts[1])}: {parts[2].replace('_', ' ')}"
    if label.strip().lower() == "none":
        return "no relation between the two entities"
    return label.replace("_", " ")


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
        return set_scores([self.items(g) for g in gold], [self.items(p) for p in pred], group=self.item_label)

    def answer_schema(self, labels: Sequence[str]) -> dict:
        raise NotImplementedError

    def parse(
        self,
        raw: str,
        example: Example,
        labels: Sequence[str],
        none_label: str | None,
        type_map: Mapping[str, str] | None = None,
        unmapped: str = "misc",
    ) -> tuple:
        """``(answer or None, rationale, error or None)`` from free model output; never raises. An MNER
        parser reads ``type_map`` and ``unmapped`` (how free-text types map to labels, see ``parse_mner``)."""
        raise NotImplementedError

    def label_descriptions(self, labels: Sequence[str], given: dict[str, str]) -> dict[str, str]:
        """One-line gloss of each label for prompts (``given`` overrides)."""
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
