"""The metrics the field reports for multimodal IE: one implementation for the knowledge filter, both
students' dev scoring and the evaluation.

* MNER: entity-level micro P/R/F1 and per type, exact span and type. From tags, with conlleval semantics
  (seqeval's default mode) or strict IOB2; or from span sets, so answers aligned to spans score the same way.
* MRE: micro P/R/F1 over records ignoring the no-relation label, plus accuracy.
* MAE: attribute-prediction micro F1 and value-extraction micro F1 (attribute + exact value span).

Every function returns a dict with ``precision``, ``recall`` and ``f1`` (fractions) at the top level.
Which items an answer holds is the task plug-in's to say (``cotdistill.tasks``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from cotdistill.errors import InputError
from cotdistill.records import RelationAnswer, is_no_relation, value_key
from cotdistill.tags import tags_to_spans


@dataclass(slots=True)
class Counts:
    """True positives, false positives and false negatives, and the scores they give."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def to_dict(self) -> dict:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "support": self.tp + self.fn,
        }


def set_scores(
    gold: Iterable[Iterable[Hashable]], pred: Iterable[Iterable[Hashable]], group=lambda item: None
) -> dict:
    """Micro P/R/F1 over per-example sets of items, plus per group (``group(item)``, e.g. the type).

    ``gold`` and ``pred`` are aligned lists (one entry per example); each entry's items are compared as a
    set, so an item predicted twice counts once.
    """
    total = Counts()
    groups: dict = {}
    n = 0
    for g_items, p_items in zip(gold, pred, strict=True):
        n += 1
        g, p = set(g_items), set(p_items)
        for item, kind in (
            [(x, "tp") for x in g & p] + [(x, "fp") for x in p - g] + [(x, "fn") for x in g - p]
        ):
            c = groups.setdefault(group(item), Counts())
            setattr(c, kind, getattr(c, kind) + 1)
            setattr(total, kind, getattr(total, kind) + 1)
    out = total.to_dict()
    out["examples"] = n
    if any(k is not None for k in groups):
        out["per_type"] = {k: groups[k].to_dict() for k in sorted(groups, key=str)}
    return out


def span_scores(gold: Sequence[Iterable[tuple]], pred: Sequence[Iterable[tuple]]) -> dict:
    """Entity-level scores from per-example ``(start, end, type)`` span sets."""
    return set_scores(gold, pred, group=lambda item: item[2])


def ner_scores(
    gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]], mode: str = "conlleval"
) -> dict:
    """Entity-level scores from tag sequences (``mode``: ``conlleval`` or ``strict``, see cotdistill.tags)."""
    if len(gold_tags) != len(pred_tags):
        raise InputError(f"{len(gold_tags)} gold sequences but {len(pred_tags)} predicted ones")
    for i, (g, p) in enumerate(zip(gold_tags, pred_tags, strict=False)):
        if len(g) != len(p):
            raise InputError(f"sequence {i}: {len(g)} gold tags but {len(p)} predicted tags")
    out = span_scores(
        [tags_to_spans(t, mode) for t in gold_tags], [tags_to_spans(t, mode) for t in pred_tags]
    )
    out["mode"] = mode
    return out


def re_scores(gold_labels: Sequence[str | None], pred_labels: Sequence[str | None]) -> dict:
    """Relation scores over records: a hit needs pred == gold != none; precision counts predicted
    relations that are not none, recall gold relations that are not none."""
    if len(gold_labels) != len(pred_labels):
        raise InputError(f"{len(gold_labels)} gold labels but {len(pred_labels)} predicted ones")
    gold_sets = [[] if is_no_relation(g) else [(i, g)] for i, g in enumerate(gold_labels)]
    pred_sets = [[] if is_no_relation(p) else [(i, p)] for i, p in enumerate(pred_labels)]
    out = set_scores(gold_sets, pred_sets, group=lambda item: item[1])
    correct = sum(
        (is_no_relation(g) and is_no_relation(p)) or g == p
        for g, p in zip(gold_labels, pred_labels, strict=False)
    )
    out["accuracy"] = correct / len(gold_labels) if gold_labels else 0.0
    return out


def mae_scores(gold: Sequence[Iterable], pred: Sequence[Iterable]) -> dict:
    """Attribute-value scores from per-example lists of AttributeValue.

    The top-level numbers are value extraction (attribute, value and span must all match; a value without
    a span matches on attribute and value); ``attribute`` holds attribute-prediction scores.
    """
    gold, pred = [list(g) for g in gold], [list(p) for p in pred]
    values = set_scores(
        [[value_key(v) for v in g] for g in gold],
        [[value_key(v) for v in p] for p in pred],
        group=lambda k: k[0],
    )
    attrs = set_scores(
        [[v.attribute for v in g] for g in gold], [[v.attribute for v in p] for p in pred], group=lambda k: k
    )
    attrs.pop("per_type", None)
    values["attribute"] = attrs
    return values


def relation_label_pairs(gold: RelationAnswer, pred: RelationAnswer | None) -> list[tuple[str, str | None]]:
    """(gold label, predicted label) for each gold head/tail pair; None where the pair was not predicted."""
    predicted = {
        ((r.head.start, r.head.end), (r.tail.start, r.tail.end)): r.label
        for r in (pred.relations if pred else ())
    }
    return [
        (r.label, predicted.get(((r.head.start, r.head.end), (r.tail.start, r.tail.end))))
        for r in gold.relations
    ]


def set_f1(gold: set, pred: set) -> float:
    """F1 of one predicted item set against one gold set; two empty sets agree perfectly."""
    if not gold and not pred:
        return 1.0
    c = Counts(tp=len(gold & pred), fp=len(pred - gold), fn=len(gold - pred))
    return c.f1
