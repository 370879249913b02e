"""The metrics, as the evaluation package names them; they live in the core (``cotdistill.metrics``)."""

from cotdistill.metrics import (
    Counts,
    label_counts,
    mae_scores,
    ner_scores,
    re_scores,
    relation_label_pairs,
    score_answers,
    set_f1,
    set_scores,
    span_scores,
)

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
