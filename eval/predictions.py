"""Reading prediction files and lining them up with gold.

Two kinds of file are accepted: cotdistill's Prediction JSONL (what teacher and students write), and a file in
the dataset's own native format holding predicted labels (a Twitter CoNLL file with predicted tags, an MNRE
file with predicted relations), which is what most published baselines write. A native file is matched to
gold by order and content; any mismatch is an error, never a silent shift.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cotdistill.errors import InputError, MissingPathError
from cotdistill.readers.common import DataFormatError, ImageResolver, read_text
from cotdistill.readers.conll import read_conll
from cotdistill.readers.mnre import read_mnre
from cotdistill.records import (
    Answer,
    AttributeAnswer,
    EntityAnswer,
    Example,
    Prediction,
    RecordError,
    Usage,
)
from cotdistill.tasks import get_task

logger = logging.getLogger(__name__)

NATIVE_READERS = {"mner": read_conll, "mre": read_mnre}


_BAD_RECORD = (json.JSONDecodeError, RecordError, TypeError, ValueError, KeyError, AttributeError)


def _numbered_predictions(path: str | os.PathLike, text: str) -> list[tuple[int, Prediction]]:
    """Each Prediction record with its line number; a bad line is an error naming the line."""
    out = []
    # Lines end at "\n", "\r\n" or "\r" (as a file opened in text mode reads them), never at U+2028:
    # JSON strings may hold that as it is.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append((lineno, Prediction.from_dict(json.loads(line))))
        except _BAD_RECORD as err:
            raise DataFormatError(path, lineno, f"not a Prediction record ({err})") from None
        except RecursionError:
            raise DataFormatError(path, lineno, "not a Prediction record (nested too deeply)") from None
    return out


def read_prediction_jsonl(path: str | os.PathLike) -> list[Prediction]:
    """Read Prediction records, one JSON object per line; a bad line is an error naming the line."""
    return [p for _, p in _numbered_predictions(path, read_text(path))]


def _looks_like_jsonl(text: str) -> bool:
    for line in text.split("\n"):
        if line.strip():
            return line.lstrip().startswith("{") and '"source"' in line
    return False


def _span_problem(answer: Answer, example: Example) -> str | None:
    """What points past the example's post in an answer: a token span past its tokens (MNER, MRE), a
    character span past its text (MAE); None when every span lies inside."""
    if isinstance(answer, AttributeAnswer):
        n = len(example.text)
        bad = next((v for v in answer.values if v.end is not None and v.end > n), None)
        return (
            None
            if bad is None
            else f"value {bad.value!r} [{bad.start}, {bad.end}) ends past the {n} characters"
        )
    n = len(example.tokens) if example.tokens is not None else None
    if n is None:
        return None
    if isinstance(answer, EntityAnswer):
        spans = [("entity", e) for e in answer.entities]
    else:
        spans = [(role, e) for r in answer.relations for role, e in (("head", r.head), ("tail", r.tail))]
    bad = next(((role, e) for role, e in spans if e.end > n), None)
    if bad is None:
        return None
    role, e = bad
    return f"{role} {e.text!r} [{e.start}, {e.end}) ends past the post's {n} tokens"


def _check_answers(
    path: str | os.PathLike, task: str, gold: list[Example], numbered: list[tuple[int, Prediction]]
) -> None:
    """Every answer is of the task, and every span lies inside the post it answers (ids that are not in
    gold are left to ``align``, which reports them)."""
    answer_type = get_task(task).answer_type
    by_id = {ex.id: ex for ex in gold}
    for lineno, p in numbered:
        if p.answer is None:
            continue
        if not isinstance(p.answer, answer_type):
            raise DataFormatError(
                path, lineno, f"example {p.id}: a {p.answer.task} answer; expected {task} answers"
            )
        example = by_id.get(p.id)
        problem = _span_problem(p.answer, example) if example is not None else None
        if problem is not None:
            raise DataFormatError(
                path, lineno, f"example {p.id}: {problem}; a prediction must point into the post it answers"
            )


def _label_check(task: str, gold: list[Example]):
    """A function giving the labels of an answer that the gold answers never use (MRE's no-relation
    labels excepted: no metric scores them)."""
    plugin = get_task(task)
    known, _ = plugin.complete_labels({lab for ex in gold for lab in plugin.labels_of(ex.gold) if lab})

    def unknown(answer: Answer | None) -> list:
        if answer is None or not isinstance(answer, plugin.answer_type):
            return []
        return [lab for lab in plugin.labels_of(answer) if lab not in known and plugin.is_scored(lab)]

    return unknown


def unknown_labels(task: str, gold: list[Example], answers: list[Answer | None]) -> Counter:
    """How often each label that the gold answers never use is predicted."""
    unknown = _label_check(task, gold)
    return Counter(label for answer in answers for label in unknown(answer))


def _note_unknown_labels(
    path: str | os.PathLike, task: str, gold: list[Example], numbered: list[tuple[int | None, Prediction]]
) -> None:
    """Log the predicted labels that the gold answers never use, with the first line holding one. They
    stay in the predictions and score as wrong (dropping them would raise precision for a wrong answer);
    ``system_metrics`` counts them."""
    unknown = _label_check(task, gold)
    counts: Counter = Counter()
    first = None
    for lineno, p in numbered:
        labels = unknown(p.answer)
        if labels and not counts:
            first = lineno
        counts.update(labels)
    if not counts:
        return
    logger.warning(
        "%s%s: %d predicted labels are not in the gold label set (%s); they are scored as wrong. "
        "Check that the file uses the dataset's label names",
        path,
        f":{first}" if first is not None else "",
        sum(counts.values()),
        ", ".join(f"{label!r} x{n}" for label, n in counts.most_common(5)),
    )


def read_native_predictions(
    path: str | os.PathLike, task: str, gold: list[Example], source: str | None = None
) -> list[Prediction]:
    """Read predicted labels written in the dataset's native format and match them to ``gold`` in order."""
    if task not in NATIVE_READERS:
        raise DataFormatError(
            path, None, f"no native prediction format for {task}; write Prediction JSONL instead"
        )
    predicted = NATIVE_READERS[task](path, split="predictions", images=ImageResolver(None))
    if len(predicted) != len(gold):
        raise DataFormatError(
            path,
            None,
            f"{len(predicted)} predicted examples but {len(gold)} gold ones; the file must hold the whole split in order",
        )
    source = source or Path(path).stem
    out = []
    for k, (p, g) in enumerate(zip(predicted, gold, strict=True)):
        if p.tokens != g.tokens:
            where = p.meta.get("line")
            raise DataFormatError(
                path,
                where,
                f"example {k} does not match gold example {g.id} (tokens differ); predictions must follow the gold file's order",
            )
        if task == "mre":
            gr, pr = g.gold.relations[0], p.gold.relations[0]  # type: ignore[union-attr]
            if (gr.head.start, gr.head.end, gr.tail.start, gr.tail.end) != (
                pr.head.start,
                pr.head.end,
                pr.tail.start,
                pr.tail.end,
            ):
                raise DataFormatError(
                    path, p.meta.get("line"), f"example {k}: head/tail spans differ from gold example {g.id}"
                )
        raw = " ".join(p.meta["tags"]) if "tags" in p.meta else p.gold.relations[0].label  # type: ignore[union-attr]
        out.append(Prediction(g.id, source, p.gold, raw=raw))
    return out


