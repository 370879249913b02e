"""The scoring stages: both systems' predictions, ``evaluate`` (metrics per system) and ``compare``
(intervals, significance, the report)."""

from __future__ import annotations

import json
import logging

from cotdistill.eval.compare import compare_systems
from cotdistill.eval.predictions import align, read_predictions, system_metrics
from cotdistill.eval.report import write_report
from cotdistill.files import write_atomic
from cotdistill.run.context import RunContext
from cotdistill.run.stages.student import predict_student
from cotdistill.run.stages.teacher import predict_teacher

logger = logging.getLogger(__name__)


def predict(ctx: RunContext, split: str = "test", *, overwrite: bool = False) -> dict:
    return {
        "teacher": predict_teacher(ctx, split, overwrite=overwrite),
        "student": predict_student(ctx, split, overwrite=overwrite),
    }


def _systems(ctx: RunContext, split: str):
    """The test split and the teacher's and the student's predictions on it, lined up with gold."""
    ds = ctx.split(split)
    folder = ctx.path / "predictions"
    systems = []
    for name in ("teacher", "student"):
        path = folder / f"{name}-{ds.split}.jsonl"
        preds = read_predictions(path, ds.task, ds.examples, source=name)
        systems.append((path, align(ds.examples, preds, source=name)))
    return ds, systems


def evaluate(ctx: RunContext, split: str = "test") -> dict:
    """Each system's metrics against gold → ``RUN/report/scores/<system>-<split>.json``."""
    config = ctx.config
    ds, systems = _systems(ctx, split)
    out = ctx.path / "report" / "scores"
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for path, system in systems:
        metrics = system_metrics(ds.task, ds.examples, system)
        metrics.update(gold=f"{config.data.name or config.data.dataset} {ds.split}", predictions=str(path))
        write_atomic(
            out / f"{system.source}-{ds.split}.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n"
        )
        summary[system.source] = {"f1": metrics["f1"], "coverage": metrics["coverage"]}
    return summary


def _few_labels_text(few: dict | None) -> str:
    """How a few-label student learned, for the report: its gold posts, its other posts and how they were
    labelled, and (evaluation only) those labels against gold."""
    if not few:
        return ""
    how = {
        "labeller": "a student reading the teacher's answer",
        "agree": "the teacher's answers where a student reading them agreed",
    }.get(few["method"], "the teacher's answers")
    keep = few.get("keep_rate")
    text = (
        f"; reads the post alone; {few['labelled_posts']:,} gold posts and {few['pseudo_labelled']:,} posts "
        f"labelled by {how} (the knowledge filter kept the teacher's answer on "
        f"{'-' if keep is None else f'{100 * keep:.1f}%'} of the posts without gold; "
        f"{few['without_teacher_answer']:,} left out)"
    )
    scored = few.get("pseudo_labels_against_gold")
    if scored:
        text += f"; against the training posts' gold (evaluation only): those labels {_prf(scored)}"
        if scored.get("teacher_kept"):
            text += f", the teacher's kept answers {_prf(scored['teacher_kept'])}"
    return text


def _prf(s: dict) -> str:
    return f"P {100 * s['precision']:.2f} R {100 * s['recall']:.2f} F1 {100 * s['f1']:.2f}"


def student_reads_teacher(config) -> bool:
    """Whether the run's student reads the teacher's output to answer a test post."""
    st = config.student
    return st.kind == "encoder" and st.knowledge != "none" and bool(st.teacher_tags or st.knowledge_text)


def reads_at_test_time(config) -> str:
    """What the run's student reads to answer a test post: the post alone, or the teacher's output too (then
    the teacher must run at test time as well, and its cost is part of the student's)."""
    st = config.student
    if student_reads_teacher(config):
        what = "the teacher's answer" if st.teacher_tags else "the teacher's knowledge text"
        if st.teacher_tags and st.knowledge_text:
            what = "the teacher's answer and knowledge text"
        return f"reads the post and {what} at test time (the teacher runs at test time too)"
    return "reads the post alone at test time (no teacher needed)"


def compare(ctx: RunContext, split: str = "test") -> dict:
    """Teacher against student with CIs and significance → ``RUN/report/report.{md,html}`` and metrics.json.
    The student's parameter count comes from the train stage's summary, when the run has one."""
    config = ctx.config
    ds, systems = _systems(ctx, split)
    e = config.evaluation
    parameters = (ctx.summaries.get("train") or {}).get("parameters")
    params = {"student": parameters} if parameters else None
    result = compare_systems(
        ds.task,
        ds.examples,
        [system for _, system in systems],
        ctx.spec([split]).scored_labels,
        resamples=e.resamples,
        seed=e.seed,
        params=params,
        needs={"student": "teacher"} if student_reads_teacher(config) else None,
    )
    t, st = config.teacher, config.student
    samples = ctx.samples
    described = {
        "teacher": f"{t.model} on the {t.backend} backend; templates "
        + ", ".join(f"{n} ×{samples[n]}" for n in t.templates)
        + f"; temperature {t.temperature}"
        + ("; structured JSON answers" if t.structured_output else ""),
        "student": f"{reads_at_test_time(config)}; {st.kind} student {st.model}; knowledge: {st.knowledge}"
        + (", as teacher tags" if getattr(st, "teacher_tags", False) else "")
        + ("" if getattr(st, "knowledge_text", True) else ", no knowledge text")
        + (f"; alpha {st.alpha}" if st.kind == "generative" else "")
        + (f"; LoRA r {st.lora_r}" if st.lora_r else "")
        + f"; {st.epochs:g} epochs"
        + f"; seed {st.seed}"
        + _few_labels_text((ctx.summaries.get("train") or {}).get("few_labels")),
    }
    provenance = {
        "command": f"cotdistill run {config.path / 'config.yaml'}",
        "gold": f"{config.data.name or config.data.dataset} {ds.split}",
        "systems": {system.source: described.get(system.source, "") for _, system in systems},
        "predictions": {system.source: str(path) for path, system in systems},
        **({"note": config.evaluation.note} if config.evaluation.note else {}),
    }
    files = write_report(result, config.path / "report", provenance)
    return {
        "report": str(files["html"]),
        "markdown": str(files["markdown"]),
        "metrics": str(files["metrics"]),
        "f1": {name: s["f1"] for name, s in result["systems"].items()},
        "pairs": [{k: p[k] for k in ("a", "b", "f1_difference", "p_value")} for p in result["pairs"]],
    }
