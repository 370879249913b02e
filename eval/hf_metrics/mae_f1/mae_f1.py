"""Attribute-value extraction scores, as a Hugging Face ``evaluate`` module.

Load it offline by path: ``evaluate.load(cotdistill.eval.metric_path("mae_f1"))``.
"""

import datasets
import evaluate

from cotdistill.eval.scoring import mae_scores
from cotdistill.records import AttributeValue

_DESCRIPTION = (
    "Value extraction micro P/R/F1 (attribute, value and character span must match) at the top level, and "
    "attribute prediction micro P/R/F1 under 'attribute'."
)
_KWARGS = """
Args:
    predictions: per example, a list of {"attribute", "value", "start", "end"} (start/end may be null).
    references: the gold values in the same form.
Returns:
    precision, recall, f1 (value extraction), per_type (per attribute), and attribute (attribute prediction).
"""

_VALUE = {
    "attribute": datasets.Value("string"),
    "value": datasets.Value("string"),
    "start": datasets.Value("int64"),
    "end": datasets.Value("int64"),
}


def _values(rows):
    return [AttributeValue(r["attribute"], r["value"], r["start"], r["end"]) for r in rows]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MaeF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.List(_VALUE), "references": datasets.List(_VALUE)}
            ),
        )

    def _compute(self, predictions, references):
        return mae_scores([_values(r) for r in references], [_values(p) for p in predictions])
