"""Students: what both kinds share is the file that says what a saved student is."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from cotdistill.errors import InputError
from cotdistill.files import write_atomic

META = "cotdistill_student.json"


class StudentConfigError(InputError):
    """A student setting or saved student that cannot be used; the message names it and the fix."""


def save_student_config(kind: str, config, out_dir: str | Path) -> None:
    """Write ``cotdistill_student.json``: the student's kind and its config, enough to load it again."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_atomic(
        Path(out_dir) / META,
        json.dumps({"kind": kind, **asdict(config)}, indent=2, ensure_ascii=False) + "\n",
    )


def read_student_config(path: str | Path, kind: str | None = None) -> tuple[str, dict]:
    """(kind, config fields) of a saved student; with ``kind``, a student of another kind is an error."""
    meta_file = Path(path) / META
    if not meta_file.is_file():
        raise StudentConfigError(
            f"{path} holds no {META}; point at the 'best' folder that training wrote (train the student first)"
        )
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    found = meta.pop("kind", None)
    if kind is not None and found != kind:
        raise StudentConfigError(f"{meta_file} describes a {found} student, not a {kind} one")
    return found, meta
