"""From generations to CoT knowledge: parse, vote, filter, deduplicate, join, export.

For each example: the answer template's samples are parsed and voted (self-consistency: the most frequent
answer wins, its share of the samples is recorded as ``agreement``); on training data the voted answer must
agree with gold (span F1 ≥ ``min_f1``, 1.0 by default) for the example's knowledge to be kept. The kept CoT
grains (noun, sentence, multimodal, ... — each the first successful, non-duplicate sample of its template)
are joined, in template order, with the winning answer sample's text into the example's knowledge text. Every drop is
counted by reason; nothing is silently lost. A failed request (``Generation.transient``: the teacher's
failure, made again by the next ``generate``) is counted as one ("failed requests"), never as an answer: an
example whose answer samples all failed is dropped as "answer request failed", not "answer unparsable".
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cotdistill.distill.backends import Generation
from cotdistill.errors import PathExistsError
from cotdistill.files import write_atomic
from cotdistill.metrics import set_f1
from cotdistill.prompts import PromptLibrary
from cotdistill.records import Answer, Example
from cotdistill.tasks import TaskSpec, answer_items, parse_answer


@dataclass(slots=True)
class KnowledgeRecord:
    id: str
    kept: bool
    reason: str | None  # why it was dropped; None when kept
    knowledge: str
    grains: dict[str, str]
    answer: dict | None
    agreement: float | None
    answer_f1: float | None
    samples: int

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kept": self.kept,
            "reason": self.reason,
            "knowledge": self.knowledge,
            "grains": self.grains,
            "answer": self.answer,
            "agreement": self.agreement,
            "answer_f1": self.answer_f1,
            "samples": self.samples,
        }


@dataclass(slots=True)
class KnowledgeReport:
    records: list[KnowledgeRecord]
    counts: Counter = field(default_factory=Counter)

    @property
    def kept(self) -> dict[str, str]:
        return {r.id: r.knowledge for r in self.records if r.kept}


def build_knowledge(
    examples: Sequence[Example],
    generations: Sequence[Generation],
    spec: TaskSpec,
    library: PromptLibrary,
    *,
    answer_template: str | None = None,
    use_gold: bool = True,
    gold_ids: Collection[str] | None = None,
    min_f1: float = 1.0,
    min_agreement: float = 0.0,
) -> KnowledgeReport:
    """Turn an example set's generations into knowledge records (see the module docstring).

    Args:
        answer_template: the template whose samples give the answer (default ``<task>.answer``); with
            replayed knowledge that mixes answer and rationale (PGIM), name its template here.
        use_gold: filter by agreement with gold; turn off for data whose gold must not be used (test).
        gold_ids: with ``use_gold``, read gold only for these examples (the labelled posts of a few-label
            run); the others are kept or dropped without it.
    """
    answer_template = answer_template or f"{spec.name}.answer"
    by_example = _by_example(generations, library)
    report = KnowledgeReport([])
    for ex in examples:
        record = _example_knowledge(
            ex,
            by_example.get(ex.id, []),
            spec,
            answer_template,
            report.counts,
            use_gold=use_gold and (gold_ids is None or ex.id in gold_ids),
            min_f1=min_f1,
            min_agreement=min_agreement,
        )
        report.records.append(record)
        report.counts["kept" if record.reason is None else f"dropped: {record.reason}"] += 1
    return report


def _by_example(generations: Sequence[Generation], library: PromptLibrary) -> dict[str, list[Generation]]:
    """Each example's generations in a fixed order: by template (the library's names sorted, unknown
    templates last), then by sample, so that 'the first sample' of a grain is the same on every run."""
    order = {name: k for k, name in enumerate(sorted(library.templates))}
    by_example: dict[str, list[Generation]] = {}
    for g in generations:
        by_example.setdefault(g.example_id, []).append(g)
    return {
        example_id: sorted(gens, key=lambda g: (order.get(g.template, 1 << 30), g.template, g.sample))
        for example_id, gens in by_example.items()
    }


def _example_knowledge(
    ex: Example,
    gens: list[Generation],
    spec: TaskSpec,
    answer_template: str,
    counts: Counter,
    *,
    use_gold: bool,
    min_f1: float,
    min_agreement: float,
) -> KnowledgeRecord:
    """One example's record: its answer samples voted, its grains joined, and why it is dropped, if it is;
    what is lost on the way (failed generations, unparsable answers, duplicates) is counted into
    ``counts``."""
    if not gens:
        return KnowledgeRecord(ex.id, False, "no generations", "", {}, None, None, None, 0)
    counts["generations failed"] += sum(g.error is not None and not g.transient for g in gens)
    if failed_requests := sum(g.error is not None and g.transient for g in gens):
        counts["failed requests"] += failed_requests
    answers = _parsed_answers(ex, gens, spec, answer_template, counts)
    grains, seen = _rationale_grains(gens, answer_template, counts)
    voted = agreement = f1 = None
    if answers:
        votes = Counter(items for items, _, _ in answers)
        winner, count = votes.most_common(1)[0]
        agreement = count / len(answers)
        voted = next(a for items, a, _ in answers if items == winner)
        # The winning sample's whole text (answer and reasoning) is knowledge too, as in PGIM's recipe.
        winning_text = next(text for items, _, text in answers if items == winner).strip()
        if winning_text not in seen:
            grains[answer_template] = winning_text
        if use_gold:
            f1 = set_f1(set(answer_items(spec.name, ex.gold)), set(winner))
    reason = None
    answer_gens = [g for g in gens if g.template == answer_template]
    if answer_gens and all(g.error is not None for g in answer_gens):
        reason = "answer request failed"  # nothing came back to parse
    elif answer_gens and not answers:
        reason = "answer unparsable"
    elif use_gold and f1 is not None and f1 < min_f1:
        reason = "answer disagrees with gold"
    elif agreement is not None and agreement < min_agreement:
        reason = "low self-consistency"
    elif not grains:
        reason = "no usable text"
    knowledge = "\n".join(grains[t] for t in grains)
    return KnowledgeRecord(
        ex.id,
        reason is None,
        reason,
        knowledge,
        grains,
        voted.to_dict() if voted else None,
        agreement,
        f1,
        len(gens),
    )


def _parsed_answers(
    ex: Example, gens: list[Generation], spec: TaskSpec, answer_template: str, counts: Counter
) -> list[tuple[frozenset, Answer, str | None]]:
    """(answer items, parsed answer, raw text) of each answer sample that parses; the others are counted."""
    answers = []
    for g in gens:
        if g.template == answer_template and g.error is None:
            parsed, _, error = parse_answer(
                spec.name, g.text or "", ex, spec.labels, spec.none_label, spec.type_map, spec.unmapped
            )
            if error is not None:
                counts["answer parse failures"] += 1
                continue
            answers.append((frozenset(answer_items(spec.name, parsed)), parsed, g.text))
    return answers


def _rationale_grains(
    gens: list[Generation], answer_template: str, counts: Counter
) -> tuple[dict[str, str], set[str]]:
    """The first successful, non-empty, non-duplicate text of each rationale template (template → text), and
    every distinct text seen. A text seen before, from any template or sample, is counted and dropped."""
    grains: dict[str, str] = {}
    seen: set[str] = set()
    for g in gens:
        if g.template == answer_template or g.error is not None or not (g.text or "").strip():
            continue
        text = g.text.strip()  # type: ignore[union-attr]
        if text in seen:
            counts["duplicate rationales dropped"] += 1
            continue
        seen.add(text)
        grains.setdefault(g.template, text)
    return grains, seen


def export_knowledge(
    report: KnowledgeReport, out_dir: str | os.PathLike, name: str = "knowledge"
) -> dict[str, Path]:
    """Write the records as JSONL and as a ``datasets`` Arrow dataset, plus counts.json. Refuses to overwrite."""
    out = Path(out_dir)
    paths = {
        "jsonl": out / f"{name}.jsonl",
        "arrow": out / f"{name}.arrow",
        "counts": out / f"{name}.counts.json",
    }
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing:
        raise PathExistsError(
            f"{', '.join(existing)} already exist; knowledge is never overwritten: choose another folder or name"
        )
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.to_dict() for r in report.records]
    with open(paths["jsonl"], "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    import datasets

    flat = [
        {
            **{k: v for k, v in row.items() if k not in ("grains", "answer")},
            "grains": json.dumps(row["grains"], ensure_ascii=False),
            "answer": json.dumps(row["answer"], ensure_ascii=False),
        }
        for row in rows
    ]
    datasets.Dataset.from_list(flat).save_to_disk(str(paths["arrow"]))
    write_atomic(paths["counts"], json.dumps(dict(report.counts), indent=2, ensure_ascii=False) + "\n")
    return paths


def read_knowledge(path: str | os.PathLike):
    """``(line, record)`` of each record of an exported knowledge JSONL file, checked: a mapping with id,
    kept, knowledge, answer, grains and reason, its answer read back into an Answer record (or None)."""
    from cotdistill.readers.common import DataFormatError
    from cotdistill.records import answer_from_dict

    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or not {"id", "kept", "knowledge", "answer"} <= row.keys():
                    raise KeyError("id, kept, knowledge, answer")
                row.setdefault("grains", {})
                row.setdefault("reason", None)
                if row["answer"] is not None:
                    row["answer"] = answer_from_dict(row["answer"])
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                raise DataFormatError(
                    path, lineno, f"not a knowledge record with id, kept, knowledge, answer ({err})"
                ) from None
            yield lineno, row
