"""Scoring: metrics, teacher-versus-student comparison and reports. Imports only the core."""

from __future__ import annotations

from pathlib import Path

from cotdistill.errors import InputError
from cotdistill.eval.scoring import (
    Counts,
    label_counts,
    mae_scores,
    ner_scores,
    re_scores,
    score_answers,
    set_scores,
    span_scores,
)

__all__ = [
    "HF_METRICS",
    "Counts",
    "label_counts",
    "mae_scores",
    "metric_path",
    "ner_scores",
    "re_scores",
    "score_answers",
    "set_scores",
    "span_scores",
]

HF_METRICS = ("mner_f1", "mre_f1", "mae_f1")


def metric_path(name: str) -> str:
    """Path of a shipped ``evaluate`` module, for ``evaluate.load(path)`` without network access."""
    if name not in HF_METRICS:
        raise InputError(f"unknown metric {name!r}; expected one of {', '.join(HF_METRICS)}")
    return str(Path(__file__).parent / "hf_metrics" / name / f"{name}.py")
