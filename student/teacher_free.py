"""Teacher-free encoder students: trained with the teacher's knowledge, run on the post alone.

Three ways in, each a setting of ``EncoderConfig`` for a plain-view student (no knowledge, no teacher tags),
and a fourth with ``distill_from``: posts without gold labels (``train_encoder(unlabeled_examples=...)``),
which train through the frozen student's soft targets alone:

- ``distill_from``: a saved encoder student that reads the teacher (its tags or its knowledge text) is
  frozen, and its label distribution on each training post is the soft target of the text-only student:
  ``loss = gold cross-entropy + kd_weight · T² · KL(teacher_T ‖ student_T)`` over the post's words.
- ``augment_copies``: entity substitution (no LLM needed). Each training post with entities gets that many
  copies whose entities are swapped for random training entities of the same type; the gold spans move with
  them, and so do the teacher's answer spans where they coincide with a gold entity (spans the swap cuts
  through are dropped), so a frozen teacher can still score the copy. With ``augment_check`` the train
  stage asks the teacher (template ``mner.plausibility``) whether each copy could be a real post and keeps
  those it calls plausible (``parse_plausible`` reads its reply).
- ``aux_teacher_tags``: the teacher's tags as a second target of a second head over the same encoder,
  trained alongside the gold tags and dropped at test time.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from cotdistill.records import Answer, Entity, EntityAnswer, Example
from cotdistill.student import StudentConfigError


class FrozenTeacher(nn.Module):
    """A saved knowledge-reading encoder student, frozen, scoring the knowledge view of training posts."""

    def __init__(self, path: str, labels: Sequence[str]):
        super().__init__()
        from cotdistill.student.encoder import load_encoder_student

        model, featurizer = load_encoder_student(path)
        if model.config.eval_view != "knowledge":
            raise StudentConfigError(
                f"distill_from={path}: that student reads the post alone; distil from one that reads the "
                "teacher (teacher_tags or use_knowledge, without conditional_distillation)"
            )
        if list(model.config.labels) != list(labels):
            raise StudentConfigError(
                f"distill_from={path}: its labels {model.config.labels} differ from this student's {list(labels)}"
            )
        self.model = model.eval().requires_grad_(False)
        self.featurizer = featurizer

    def features(self, example: Example, knowledge: str | None, teacher_answer: Answer | None) -> dict:
        enc = self.featurizer.encode(example, knowledge, "knowledge", teacher_answer)
        return {f"kd_{k}": v for k, v in enc.items()}

    @torch.no_grad()
    def soft_targets(self, inputs: dict) -> torch.Tensor:
        """Label scores at the post's labelled positions, [n_words_in_batch, n_labels], popping the
        ``kd_`` inputs."""
        kd = {k[3:]: inputs.pop(k) for k in list(inputs) if k.startswith("kd_")}
        self.model.to(kd["input_ids"].device).eval()
        scores = self.model.emissions(
            kd["input_ids"],
            kd["attention_mask"],
            kd.get("token_type_ids"),
            teacher_tag_ids=kd.get("teacher_tag_ids"),
        )
        return scores[kd["labels"] != -100].float()


def entity_substitution(
    examples: Sequence[Example],
    copies: int,
    seed: int = 0,
    teacher_answers: dict[str, Answer] | None = None,
) -> tuple[list[Example], dict[str, Answer]]:
    """``copies`` entity-swapped copies of each training post that has entities, and the teacher's answers
    moved onto the copies (for the posts that have one). Copies are named ``<id>~sub<k>``."""
    rng = random.Random(seed)
    pool: dict[str, list[tuple[str, ...]]] = {}
    for ex in examples:
        if not isinstance(ex.gold, EntityAnswer) or ex.tokens is None:
            raise StudentConfigError("augment_copies swaps entities in tokenised posts: it needs MNER data")
        for e in ex.gold.entities:  # type: ignore[union-attr]
            pool.setdefault(e.type or "MISC", []).append(tuple(ex.tokens[e.start : e.end]))
    teacher_answers = teacher_answers or {}
    out: list[Example] = []
    moved: dict[str, Answer] = {}
    for ex in examples:
        gold = sorted(ex.gold.entities, key=lambda e: e.start)  # type: ignore[union-attr]
        if not gold:
            continue
        for k in range(copies):
            tokens: list[str] = []
            new_at: dict[int, int] = {}  # old token index -> new index, for tokens outside swapped spans
            spans: dict[tuple[int, int], tuple[int, int]] = {}
            entities = []
            pos = 0
            for e in gold:
                for i in range(pos, e.start):
                    new_at[i] = len(tokens)
                    tokens.append(ex.tokens[i])  # type: ignore[index]
                swap = list(rng.choice(pool[e.type or "MISC"]))
                spans[(e.start, e.end)] = (len(tokens), len(tokens) + len(swap))
                entities.append(Entity(len(tokens), len(tokens) + len(swap), e.type, " ".join(swap)))
                tokens.extend(swap)
                pos = e.end
            for i in range(pos, len(ex.tokens)):  # type: ignore[arg-type]
                new_at[i] = len(tokens)
                tokens.append(ex.tokens[i])  # type: ignore[index]
            copy = replace(
                ex,
                id=f"{ex.id}~sub{k}",
                text=" ".join(tokens),
                tokens=tuple(tokens),
                gold=EntityAnswer(tuple(entities)),
                meta={key: v for key, v in ex.meta.items() if key not in ("tags", "caption")},
            )
            out.append(copy)
            answer = teacher_answers.get(ex.id)
            if isinstance(answer, EntityAnswer):
                kept = []
                for t in answer.entities:
                    if (t.start, t.end) in spans:
                        s, e2 = spans[(t.start, t.end)]
                    elif all(i in new_at for i in range(t.start, t.end)) and t.end > t.start:
                        s, e2 = new_at[t.start], new_at[t.end - 1] + 1
                    else:
                        continue  # the swap cut through this span
                    kept.append(Entity(s, e2, t.type, " ".join(tokens[s:e2])))
                moved[copy.id] = EntityAnswer(tuple(kept))
    return out, moved


_VERDICT = re.compile(r"plausible\W{0,3}(yes|no)\b", re.IGNORECASE)
_LEADING = re.compile(r"\W*(yes|no)\b", re.IGNORECASE)


def parse_plausible(text: str | None) -> bool | None:
    """The teacher's verdict on a copy: ``Plausible: yes`` → True, ``no`` → False; a reply that starts with
    yes or no counts too. None when neither can be read (the copy is then dropped and counted)."""
    if not text:
        return None
    m = _VERDICT.search(text) or _LEADING.match(text)
    return None if m is None else m.group(1).lower() == "yes"


__all__ = ["FrozenTeacher", "entity_substitution", "parse_plausible"]
