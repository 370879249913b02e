"""Multimodal attribute extraction (MEPAVE, MAE): attribute values of a product, found in its text."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from cotdistill.metrics import mae_scores
from cotdistill.parsing import parse_mae
from cotdistill.records import Answer, AttributeAnswer, Example
from cotdistill.tasks.base import Task, json_object, value_key


class MAE(Task):
    """Attribute values with their character spans; top-level scores are value extraction (attribute,
    value and span), ``attribute`` holds attribute prediction."""

    name = "mae"
    answer_type = AttributeAnswer
    metric = "mae_f1"
    unit = "characters"
    student_answer_key = "values"

    def labels_of(self, answer: Answer):
        return [v.attribute for v in answer.values]  # type: ignore[union-attr]

    def items(self, answer: Answer | None) -> set:
        return set() if answer is None else {value_key(v) for v in answer.values}  # type: ignore[union-attr]

    def item_label(self, item: tuple) -> str:
        return item[0]

    def score(self, gold: Sequence[Answer], pred: Sequence[Answer | None]) -> dict:
        return mae_scores(
            [g.values for g in gold],  # type: ignore[union-attr]
            [p.values if isinstance(p, AttributeAnswer) else () for p in pred],
        )

    def answer_schema(self, labels: Sequence[str]) -> dict:
        item = {
            "type": "object",
            "properties": {
                "attribute": {"type": "string", "enum": list(labels)},
                "value": {"type": "string"},
            },
            "required": ["attribute", "value"],
            "additionalProperties": False,
        }
        return json_object("values", {"type": "array", "items": item})

    def parse(
        self,
        raw: str,
        example: Example,
        labels: Sequence[str],
        none_label: str | None,
        type_map: Mapping[str, str] | None = None,
        unmapped: str = "misc",
    ) -> tuple:
        return parse_mae(raw, example, labels)

    def show(self, example: Example, items: set) -> list[str]:
        return [f"{a}={v}" for a, v, _, _ in sorted(items, key=str)]

    def spans(self, answer: Answer | None) -> list[tuple[int, int, str]]:
        if answer is None:
            return []
        return sorted({(v.start, v.end, v.attribute) for v in answer.values if v.start is not None})  # type: ignore[union-attr]

    def student_units(self, example: Example) -> tuple[tuple[str, ...], list[tuple[int, int]] | None]:
        """Per character when the text has no spaces (Chinese product texts), else per word or mark."""
        text = example.text
        if not any(c.isspace() for c in text):
            return tuple(text), [(i, i + 1) for i in range(len(text))]
        found = [(m.group(), (m.start(), m.end())) for m in re.finditer(r"\w+|[^\w\s]", text)]
        return tuple(t for t, _ in found), [o for _, o in found]

    def student_target(self, answer: Answer, example: Example) -> dict:
        return {"values": [{"attribute": v.attribute, "value": v.value} for v in answer.values]}  # type: ignore[union-attr]


TASK = MAE()
