"""Micro P/R/F1 over relation records ignoring the no-relation label, as a Hugging Face ``evaluate`` module.

Load it offline by path: ``evaluate.load(cotdistill.eval.metric_path("mre_f1"))``.
"""

import datasets
import evaluate

from cotdistill.eval.scoring import re_scores

_DESCRIPTION = (
    "Relation extraction micro P/R/F1: a hit needs prediction == gold != none; precision counts predictions "
    "that are not none, recall gold labels that are not none ('None' and 'none' both mean no relation). "
    "Also accuracy."
)
_KWARGS = """
Args:
    predictions: list of predicted relation labels, one per record.
    references: list of gold relation labels.
Returns:
    precision, recall, f1, accuracy, tp, fp, fn, and per_type (per label).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MreF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        return re_scores(references, predictions)
