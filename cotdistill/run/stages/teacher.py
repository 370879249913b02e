"""The teacher's stages: ``generate`` (requests → shards), ``knowledge`` (parse, vote, filter, export), and
the teacher's voted answers as predictions."""

from __future__ import annotations

import json
import logging

from cotdistill.distill.backends import Sampling
from cotdistill.distill.knowledge import build_knowledge, export_knowledge, read_knowledge
from cotdistill.distill.runner import ShardStore, run_generation, write_manifest
from cotdistill.distill.scale import run_generation_ray
from cotdistill.errors import MissingPathError, RunError
from cotdistill.files import write_atomic
from cotdistill.parsing import learn_type_map
from cotdistill.readers import DatasetSplit
from cotdistill.records import Prediction, Usage
from cotdistill.run.config import to_dict
from cotdistill.run.context import RunContext
from cotdistill.run.stages.common import reads_teacher_answers, teacher_answers_for_student, write_predictions

logger = logging.getLogger(__name__)


class TeacherFailedError(RunError):
    """Every request of a split failed: the teacher is misconfigured or down, not the data."""


class FailedRequestsError(RunError):
    """Some requests failed for the teacher's reason (a 503 or 429 after every retry, a response cut short):
    they are stored as failed requests, not answers, and the generate stage is not done until a rerun has
    made them."""


def check_failed_requests(manifests: dict[str, dict]) -> None:
    """Raise ``FailedRequestsError`` when a split's teacher folder holds failed requests (``manifests``:
    split → its ``manifest.json``), saying how many and that a rerun makes exactly those."""
    failed = {split: m.get("failed_requests", 0) for split, m in manifests.items()}
    n = sum(failed.values())
    if not n:
        return
    total = sum(m["generations"] for m in manifests.values())
    answered = sum(m["succeeded"] for m in manifests.values())
    per_split = ", ".join(f"{split} {k:,}" for split, k in failed.items() if k)
    reasons = {split: m["failures_by_reason"] for split, m in manifests.items() if failed[split]}
    raise FailedRequestsError(
        f"{n:,} of {total:,} teacher requests failed ({per_split}; failures by reason: {reasons}): they are "
        "stored as failed requests, not answers, and the generate stage is not done; rerun the same command "
        f"to make exactly those {n:,} again (the {answered:,} answers stored are kept)"
    )


def sampling(ctx: RunContext) -> Sampling:
    t = ctx.config.teacher
    return Sampling(t.temperature, t.top_p, t.max_tokens, t.seed)


def generate(
    ctx: RunContext,
    splits: dict[str, DatasetSplit] | None = None,
    *,
    limit: int | None = None,
    retry_failed: bool = False,
) -> dict:
    """The teacher over every split into ``RUN/teacher/<split>/``; returns per-split run statistics."""
    splits = splits or ctx.splits()
    spec = ctx.spec(list(splits))
    t = ctx.config.teacher
    common = {
        "samples": ctx.samples,
        "sampling": sampling(ctx),
        "batch_size": t.batch_size,
        "limit": limit,
        "retry_failed": retry_failed,
        "sees_images": t.sees_images,
        "structured": t.structured_output,
    }
    summary, manifests = {}, {}
    for split, ds in splits.items():
        out = ctx.path / "teacher" / split
        if t.ray_replicas > 0:
            stats = run_generation_ray(
                ds.examples,
                t.templates,
                ctx.library,
                spec,
                t.backend,
                t.model,
                t.options,
                out,
                replicas=t.ray_replicas,
                gpus_per_replica=t.ray_gpus_per_replica,
                address=t.ray_address,
                **common,
            )
        else:
            stats = run_generation(ds.examples, t.templates, ctx.library, spec, ctx.teacher(), out, **common)
        manifest = json.loads(write_manifest(out, stats, to_dict(ctx.config)).read_text(encoding="utf-8"))
        summary[split], manifests[split] = stats.to_dict(), manifest
        if manifest["generations"] and not manifest["succeeded"]:
            # A teacher that answers nothing is not a finished stage: the knowledge would be empty.
            raise TeacherFailedError(
                f"the teacher failed every one of the {manifest['generations']:,} {split} requests "
                f"(failures by reason: {manifest['failures_by_reason']}); fix the teacher, then redo the "
                f"failures: cotdistill generate CONFIG --retry-failed"
            )
    check_failed_requests(manifests)  # after every split had its requests made
    return summary


def learn_types(ctx: RunContext) -> dict[str, str]:
    """``knowledge.learn_types``: how the teacher's free-text types map to labels, learned from its first
    answer sample on each labelled training post → ``RUN/knowledge/type_map.json``."""
    ds, gold_ids = ctx.split("train"), ctx.gold_ids()
    template = ctx.config.knowledge.answer_template or f"{ds.task}.answer"
    first: dict[str, tuple[int, str]] = {}
    for g in ShardStore(ctx.path / "teacher" / "train").load().values():
        if (
            g.template == template
            and g.text
            and (g.example_id not in first or g.sample < first[g.example_id][0])
        ):
            first[g.example_id] = (g.sample, g.text)
    answered = [
        (first[ex.id][1], ex)
        for ex in ds.examples
        if ex.id in first and (gold_ids is None or ex.id in gold_ids)
    ]
    learned = learn_type_map(answered, ctx.spec(["train"]).labels)
    path = ctx.path / "knowledge" / "type_map.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(learned, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    logger.info("learned %d teacher types from %d labelled posts -> %s", len(learned), len(answered), path)
    return learned


