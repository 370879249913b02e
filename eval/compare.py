"""Teacher versus student (versus baselines) on one test set: bootstrap confidence intervals, paired
significance, per-label tables, agreement, the most instructive disagreements, cost, learning curves.

Everything here works on systems already lined up with gold (``predictions.align``), so any prediction
file can be compared, whatever produced it.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

import numpy as np

from cotdistill.errors import InputError
from cotdistill.eval.predictions import Aligned, usage_summary
from cotdistill.eval.scoring import relation_label_pairs, score_answers
from cotdistill.records import Example
from cotdistill.tasks import answer_items, get_task, is_no_relation, item_label


@dataclass(slots=True)
class CountTable:
    """Per-example true positive / false positive / false negative counts, overall and per label.

    ``counts`` has shape (examples, 3 * (1 + labels)): columns [tp, fp, fn] overall, then per label.
    """

    labels: list[str]
    counts: np.ndarray


def count_table(task: str, gold: list[Example], system: Aligned, labels: list[str]) -> CountTable:
    index = {label: k for k, label in enumerate(labels)}
    counts = np.zeros((len(gold), 3 * (1 + len(labels))), dtype=np.float64)
    for i, (ex, answer) in enumerate(zip(gold, system.answers, strict=True)):
        g, p = answer_items(task, ex.gold), answer_items(task, answer)
        for items, col in ((g & p, 0), (p - g, 1), (g - p, 2)):
            counts[i, col] += len(items)
            for item in items:
                k = index.get(item_label(task, item))
                if k is not None:
                    counts[i, 3 * (1 + k) + col] += 1
    return CountTable(labels, counts)


def _prf(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return p, r, f


def _ci(draws: np.ndarray) -> list[float]:
    return [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]


def bootstrap(tables: dict[str, CountTable], resamples: int = 1000, seed: int = 0, chunk: int = 100) -> dict:
    """Seeded bootstrap over examples, the same resamples for every system (so differences are paired).

    Returns per system: 95% intervals of P/R/F1 overall and F1 per label; per pair of systems: the F1
    difference, its 95% interval, and a two-sided p-value, ``(#{|d* - d| >= |d|} + 1) / (B + 1)``.
    """
    if resamples < 1:
        raise InputError("resamples must be at least 1")
    names = list(tables)
    n = tables[names[0]].counts.shape[0]
    rng = np.random.default_rng(seed)
    stacked = np.concatenate([tables[s].counts for s in names], axis=1) if n else np.zeros((0, 0))
    widths = [tables[s].counts.shape[1] for s in names]
    sums = np.zeros((resamples, stacked.shape[1]))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(b, n)) if n else np.zeros((b, 0), dtype=int)
        weights = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(np.float64)
        sums[start : start + b] = weights @ stacked
    f1_draws: dict[str, np.ndarray] = {}
    out: dict = {"resamples": resamples, "seed": seed, "systems": {}, "pairs": []}
    col = 0
    for name, width in zip(names, widths, strict=True):
        block = sums[:, col : col + width].reshape(resamples, -1, 3)
        col += width
        p, r, f = _prf(block)
        f1_draws[name] = f[:, 0]
        out["systems"][name] = {
            "precision_ci": _ci(p[:, 0]),
            "recall_ci": _ci(r[:, 0]),
            "f1_ci": _ci(f[:, 0]),
            "per_label_f1_ci": {label: _ci(f[:, 1 + k]) for k, label in enumerate(tables[name].labels)},
        }
    observed = {s: float(_prf(tables[s].counts.sum(0)[:3])[2]) for s in names}
    # one sign everywhere: F1(b) − F1(a), the later system minus the earlier one (the reference, the teacher,
    # comes first): "student − teacher", positive when the student scores higher
    for a, b in itertools.combinations(names, 2):
        d_obs = observed[b] - observed[a]
        d = f1_draws[b] - f1_draws[a]
        extreme = int(np.sum(np.abs(d - d_obs) >= abs(d_obs) - 1e-12))
        out["pairs"].append(
            {
                "a": a,
                "b": b,
                "f1_difference": d_obs,
                "difference": f"F1({b}) − F1({a})",
                "difference_ci": _ci(d),
                "p_value": (extreme + 1) / (resamples + 1),
            }
        )
    return out


_CELLS = {
    (True, True): "both_right",
    (True, False): "only_a_right",
    (False, True): "only_b_right",
    (False, False): "both_wrong",
}


def agreement(task: str, gold: list[Example], a: Aligned, b: Aligned) -> dict:
    """Over the gold items: both right, only A right, only B right, both wrong; plus each one's spurious
    items (predicted, not gold) and how many of those they share."""
    counts = Counter()
    for ex, pa, pb in zip(gold, a.answers, b.answers, strict=True):
        g, sa, sb = answer_items(task, ex.gold), answer_items(task, pa), answer_items(task, pb)
        for item in g:
            counts[_CELLS[(item in sa, item in sb)]] += 1
        counts["a_spurious"] += len(sa - g)
        counts["b_spurious"] += len(sb - g)
        counts["shared_spurious"] += len((sa & sb) - g)
    keys = (
        "both_right",
        "only_a_right",
        "only_b_right",
        "both_wrong",
        "a_spurious",
        "b_spurious",
        "shared_spurious",
    )
    return {"a": a.source, "b": b.source, **{k: counts[k] for k in keys}}


def _show(task: str, ex: Example, items: set) -> list[str]:
    return get_task(task).show(ex, items)


def instructive_examples(task: str, gold: list[Example], a: Aligned, b: Aligned, limit: int = 20) -> dict:
    """The examples behind "A right, B wrong" and "B right, A wrong", most disagreements first (then
    fewest other errors, then id), with text, image id, gold, both answers and A's rationale."""
    rows = {"a_right_b_wrong": [], "b_right_a_wrong": []}
    for ex, pa, pb, preda, predb in zip(
        gold, a.answers, b.answers, a.predictions, b.predictions, strict=True
    ):
        g, sa, sb = answer_items(task, ex.gold), answer_items(task, pa), answer_items(task, pb)
        only_a, only_b = (g & sa) - sb, (g & sb) - sa
        for key, diff, other_errors in (
            ("a_right_b_wrong", only_a, len(sa - g)),
            ("b_right_a_wrong", only_b, len(sb - g)),
        ):
            if diff:
                rows[key].append(
                    (
                        -len(diff),
                        other_errors,
                        ex.id,
                        {
                            "id": ex.id,
                            "text": ex.text,
                            "image_id": ex.meta.get("image_id"),
                            "image": ex.image,
                            "gold": _show(task, ex, g),
                            "a_answer": _show(task, ex, sa) if pa is not None else ["(no answer)"],
                            "b_answer": _show(task, ex, sb) if pb is not None else ["(no answer)"],
                            "disagreements": _show(task, ex, diff),
                            "a_rationale": preda.rationale if preda is not None else None,
                            "b_rationale": predb.rationale if predb is not None else None,
                        },
                    )
                )
    return {k: [r[3] for r in sorted(v, key=lambda r: r[:3])[:limit]] for k, v in rows.items()}


ERROR_KINDS = ("correct", "wrong_type", "boundary", "boundary_and_type", "spurious", "missed")


def _spans(task: str, answer) -> list[tuple[int, int, str]]:
    """(start, end, type) of each span an answer predicts (see ``Task.spans``)."""
    return get_task(task).spans(answer) or []


def error_breakdown(task: str, gold: list[Example], system: Aligned, examples_per_kind: int = 5) -> dict:
    """The IE error kinds of one system's spans (MNER entities, MAE values), as information-extraction
    evaluations break them down (Chinchor and Sundheim's MUC categories):

    - ``correct``: span and type exact;
    - ``wrong_type``: the exact span of a gold item, another type;
    - ``boundary``: overlaps a gold item of the same type, other boundaries;
    - ``boundary_and_type``: overlaps a gold item of another type, other boundaries;
    - ``spurious``: overlaps no gold item;
    - ``missed``: a gold item no prediction overlaps.

    A prediction is matched to the gold item it overlaps most (exact first). Also: ``confusion`` (gold type
    → predicted type, over wrong_type and boundary_and_type) and a few examples of each kind.
    """
    counts: Counter = Counter()
    confusion: Counter = Counter()
    shown: dict[str, list] = {k: [] for k in ERROR_KINDS if k != "correct"}
    for ex, answer in zip(gold, system.answers, strict=True):
        g, pred = _spans(task, ex.gold), _spans(task, answer)
        touched: set = set()
        for ps, pe, pt in pred:
            overlapping = [(gs, ge, gt) for gs, ge, gt in g if ps < ge and gs < pe]
            best = max(
                overlapping,
                key=lambda x: ((x[0], x[1]) == (ps, pe), min(pe, x[1]) - max(ps, x[0])),
                default=None,
            )
            if best is None:
                kind = "spurious"
            else:
                touched.update(overlapping)
                exact, same = (best[0], best[1]) == (ps, pe), best[2] == pt
                kind = (
                    ("correct" if same else "wrong_type")
                    if exact
                    else ("boundary" if same else "boundary_and_type")
                )
                if not same:
                    confusion[(best[2], pt)] += 1
            counts[kind] += 1
            if kind != "correct" and len(shown[kind]) < examples_per_kind:
                shown[kind].append(_error_row(task, ex, (ps, pe, pt), best, answer))
        for item in g:
            if item not in touched:
                counts["missed"] += 1
                if len(shown["missed"]) < examples_per_kind:
                    shown["missed"].append(_error_row(task, ex, None, item, answer))
    types = sorted({t for pair in confusion for t in pair})
    return {
        **{k: counts[k] for k in ERROR_KINDS},
        "confusion": {"types": types, "matrix": [[confusion[(a, b)] for b in types] for a in types]},
        "examples": shown,
    }


def _surface(task: str, ex: Example, span: tuple[int, int, str]) -> str:
    s, e, t = span
    text = get_task(task).span_text(ex, s, e)
    return f"{text} [{t}]"


def _error_row(task: str, ex: Example, pred: tuple | None, gold_item: tuple | None, answer) -> dict:
    return {
        "id": ex.id,
        "text": ex.text,
        "predicted": _surface(task, ex, pred) if pred else "",
        "gold": _surface(task, ex, gold_item) if gold_item else "",
        "all_gold": [_surface(task, ex, x) for x in _spans(task, ex.gold)],
        "all_predicted": [_surface(task, ex, x) for x in _spans(task, answer)],
    }


def confusion_matrix(gold: list[Example], system: Aligned) -> dict:
    """MRE: counts of (gold label, predicted label); a missing prediction reads as no relation."""
    norm = lambda label: "None" if is_no_relation(label) else label  # noqa: E731
    cells: Counter = Counter(
        (norm(g), norm(p))
        for ex, answer in zip(gold, system.answers, strict=True)
        for g, p in relation_label_pairs(ex.gold, answer)  # type: ignore[arg-type]
    )
    labels = sorted({k for pair in cells for k in pair}, key=lambda x: (x != "None", x))
    return {"labels": labels, "matrix": [[cells[(g, p)] for p in labels] for g in labels]}


def _with_cost_of(own: dict | None, other: dict | None, name: str) -> dict | None:
    """A system's usage per example plus the usage of the system it reads at test time."""
    if other is None:
        return own
    keys = (
        "prompt_tokens_per_example",
        "completion_tokens_per_example",
        "tokens_per_example",
        "seconds_per_example",
    )
    out = {k: (own or {}).get(k, 0.0) + other.get(k, 0.0) for k in keys}
    out["examples_per_second"] = 1 / out["seconds_per_example"] if out["seconds_per_example"] > 0 else None
    out["examples_with_usage"] = (own or other).get("examples_with_usage")
    out["includes"] = name
    out["own"] = own
    return out


def compare_systems(
    task: str,
    gold: list[Example],
    systems: list[Aligned],
    labels: list[str],
    resamples: int = 1000,
    seed: int = 0,
    params: dict[str, int] | None = None,
    fractions: dict[str, float] | None = None,
    needs: dict[str, str] | None = None,
) -> dict:
    """Everything the report shows, as one JSON-ready dict. ``needs``: system → the system it reads at test
    time (a student that reads the teacher's answer): its cost includes that system's."""
    names = [s.source for s in systems]
    if len(set(names)) != len(names):
        raise InputError(f"systems need distinct names, got {names}; name them NAME=FILE")
    scores = {s.source: score_answers(task, [ex.gold for ex in gold], s.answers) for s in systems}
    tables = {s.source: count_table(task, gold, s, labels) for s in systems}
    boot = bootstrap(tables, resamples=resamples, seed=seed)
    result: dict = {
        "task": task,
        "examples": len(gold),
        "labels": labels,
        "systems": {},
        "pairs": boot["pairs"],
        "bootstrap": {"resamples": resamples, "seed": seed},
    }
    for s in systems:
        sc = scores[s.source]
        result["systems"][s.source] = {
            "precision": sc["precision"],
            "recall": sc["recall"],
            "f1": sc["f1"],
            **({"accuracy": sc["accuracy"]} if "accuracy" in sc else {}),
            **boot["systems"][s.source],
            "per_label": {
                k: {m: v[m] for m in ("precision", "recall", "f1", "support")}
                for k, v in sc.get("per_type", {}).items()
            },
            "coverage": s.coverage,
            "missing": s.missing,
            "parse_failures": s.parse_failures,
            "parse_failure_rate": s.parse_failures / len(gold) if gold else 0.0,
            "usage": usage_summary(s),
            "params": (params or {}).get(s.source),
            "fraction": (fractions or {}).get(s.source),
        }
    for name, other in (needs or {}).items():
        if name in result["systems"] and other in result["systems"]:
            entry = result["systems"][name]
            entry["usage"] = _with_cost_of(entry["usage"], result["systems"][other]["usage"], other)
    reference = systems[0]
    result["agreement"] = [agreement(task, gold, reference, other) for other in systems[1:]]
    result["instructive"] = [
        {"a": reference.source, "b": other.source, **instructive_examples(task, gold, reference, other)}
        for other in systems[1:]
    ]
    if not get_task(task).has_spans:
        result["confusion"] = {s.source: confusion_matrix(gold, s) for s in systems}
    else:
        result["errors"] = {s.source: error_breakdown(task, gold, s) for s in systems}
    return result
