"""The train stage with few gold labels: the labelled posts keep their gold, every other post gets a label
made without gold, and the student (reading the post alone) trains on both.

``student.pseudo_labels`` says how the posts without gold are labelled:

- ``labeller``: a student that reads the teacher's answer as tags is trained on the labelled posts
  (``RUN/student/labeller/``), as many steps as the student will take, and tags every other post from its
  text and the teacher's answer;
- ``teacher``: the teacher's answer itself;
- ``auto``: the labeller is trained, and whichever of the two, the labeller's answers or the teacher's,
  scores the higher F1 on the dev split labels the posts (the dev split's gold is read for this choice, the
  gold of the training posts without labels never);
- ``agree``: the labeller is trained, and only the posts where its answer and the teacher's give the same
  items are labelled with them (a filter that needs no gold: two sources that err differently). The student
  then takes as many steps as it would over every post, so leaving posts out does not shorten its training.

The knowledge filter needs no gold for these posts: an answer that failed, did not parse, or fell below
``knowledge.min_agreement`` (the share of the teacher's samples that voted for it) is dropped. A post whose
teacher answer the filter dropped, or that has none, is left out (counted, and one line logged before any
training). The labels made are written to ``RUN/student/pseudo_labels.jsonl``. After training, and for
evaluation only, they and the teacher's kept answers are scored against the gold of the training posts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math

from cotdistill.errors import InputError
from cotdistill.readers import load_split
from cotdistill.readers.unlabelled import UNLABELLED
from cotdistill.records import Example, answer_from_dict
from cotdistill.run.context import RunContext
from cotdistill.run.stages.common import kept_teacher_answers, student_teacher_answers
from cotdistill.tasks import answer_items, score_answers

logger = logging.getLogger(__name__)


def split_posts(ctx: RunContext) -> tuple[list[Example], list[Example]]:
    """(the labelled training posts, the posts without gold: training posts outside ``data.labelled`` and
    the posts of ``data.unlabelled``)."""
    train, gold_ids = ctx.split("train"), ctx.gold_ids()
    labelled = [ex for ex in train.examples if gold_ids is None or ex.id in gold_ids]
    others = [ex for ex in train.examples if gold_ids is not None and ex.id not in gold_ids]
    if ctx.config.data.unlabelled:
        others += ctx.split(UNLABELLED).examples
    return labelled, others


def _labeller(ctx: RunContext, student, training, labelled, answers, steps: int):
    """A teacher-tags student trained on the labelled posts (kept in RUN/student/labeller/best)."""
    from cotdistill.student.encoder import load_encoder_student
    from cotdistill.student.train import train_encoder

    folder = ctx.path / "student" / "labeller"
    if (folder / "best" / "cotdistill_student.json").is_file():
        return load_encoder_student(folder / "best")
    config = dataclasses.replace(student, teacher_tags=True, use_knowledge=False)
    per_epoch = math.ceil(steps / max(training.epochs, 1))
    loop = dataclasses.replace(
        training, output_dir=str(folder), max_steps=steps, eval_steps=per_epoch, resume_from_checkpoint=None
    )
    valid = ctx.split("valid").examples
    model, featurizer, _ = train_encoder(config, loop, labelled, valid, None, teacher_answers=answers)
    return model, featurizer


def _dev_posts(ctx: RunContext) -> tuple[list[Example], dict]:
    """The dev posts whose teacher answer the knowledge filter kept, and those answers: ``auto`` scores the
    two label sources there, as on the training posts they would label."""
    kept = kept_teacher_answers(ctx.config, ["valid"])
    valid = [ex for ex in ctx.split("valid").examples if ex.id in kept]
    if not valid:
        raise InputError(
            f"student.pseudo_labels=auto picks a label source on the dev split, but the knowledge filter kept "
            f"no teacher answer there ({ctx.path / 'knowledge' / 'valid.jsonl'}): set "
            "student.pseudo_labels=teacher or labeller"
        )
    return valid, kept


def _dev_f1(model, featurizer, answers: dict, valid: list[Example], kept: dict) -> dict:
    """F1 of the two label sources, the teacher's kept answers and the labeller's, on those dev posts."""
    from cotdistill.student.encoder import decode_predictions

    gold = [ex.gold for ex in valid]
    labeller = {
        p.id: p.answer for p in decode_predictions(model, featurizer, valid, None, teacher_answers=answers)
    }
    task = valid[0].task
    return {
        name: round(score_answers(task, gold, [source.get(ex.id) for ex in valid])["f1"], 4)
        for name, source in (("teacher", kept), ("labeller", labeller))
    }


def pseudo_labelled(ctx: RunContext, student, training) -> tuple[list[Example], dict]:
    """The training posts of a few-label run (labelled posts, then the others with their made labels) and
    what was made, counted."""
    from cotdistill.student.encoder import decode_predictions

    labelled, others = split_posts(ctx)
    splits = ["train", "valid", *([UNLABELLED] if ctx.config.data.unlabelled else [])]
    answers = student_teacher_answers(ctx.config, splits)  # the labeller reads them on every post
    kept = kept_teacher_answers(ctx.config, [s for s in splits if s != "valid"])
    missing = [ex for ex in others if ex.id not in kept]
    if missing:
        logger.warning(
            "%d of %d posts without gold have no teacher answer that passed the knowledge filter (first: %s; "
            "why: cotdistill knowledge show %s --dropped); training on the other %d",
            len(missing),
            len(others),
            missing[0].id,
            ctx.path,
            len(others) - len(missing),
        )
    answered = [ex for ex in others if ex.id in kept]
    method = ctx.config.student.pseudo_labels
    dev_f1: dict = {}
    dev = _dev_posts(ctx) if method == "auto" else None  # checked before any training
    if method != "teacher":
        steps = math.ceil((len(labelled) + len(answered)) / training.batch_size) * math.ceil(training.epochs)
        model, featurizer = _labeller(ctx, student, training, labelled, answers, steps)
        if method == "auto":
            dev_f1 = _dev_f1(model, featurizer, answers, *dev)
            method = "teacher" if dev_f1["teacher"] >= dev_f1["labeller"] else "labeller"
            logger.info("few labels: dev F1 of the label sources %s; labelling with the %s", dev_f1, method)
    if method == "teacher":
        made = {ex.id: answers[ex.id] for ex in answered}
    else:
        preds = decode_predictions(model, featurizer, answered, None, teacher_answers=answers)
        made = {p.id: p.answer for p in preds if p.answer is not None}
    if method == "agree":  # the posts where the labeller and the teacher give the same items
        made = {
            i: a
            for i, a in made.items()
            if set(answer_items(a.task, a)) == set(answer_items(a.task, kept[i]))
        }
    out = ctx.path / "student" / "pseudo_labels.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(
            json.dumps({"id": i, "answer": a.to_dict()}, ensure_ascii=False) + "\n" for i, a in made.items()
        )
    counts = {
        "method": method,
        **({"chosen_on_dev": dev_f1} if dev_f1 else {}),
        "labelled_posts": len(labelled),
        "posts_without_gold": len(others),
        "without_teacher_answer": len(missing),
        "keep_rate": round(len(answered) / len(others), 4) if others else None,
        "pseudo_labelled": len(made),
        "pseudo_labels": str(out),
        **({"student_steps": steps, "disagreed": len(answered) - len(made)} if method == "agree" else {}),
    }
    logger.info("few labels: %s", counts)
    return labelled + [dataclasses.replace(ex, gold=made[ex.id]) for ex in answered if ex.id in made], counts


def _against_gold(gold: list[Example], answers: dict) -> dict | None:
    scored = [ex for ex in gold if ex.id in answers]
    if not scored:
        return None
    s = score_answers(scored[0].task, [ex.gold for ex in scored], [answers[ex.id] for ex in scored])
    return {"posts": len(scored), **{k: s[k] for k in ("precision", "recall", "f1")}}


def score_after_training(ctx: RunContext) -> dict | None:
    """For evaluation only, after training: the made labels of the training posts, and the teacher's answers
    the knowledge filter kept on them, against their gold (``teacher_kept``)."""
    path = ctx.path / "student" / "pseudo_labels.jsonl"
    if ctx.config.data.labelled == "all" or not path.is_file():
        return None
    made = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            made[row["id"]] = answer_from_dict(row["answer"])
    d = ctx.config.data
    train = load_split(d.dataset, d.data_dir, "train", image_dir=d.image_dir).examples
    gold_ids = ctx.gold_ids() or frozenset()
    gold = [ex for ex in train if ex.id not in gold_ids]  # the training posts read without gold
    kept = {k: v for k, v in kept_teacher_answers(ctx.config, ["train"]).items() if k not in gold_ids}
    scored = _against_gold(gold, made)
    return {**scored, "teacher_kept": _against_gold(gold, kept)} if scored else None