def knowledge(ctx: RunContext, splits: dict[str, DatasetSplit] | None = None) -> dict:
    """Parse, vote, filter and export each split's generations into ``RUN/knowledge/``. With few gold
    labels, gold is read only for the labelled training posts (the others are kept or dropped without it)."""
    splits = splits or ctx.splits()
    k = ctx.config.knowledge
    if k.learn_types and "train" in splits and next(iter(splits.values())).task == "mner":
        learn_types(ctx)
    spec = ctx.spec(list(splits))
    summary = {}
    for split, ds in splits.items():
        store = ShardStore(ctx.path / "teacher" / split)
        generations = list(store.load().values())
        if not generations:
            raise MissingPathError(
                f"no generations in {store.folder}; run 'cotdistill generate' (or the generate stage) first"
            )
        report = build_knowledge(
            ds.examples,
            generations,
            spec,
            ctx.library,
            answer_template=k.answer_template,
            use_gold=split in k.filter_splits,
            gold_ids=ctx.gold_ids() if split == "train" else None,
            min_f1=k.min_f1,
            min_agreement=k.min_agreement,
        )
        paths = export_knowledge(report, ctx.path / "knowledge", name=split)
        summary[split] = {"examples": len(ds.examples), **dict(report.counts), "jsonl": str(paths["jsonl"])}
    _write_browse(ctx, splits)
    if "train" in splits and reads_teacher_answers(ctx.config):
        teacher_answers_for_student(ctx.config)  # the student could not train on this knowledge: say so now
    return summary


def _write_browse(ctx: RunContext, splits: dict[str, DatasetSplit]) -> None:
    """``RUN/knowledge/browse.html`` over every split's knowledge (see ``cotdistill.eval.browse``)."""
    from cotdistill.distill.knowledge import read_knowledge
    from cotdistill.eval.browse import write_browse

    records = [
        (split, row)
        for split in splits
        for _, row in read_knowledge(ctx.path / "knowledge" / f"{split}.jsonl")
    ]
    examples = {ex.id: ex for ds in splits.values() for ex in ds.examples}
    path = write_browse(
        records,
        examples,
        ctx.path / "knowledge" / "browse.html",
        gold_ids=ctx.gold_ids(),
        title=f"{ctx.config.name}: the teacher's knowledge",
    )
    logger.info("knowledge to read in a browser: %s", path)


def _usage_and_first_answers(ctx: RunContext, split: str, answer_template: str):
    """Per example: the teacher's token usage summed over its requests, and the raw text of its first
    answer sample (shown where the answer could not be parsed)."""
    totals: dict[str, list] = {}
    first_answer: dict[str, tuple[int, str]] = {}
    for g in ShardStore(ctx.path / "teacher" / split).load().values():
        earlier = first_answer.get(g.example_id)
        if (
            g.template == answer_template
            and g.text is not None
            and (earlier is None or g.sample < earlier[0])
        ):
            first_answer[g.example_id] = (g.sample, g.text)
        t = totals.setdefault(g.example_id, [0, 0, 0.0])
        t[0] += g.usage.prompt_tokens
        t[1] += g.usage.completion_tokens
        t[2] += g.usage.seconds
    usage = {i: Usage(p, c, sec) for i, (p, c, sec) in totals.items()}
    return usage, {i: text for i, (_, text) in first_answer.items()}


def predict_teacher(ctx: RunContext, split: str = "test", *, overwrite: bool = False) -> dict:
    """The teacher's voted answers on one split (from ``RUN/knowledge/<split>.jsonl``) as Prediction records
    → ``RUN/predictions/teacher-<split>.jsonl``, with the split's generation usage per example."""
    ds = ctx.split(split)
    path = ctx.path / "knowledge" / f"{ds.split}.jsonl"
    if not path.is_file():
        raise MissingPathError(
            f"{path} does not exist; run the knowledge stage on the {ds.split} split first"
        )
    answer_template = ctx.config.knowledge.answer_template or f"{ds.task}.answer"
    usage, first_answer = _usage_and_first_answers(ctx, ds.split, answer_template)
    preds = []
    for _, row in read_knowledge(path):
        answer = row["answer"]
        preds.append(
            Prediction(
                row["id"],
                f"teacher:{ctx.config.teacher.model}",
                answer,
                raw=row["grains"].get(answer_template) or first_answer.get(row["id"], ""),
                rationale=row["knowledge"] or None,
                parse_error=None if answer is not None else (row["reason"] or "no answer"),
                usage=usage.get(row["id"]),
            )
        )
    out = ctx.path / "predictions" / f"teacher-{ds.split}.jsonl"
    write_predictions(out, preds, overwrite)
    return {"path": str(out), "predictions": len(preds)}
