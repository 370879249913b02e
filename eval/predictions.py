"""Reading prediction files and lining them up with gold.

Two kinds of file are accepted: cotdistill's Prediction JSONL (what teacher and students write), and a file in
the dataset's own native format holding predicted labels (a Twitter CoNLL file with predicted tags, an MNRE
file with predicted relations), which is what most published baselines write. A native file is matched to
gold by order and content; any mismatch is an error, never a silent shift.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cotdistill.errors import InputError, MissingPathError
from cotdistill.readers.common import DataFormatError, ImageResolver
from cotdistill.readers.conll import read_conll
from cotdistill.readers.mnre import read_mnre
from cotdistill.records import Answer, Example, Prediction, RecordError, Usage

NATIVE_READERS = {"mner": read_conll, "mre": read_mnre}


def read_prediction_jsonl(path: str | os.PathLike) -> list[Prediction]:
    """Read Prediction records, one JSON object per line; a bad line is an error naming the line."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append(Prediction.from_dict(json.loads(line)))
            except (
                json.JSONDecodeError,
                RecordError,
                TypeError,
                ValueError,
                KeyError,
                AttributeError,
            ) as err:
                raise DataFormatError(path, lineno, f"not a Prediction record ({err})") from None
            except RecursionError:
                raise DataFormatError(path, lineno, "not a Prediction record (nested too deeply)") from None
    return out


def _looks_like_jsonl(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                return line.lstrip().startswith("{") and '"source"' in line
    return False


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
    """Prediction JSONL, or a native-format file of predicted labels (detected from the content)."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"predictions file {path} does not exist")
    if _looks_like_jsonl(path):
        preds = read_prediction_jsonl(path)
        if source:
            for p in preds:
                p.source = source
        return preds
    return read_native_predictions(path, task, gold, source)


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
        "usage": usage_summary(system),
    }
