"""The student's stages: ``train`` (the kind named by ``student.kind``, resumable) and its predictions."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from cotdistill.distill.backends import Sampling
from cotdistill.distill.runner import ShardStore, run_generation
from cotdistill.errors import InputError
from cotdistill.files import write_atomic
from cotdistill.run.checkpoints import last_checkpoint
from cotdistill.run.config import RunConfig
from cotdistill.run.context import RunContext
from cotdistill.run.stages.common import (
    reads_teacher_answers,
    student_knowledge,
    student_teacher_answers,
    teacher_answers_for_student,
    write_predictions,
)
from cotdistill.run.stages.few_labels import pseudo_labelled, score_after_training
from cotdistill.student import read_student_config
from cotdistill.student.config import (
    EncoderConfig,
    EncoderTrainingConfig,
    GenerativeConfig,
    GenerativeTrainingConfig,
)

logger = logging.getLogger(__name__)


def own_fields(section, target_cls, **extra):
    """Build ``target_cls`` (a student's own config or training-loop dataclass) from the ``student``
    section's fields of the same name, plus ``extra`` (what the run sets)."""
    names = {f.name for f in dataclasses.fields(target_cls)}
    values = {k: v for k, v in dataclasses.asdict(section).items() if k in names and k not in extra}
    return target_cls(**values, **extra)


def encoder_config(config: RunConfig, labels: Sequence[str], task: str):
    s = config.student
    use = s.knowledge != "none" and s.knowledge_text
    return own_fields(s, EncoderConfig, task=task, labels=list(labels), use_knowledge=use)


VISION = {"auto": None, "true": True, "false": False}


def generative_config(config: RunConfig, labels: Sequence[str], task: str):
    vision = str(config.student.vision).lower()
    if vision not in VISION:
        raise InputError(f"student.vision={config.student.vision!r}; expected auto, true or false")
    return own_fields(config.student, GenerativeConfig, task=task, labels=list(labels), vision=VISION[vision])


def training_config(config: RunConfig, **extra):
    """The chosen student's training-loop config from the ``student`` section."""
    cls = EncoderTrainingConfig if config.student.kind == "encoder" else GenerativeTrainingConfig
    return own_fields(config.student, cls, **extra)


def judge_plausibility(copies, spec, backend, out, *, library, sampling, batch_size=32, sees_images=True):
    """The teacher's answer to ``<task>.plausibility`` for each post in ``copies`` (one greedy sample,
    resumable in ``out``): example id → Generation (absent when the request was never made)."""
    name = f"{spec.name}.plausibility"
    run_generation(
        copies,
        [name],
        library,
        spec,
        backend,
        out,
        sampling=sampling,
        batch_size=batch_size,
        sees_images=sees_images,
    )
    return {g.example_id: g for g in ShardStore(out).load().values() if g.template == name}


def plausibility_check(ctx: RunContext, spec):
    """The judge of ``student.augment_check``: the teacher answers ``<task>.plausibility`` once for each
    entity-substituted copy (greedy, resumable, into ``RUN/student/augment/``); the copies it calls
    plausible are kept, the rest (implausible, unreadable or failed) are dropped and counted in
    ``RUN/student/augment/check.json``."""
    t = ctx.config.teacher
    out = ctx.path / "student" / "augment"

    def check(copies):
        from cotdistill.student.teacher_free import parse_plausible  # torch loads with the student only

        verdicts = judge_plausibility(
            copies,
            spec,
            ctx.judge or ctx.teacher(),
            out,
            library=ctx.library,
            sampling=Sampling(0.0, 1.0, min(t.max_tokens, 64), t.seed),
            batch_size=t.batch_size,
            sees_images=t.sees_images,
        )
        counts = {"copies": len(copies), "plausible": 0, "implausible": 0, "unreadable": 0, "failed": 0}
        kept = []
        for ex in copies:
            g = verdicts.get(ex.id)
            if g is None or g.error:
                counts["failed"] += 1
                continue
            verdict = parse_plausible(g.text)
            counts[{True: "plausible", False: "implausible", None: "unreadable"}[verdict]] += 1
            if verdict:
                kept.append(ex)
        write_atomic(out / "check.json", json.dumps(counts, indent=2) + "\n")
        logger.info("plausibility check by the teacher: %s", counts)
        return kept

    return check


def train(ctx: RunContext, resume: str | bool | None = None) -> dict:
    """Train the student named by ``student.kind`` on ``RUN/knowledge``; the best model by dev F1 goes to
    ``RUN/student/best``. ``resume=True`` continues from the last checkpoint in ``RUN/student`` (if any).
    The teacher of ``student.augment_check`` is ``ctx.judge`` (default: the one the config names)."""
    config = ctx.config
    kind = config.student.kind
    train_split, valid_split = ctx.split("train"), ctx.split("valid")
    spec = ctx.spec(["train"])
    labels = spec.labels
    out = config.path / "student"
    if resume is True:
        resume = last_checkpoint(out)
    extra: dict = {}
    examples, few = train_split.examples, None
    if kind == "encoder":
        from cotdistill.student.train import train_encoder as train_student  # (torch: loaded when needed)

        student = encoder_config(config, labels, train_split.task)
        texts = student_knowledge(config, ["train", "valid"])  # the context it reads
        if ctx.few_labels:  # the student reads the post alone; the others get labels made without gold
            loop = training_config(config, output_dir=str(out))
            examples, few = pseudo_labelled(ctx, student, loop)
            texts = {}
        if reads_teacher_answers(config):
            extra["teacher_answers"] = teacher_answers_for_student(config)
        if student.augment_check:
            extra["augment_check"] = plausibility_check(ctx, spec)
    else:
        from cotdistill.student.generative import train_generative as train_student

        student = generative_config(config, labels, train_split.task)
        texts = student_knowledge(config, ["train"])  # the rationale task's targets
    training = training_config(config, output_dir=str(out), resume_from_checkpoint=resume or None)
    if few and few.get("student_steps") and not training.max_steps:
        # agreement leaves posts out: the student still takes as many steps as over every post
        training = dataclasses.replace(training, max_steps=few["student_steps"])
    model, _, history = train_student(student, training, examples, valid_split.examples, texts, **extra)
    best = max((h["eval_f1"] for h in history if "eval_f1" in h), default=None)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "kind": kind,
        "best": str(out / "best"),
        "best_dev_f1": best,
        "resumed_from": resume or None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": trainable,
        **({"few_labels": {**few, "pseudo_labels_against_gold": score_after_training(ctx)}} if few else {}),
    }


