"""Multimodal relation extraction (MNRE v1 and v2): the relation between a given head and tail entity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cotdistill.metrics import relation_label_pairs
from cotdistill.parsing import parse_mre
from cotdistill.records import Answer, Example, RelationAnswer
from cotdistill.tasks.base import Task, describe_relation, is_no_relation, json_object


class MRE(Task):
    """One labelled head/tail pair per example; scored micro over relations other than the no-relation
    label, plus accuracy over pairs."""

    name = "mre"
    answer_type = RelationAnswer
    metric = "mre_f1"
    tagger = False
    has_spans = False
    student_answer_key = "relation"

    def labels_of(self, answer: Answer):
        return [r.label for r in answer.relations]  # type: ignore[union-attr]

    def complete_labels(self, labels: set[str]) -> tuple[set[str], str | None]:
        nones = sorted(label for label in labels if is_no_relation(label))
        none_label = nones[0] if nones else "None"
        return labels | {none_label}, none_label

    def is_scored(self, label: str) -> bool:
        return not is_no_relation(label)

    def items(self, answer: Answer | None) -> set:
        if answer is None:
            return set()
        return {
            ((r.head.start, r.head.end), (r.tail.start, r.tail.end), r.label)
            for r in answer.relations  # type: ignore[union-attr]
            if not is_no_relation(r.label)
        }

    def score(self, gold: Sequence[Answer], pred: Sequence[Answer | None]) -> dict:
        out = super().score(gold, pred)
        pairs = [pair for g, p in zip(gold, pred, strict=True) for pair in relation_label_pairs(g, p)]  # type: ignore[arg-type]
        hits = sum((is_no_relation(g) and is_no_relation(p)) or g == p for g, p in pairs)
        out["accuracy"] = hits / len(pairs) if pairs else 0.0
        return out

    def answer_schema(self, labels: Sequence[str]) -> dict:
        return json_object("relation", {"type": "string", "enum": list(labels)})

    def parse(
        self,
        raw: str,
        example: Example,
        labels: Sequence[str],
        none_label: str | None,
        type_map: Mapping[str, str] | None = None,
        unmapped: str = "misc",
    ) -> tuple:
        return parse_mre(raw, example, labels, none_label or "None")

    def label_descriptions(self, labels: Sequence[str], given: dict[str, str]) -> dict[str, str]:
        return {label: given.get(label, describe_relation(label)) for label in labels}

    def show(self, example: Example, items: set) -> list[str]:
        return [label for _, _, label in sorted(items)] or ["None"]

    def student_target(self, answer: Answer, example: Example) -> dict:
        rels = answer.relations  # type: ignore[union-attr]
        return {"relation": rels[0].label if rels else "None"}


TASK = MRE()
