"""What several stages read and write: the knowledge records the student reads, and prediction files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from cotdistill.distill.knowledge import read_knowledge
from cotdistill.errors import InputError, MissingPathError, PathExistsError
from cotdistill.files import atomic_path
from cotdistill.records import Prediction
from cotdistill.run.config import RunConfig


def _knowledge_rows(config: RunConfig, splits: Sequence[str], mode: str | None = None):
    """``(path, line, record)`` of each knowledge record the student reads, per ``mode`` (all, kept or none;
    default ``student.knowledge``)."""
    mode = mode or config.student.knowledge
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


def student_knowledge(config: RunConfig, splits: Sequence[str]) -> dict[str, str]:
    """The teacher text each example is conditioned on, per ``student.knowledge`` (all, kept or none)."""
    return {row["id"]: row["knowledge"] for _, _, row in _knowledge_rows(config, splits) if row["knowledge"]}


def student_teacher_answers(config: RunConfig, splits: Sequence[str]) -> dict:
    """The teacher's voted answer of each example (what ``student.teacher_tags`` reads), per
    ``student.knowledge``."""
    return {
        row["id"]: row["answer"] for _, _, row in _knowledge_rows(config, splits) if row["answer"] is not None
    }


def kept_teacher_answers(config: RunConfig, splits: Sequence[str]) -> dict:
    """The teacher's voted answer of each example whose knowledge passed the filter, whatever
    ``student.knowledge`` says (the posts without gold are labelled from these alone)."""
    rows = _knowledge_rows(config, splits, mode="kept")
    return {row["id"]: row["answer"] for _, _, row in rows if row["answer"] is not None}


def reads_teacher_answers(config: RunConfig) -> bool:
    """Whether the student trains on the teacher's answers: as tags, as an auxiliary target, through a
    frozen student distilled from, or moved onto entity-swapped copies."""
    st = config.student
    return st.kind == "encoder" and bool(
        st.teacher_tags or st.aux_teacher_tags or st.distill_from or st.augment_copies
    )


def teacher_answers_for_student(config: RunConfig) -> dict:
    """The teacher's answers the student reads (train and valid); an error that says what to do when none
    parsed, so that a run stops where the trouble shows, not a stage later."""
    answers = student_teacher_answers(config, ["train", "valid"])
    if not answers:
        raise InputError(
            f"the student reads the teacher's answers (student.teacher_tags and the like), but none of "
            f"the teacher's answers in {config.path / 'knowledge'} parsed: see why with 'cotdistill "
            f"knowledge show {config.path} --dropped', use a teacher whose answers parse, or set "
            "student.teacher_tags=false"
        )
    return answers


def write_predictions(path: Path, preds: Sequence[Prediction], overwrite: bool) -> None:
    """Prediction records as JSONL, written whole (temporary file, then rename); an existing file is kept
    unless ``overwrite``."""
    if path.exists() and not overwrite:
        raise PathExistsError(f"{path} already exists; pass --overwrite to replace it")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in preds)