def predict_student(ctx: RunContext, split: str = "test", *, overwrite: bool = False) -> dict:
    """The trained student on one split → ``RUN/predictions/student-<split>.jsonl``."""
    config = ctx.config
    ds = ctx.split(split)

    best = config.path / "student" / "best"
    kind, _ = read_student_config(best)
    source = f"student:{Path(config.student.model).name}"
    if kind == "generative":
        from cotdistill.student.generative import load_generative_student, predict_generative

        model, processor, gconfig = load_generative_student(best)
        preds = predict_generative(
            model,
            processor,
            gconfig,
            ds.examples,
            source=source,
            batch_size=config.student.eval_batch_size,
        )
        view = "answer"
    else:
        from cotdistill.student.encoder import decode_predictions, load_encoder_student

        model, featurizer = load_encoder_student(best)
        view = model.config.eval_view
        texts = student_knowledge(config, [ds.split]) if view == "knowledge" else {}
        answers = (
            student_teacher_answers(config, [ds.split])
            if view == "knowledge" and model.config.teacher_tags
            else None
        )
        preds = decode_predictions(
            model, featurizer, ds.examples, texts, source=source, teacher_answers=answers
        )
    path = config.path / "predictions" / f"student-{ds.split}.jsonl"
    write_predictions(path, preds, overwrite)
    return {"path": str(path), "predictions": len(preds), "view": view}