def read_predictions(
    path: str | os.PathLike, task: str, gold: list[Example], source: str | None = None
) -> list[Prediction]:
    """Prediction JSONL, or a native-format file of predicted labels (detected from the content).

    An answer of another task or a span past its post is an error naming the file and line; a label
    the gold answers never use is logged and counted (``system_metrics``), and scored as wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"predictions file {path} does not exist")
    text = read_text(path)
    if _looks_like_jsonl(text):
        numbered: list[tuple[int | None, Prediction]] = list(_numbered_predictions(path, text))
        _check_answers(path, task, gold, numbered)
        preds = [p for _, p in numbered]
        if source:
            for p in preds:
                p.source = source
    else:
        preds = read_native_predictions(path, task, gold, source)
        numbered = [(None, p) for p in preds]
    _note_unknown_labels(path, task, gold, numbered)
    return preds


@dataclass(slots=True)
class Aligned:
    """One system's predictions lined up with gold: ``answers[i]`` is for ``gold[i]`` (None = no answer)."""

    source: str
    answers: list[Answer | None]
    predictions: list[Prediction | None]
    missing: int = 0
    parse_failures: int = 0
    unknown_ids: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        n = len(self.answers)
        return (n - self.missing) / n if n else 0.0


def align(gold: list[Example], predictions: list[Prediction], source: str | None = None) -> Aligned:
    """Line predictions up with gold by id. Missing examples count as empty answers; ids that are not in
    gold are reported; an id predicted twice is an error."""
    by_id: dict[str, Prediction] = {}
    for p in predictions:
        if p.id in by_id:
            raise InputError(
                f"example {p.id} is predicted twice in {source or p.source}; keep one prediction per example"
            )
        by_id[p.id] = p
    gold_ids = {ex.id for ex in gold}
    unknown = [i for i in by_id if i not in gold_ids]
    preds = [by_id.get(ex.id) for ex in gold]
    answers = [p.answer if p is not None else None for p in preds]
    missing = sum(p is None for p in preds)
    failures = sum(p is not None and p.answer is None for p in preds)
    name = source or (predictions[0].source if predictions else "empty")
    return Aligned(name, answers, preds, missing, failures, unknown)


def usage_summary(aligned: Aligned) -> dict | None:
    """Tokens and seconds per example, examples per second — when the predictions carry usage."""
    usages: list[Usage] = [p.usage for p in aligned.predictions if p is not None and p.usage is not None]
    if not usages:
        return None
    n = len(usages)
    seconds = sum(u.seconds for u in usages)
    tokens = sum(u.prompt_tokens + u.completion_tokens for u in usages)
    return {
        "examples_with_usage": n,
        "prompt_tokens_per_example": sum(u.prompt_tokens for u in usages) / n,
        "completion_tokens_per_example": sum(u.completion_tokens for u in usages) / n,
        "tokens_per_example": tokens / n,
        "seconds_per_example": seconds / n,
        "examples_per_second": n / seconds if seconds > 0 else None,
    }


def system_metrics(task: str, gold: list[Example], system: Aligned) -> dict:
    """One system's scores and accounting against gold (what ``cotdistill evaluate`` writes)."""
    from cotdistill.eval.scoring import score_answers

    scores = score_answers(task, [ex.gold for ex in gold], system.answers)
    return {
        "source": system.source,
        "precision": scores["precision"],
        "recall": scores["recall"],
        "f1": scores["f1"],
        **{k: scores[k] for k in ("accuracy", "tp", "fp", "fn") if k in scores},
        "per_type": scores.get("per_type", {}),
        **({"attribute": scores["attribute"]} if "attribute" in scores else {}),
        "examples": len(gold),
        "coverage": system.coverage,
        "missing": system.missing,
        "parse_failures": system.parse_failures,
        "parse_failure_rate": system.parse_failures / len(gold) if gold else 0.0,
        "unknown_ids": len(system.unknown_ids),
        "unknown_labels": sum(unknown_labels(task, gold, system.answers).values()),
        "usage": usage_summary(system),
    }
