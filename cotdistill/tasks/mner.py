"""Multimodal named entity recognition (Twitter-2015, Twitter-2017, Twitter-SNAP, WikiDiverse)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cotdistill.parsing import parse_mner
from cotdistill.records import Answer, EntityAnswer, Example
from cotdistill.tasks.base import Task, json_object


class MNER(Task):
    """Typed entity spans over the post's tokens; scored exact span and type, micro over entities."""

    name = "mner"
    answer_type = EntityAnswer
    metric = "mner_f1"
    student_answer_key = "entities"

    def labels_of(self, answer: Answer):
        return [e.type for e in answer.entities]  # type: ignore[union-attr]

    def items(self, answer: Answer | None) -> set:
        return set() if answer is None else {e.key for e in answer.entities}  # type: ignore[union-attr]

    def answer_schema(self, labels: Sequence[str]) -> dict:
        item = {
            "type": "object",
            "properties": {"text": {"type": "string"}, "type": {"type": "string", "enum": list(labels)}},
            "required": ["text", "type"],
            "additionalProperties": False,
        }
        return json_object("entities", {"type": "array", "items": item})

    def parse(
        self,
        raw: str,
        example: Example,
        labels: Sequence[str],
        none_label: str | None,
        type_map: Mapping[str, str] | None = None,
        unmapped: str = "misc",
    ) -> tuple:
        r = parse_mner(raw, example, labels, unmapped=unmapped, type_map=type_map)
        return r.answer, r.rationale, r.error

    def show(self, example: Example, items: set) -> list[str]:
        return [f"{' '.join(example.tokens[s:e])} [{t}]" for s, e, t in sorted(items)]  # type: ignore[index]

    def spans(self, answer: Answer | None) -> list[tuple[int, int, str]]:
        if answer is None:
            return []
        return sorted({(e.start, e.end, e.type or "") for e in answer.entities})  # type: ignore[union-attr]

    def span_text(self, example: Example, start: int, end: int) -> str:
        if example.tokens is None:
            return example.text[start:end]
        return " ".join(example.tokens[start:end])

    def student_target(self, answer: Answer, example: Example) -> dict:
        return {"entities": [{"text": e.text, "type": e.type} for e in answer.entities]}  # type: ignore[union-attr]


TASK = MNER()
