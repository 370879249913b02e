"""The metrics, as the evaluation package names them; they live in the core (``cotdistill.metrics``, and ``cotdistill.tasks`` for the ones that pick a task by name)."""

from cotdistill.metrics import (
    Counts,
    mae_scores,
    ner_scores,
    re_scores,
    relation_label_pairs,
    set_f1,
    set_scores,
    span_scores,
)
from cotdistill.tasks import label_counts, score_answers

__all__ = [
    "Counts",
    "label_counts",
    "mae_scores",
    "ner_scores",
    "re_scores",
    "relation_label_pairs",
    "score_answers",
    "set_f1",
    "set_scores",
    "span_scores",
]
