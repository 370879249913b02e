"""The teacher's stages: ``generate`` (requests → shards), ``knowledge`` (parse, vote, filter, export), and
the teacher's voted answers as predictions; plus what the student reads of the knowledge."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from cotdistill.config import RunConfig, to_dict
from cotdistill.errors import InputError, MissingPathError, PathExistsError, RunError
from cotdistill.readers import DatasetSplit
from cotdistill.records import Prediction, Usage
from cotdistill.stages.common import load_one, load_splits, prompt_library, samples_per_template, task_spec

logger = logging.getLogger(__name__)


class TeacherFailedError(RunError):
    """Every request of a split failed: the teacher is misconfigured or down, not the data."""


def _knowledge_rows(config: RunConfig, splits: Sequence[str]):
    """``(path, line, record)`` of each knowledge record the student reads, per ``student.knowledge`` (all,
    kept or none)."""
    from cotdistill.distill.knowledge import read_knowledge

    mode = config.student.knowledge
    if mode not in ("all", "kept", "none"):
        raise InputError(f"student.knowledge={mode!r}; expected all, kept or none")
    if mode == "none":
        return
    for split in splits:
        path = config.path / "knowledge" / f"{split}.jsonl"
        if not path.is_file():
            raise MissingPathError(
                f"{path} does not exist; run 'cotdistill knowledge' first, or set student.knowledge=none"
            )
        for lineno, row in read_knowledge(path):
            if mode == "all" or row["kept"]:
                yield path, lineno, row


def generate(
    config: RunConfig,
    splits: dict[str, DatasetSplit] | None = None,
    *,
    limit: int | None = None,
    retry_failed: bool = False,
    backend=None,
) -> dict:
    """The teacher over every split into ``RUN/teacher/<split>/``; returns per-split run statistics."""
    from cotdistill.distill.backends import Sampling, make_backend
    from cotdistill.distill.runner import run_generation, write_manifest

    splits = splits or load_splits(config)
    library = prompt_library(config)
    spec = task_spec(splits)
    t = config.teacher
    sampling = Sampling(t.temperature, t.top_p, t.max_tokens, t.seed)
    if t.ray_replicas <= 0:
        backend = backend or make_backend(t.backend, t.model, **t.options)
    common = {
        "samples": samples_per_template(config, library),
        "sampling": sampling,
        "batch_size": t.batch_size,
        "limit": limit,
        "retry_failed": retry_failed,
        "sees_images": t.sees_images,
        "structured": t.structured_output,
    }
    summary = {}
    for split, ds in splits.items():
        out = config.path / "teacher" / split
        if t.ray_replicas > 0:
            from cotdistill.distill.scale import run_generation_ray

            stats = run_generation_ray(
                ds.examples,
                t.templates,
                library,
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
            stats = run_generation(ds.examples, t.templates, library, spec, backend, out, **common)
        manifest = json.loads(write_manifest(out, stats, to_dict(config)).read_text(encoding="utf-8"))
        summary[split] = stats.to_dict()
        if manifest["generations"] and not manifest["succeeded"]:
            # A teacher that answers nothing is not a finished stage: the knowledge would be empty.
            raise TeacherFailedError(
                f"the teacher failed every one of the {manifest['generations']:,} {split} requests "
                f"(failures by reason: {manifest['failures_by_reason']}); fix the teacher, then redo the "
                f"failures: cotdistill generate CONFIG --retry-failed"
            )
    return summary


def knowledge(config: RunConfig, splits: dict[str, DatasetSplit] | None = None) -> dict:
    """Parse, vote, filter and export each split's generations into ``RUN/knowledge/``."""
    from cotdistill.distill.knowledge import build_knowledge, export_knowledge
    from cotdistill.distill.runner import ShardStore

    splits = splits or load_splits(config)
    library = prompt_library(config)
    spec = task_spec(splits)
    k = config.knowledge
    summary = {}
    for split, ds in splits.items():
        store = ShardStore(config.path / "teacher" / split)
        generations = list(store.load().values())
        if not generations:
            raise MissingPathError(
                f"no generations in {store.folder}; run 'cotdistill generate' (or the generate stage) first"
            )
        report = build_knowledge(
            ds.examples,
            generations,
            spec,
            library,
            answer_template=k.answer_template,
            use_gold=split in k.filter_splits,
            min_f1=k.min_f1,
            min_agreement=k.min_agreement,
        )
        paths = export_knowledge(report, config.path / "knowledge", name=split)
        summary[split] = {"examples": len(ds.examples), **dict(report.counts), "jsonl": str(paths["jsonl"])}
    return summary


def student_knowledge(config: RunConfig, splits: Sequence[str]) -> dict[str, str]:
    """The teacher text each example is conditioned on, per ``student.knowledge`` (all, kept or none)."""
    return {row["id"]: row["knowledge"] for _, _, row in _knowledge_rows(config, splits) if row["knowledge"]}


def student_teacher_answers(config: RunConfig, splits: Sequence[str]) -> dict:
    """The teacher's voted answer of each example (what ``student.teacher_tags`` reads), per
    ``student.knowledge``."""
    return {
        row["id"]: row["answer"] for _, _, row in _knowledge_rows(config, splits) if row["answer"] is not None
    }


def predict_teacher(config: RunConfig, split: str = "test", *, overwrite: bool = False) -> dict:
    """The teacher's voted answers on one split (from ``RUN/knowledge/<split>.jsonl``) as Prediction records
    → ``RUN/predictions/teacher-<split>.jsonl``, with the split's generation usage per example."""
    from cotdistill.distill.knowledge import read_knowledge
    from cotdistill.distill.runner import ShardStore

    ds = load_one(config, split)
    path = config.path / "knowledge" / f"{ds.split}.jsonl"
    if not path.is_file():
        raise MissingPathError(
            f"{path} does not exist; run the knowledge stage on the {ds.split} split first"
        )
    answer_template = config.knowledge.answer_template or f"{ds.task}.answer"
    totals: dict[str, list] = {}
    first_answer: dict[str, tuple[int, str]] = {}  # the raw text of an answer that could not be parsed
    for g in ShardStore(config.path / "teacher" / ds.split).load().values():
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
    preds = []
    for _, row in read_knowledge(path):
        answer = row["answer"]
        preds.append(
            Prediction(
                row["id"],
                f"teacher:{config.teacher.model}",
                answer,
                raw=row["grains"].get(answer_template) or first_answer.get(row["id"], (0, ""))[1],
                rationale=row["knowledge"] or None,
                parse_error=None if answer is not None else (row["reason"] or "no answer"),
                usage=usage.get(row["id"]),
            )
        )
    out = config.path / "predictions" / f"teacher-{ds.split}.jsonl"
    _write_predictions(out, preds, overwrite)
    return {"path": str(out), "predictions": len(preds)}


def _write_predictions(path: Path, preds: Sequence[Prediction], overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise PathExistsError(f"{path} already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in preds)
    os.replace(tmp, path)
