"""Entity-level micro P/R/F1 for multimodal NER, as a Hugging Face ``evaluate`` module.

Load it offline by path: ``evaluate.load(cotdistill.eval.metric_path("mner_f1"))``.
"""

import datasets
import evaluate

from cotdistill.eval.scoring import ner_scores

_DESCRIPTION = "Entity-level micro precision, recall and F1 (exact span and type), overall and per type."
_KWARGS = """
Args:
    predictions: list of predicted tag sequences (IOB1, IOB2 or IOBES).
    references: list of gold tag sequences, aligned with predictions.
    mode: "conlleval" (default; an orphan I- starts an entity, as seqeval's default mode) or "strict" (IOB2).
Returns:
    precision, recall, f1 (fractions), tp, fp, fn, and per_type.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MnerF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions, references, mode="conlleval"):
        return ner_scores(references, predictions, mode=mode)
