"""The stages of a run and ``cotdistill run``, the one piece of code that knows every stage.

generate → knowledge → train → predict → evaluate → compare, all into one run directory (DESIGN.md):

    RUN/config.yaml      the resolved config, written first
    RUN/teacher/         generation shards per split (resumable on its own)
    RUN/knowledge/       filtered knowledge per split
    RUN/student/         checkpoints and best/ (training resumes from the last checkpoint)
    RUN/predictions/     teacher-<split>.jsonl, student-<split>.jsonl
    RUN/report/scores/   one metrics file per system (evaluate)
    RUN/report/          metrics.json, report.md, report.html, plots (compare)
    RUN/stages.json      which stages finished, when, with which config

A finished stage is never redone unless asked (``redo``); what a redone or half-finished stage had written
is moved to ``RUN/previous/<n>/``, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import yaml

from cotdistill.config import RunConfig, to_dict, write_resolved
from cotdistill.errors import InputError, MissingPathError, RunError
from cotdistill.locking import exclusive
from cotdistill.readers.common import DataFormatError
from cotdistill.stages.common import load_one, load_splits, prompt_library, samples_per_template, task_spec
from cotdistill.stages.scoring import compare, evaluate, predict
from cotdistill.stages.student import encoder_config, generative_config, predict_student, train
from cotdistill.stages.teacher import (
    TeacherFailedError,
    generate,
    knowledge,
    predict_teacher,
    student_knowledge,
    student_teacher_answers,
)
from cotdistill.validation import check_paths, validate

logger = logging.getLogger(__name__)

STAGES = ("generate", "knowledge", "train", "predict", "evaluate", "compare")

# What each stage writes (relative to the run directory), for moving aside on a redo.
STAGE_OUTPUTS = {
    "generate": ["teacher"],
    "knowledge": ["knowledge"],
    "train": ["student"],
    "predict": ["predictions"],
    "evaluate": ["report/scores"],
    "compare": ["report/metrics.json", "report/report.md", "report/report.html", "report/*.png"],
}

# The config sections a stage's result depends on (a change there makes the stored result stale).
STAGE_INPUTS = {
    "generate": ("data", "teacher"),
    "knowledge": ("data", "teacher", "knowledge"),
    "train": ("data", "teacher", "knowledge", "student"),
    "predict": ("data", "teacher", "knowledge", "student", "evaluation"),
    "evaluate": ("data", "teacher", "knowledge", "student", "evaluation"),
    "compare": ("data", "teacher", "knowledge", "student", "evaluation"),
}


class StageError(RunError):
    """A stage of ``cotdistill run`` failed; the message names the stage, the cause and how to resume."""


def _knowledge_rows(config: RunConfig, splits: Sequence[str]):
    """``(path, line, record)`` of each knowledge record the student reads, per ``student.knowledge`` (all,
    kept or none)."""
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
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict) or not {"id", "kept", "knowledge", "answer"} <= row.keys():
                        raise KeyError("id, kept, knowledge, answer")
                except (ValueError, KeyError) as err:
                    raise DataFormatError(
                        path, lineno, f"not a knowledge record with id, kept, knowledge, answer ({err})"
                    ) from None
                if mode == "all" or row["kept"]:
                    yield path, lineno, row


def _digest(config: RunConfig, stage: str) -> str:
    tree = to_dict(config)
    part = {k: tree[k] for k in STAGE_INPUTS[stage]}
    return hashlib.sha256(yaml.safe_dump(part, sort_keys=True).encode()).hexdigest()[:16]


class StageLog:
    """``RUN/stages.json``: stage → when it finished, how long it took, what it returned, config digest."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "stages.json"
        self.stages: dict[str, dict] = {}
        if self.path.is_file():
            try:
                self.stages = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError:
                raise DataFormatError(self.path, 1, "not JSON; it records the finished stages") from None

    def done(self, stage: str) -> bool:
        return stage in self.stages

    def mark(self, stage: str, summary: dict, seconds: float, digest: str) -> None:
        self.stages[stage] = {
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 2),
            "config_digest": digest,
            "summary": summary,
        }
        self._save()

    def forget(self, stage: str) -> None:
        self.stages.pop(stage, None)
        self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.stages, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


def stale_stages(config: RunConfig, stages: dict) -> list[str]:
    """Finished stages whose inputs in the config have changed since they ran (their outputs are old)."""
    return [name for name, entry in stages.items() if entry.get("config_digest") != _digest(config, name)]


def result_lines(config: RunConfig, stages: dict) -> list[str]:
    """What a finished run found, for the screen: each system's F1 with its interval, the differences with
    their p-values, and the knowledge kept and dropped."""
    lines = []
    metrics_path = config.path / "report" / "metrics.json"
    if metrics_path.is_file():
        m = json.loads(metrics_path.read_text(encoding="utf-8"))
        split = config.evaluation.split
        lines.append(f"{split} F1 ({m.get('examples', '?')} examples, 95% bootstrap intervals):")
        for name, sysm in m["systems"].items():
            lo, hi = sysm["f1_ci"]
            lines.append(f"  {name:<10} {100 * sysm['f1']:6.2f}  [{100 * lo:.2f}, {100 * hi:.2f}]")
        for pair in m.get("pairs", []):
            lo, hi = pair["difference_ci"]
            # b − a is the negated difference; 0.0 - x rather than -x so that a zero prints as +0.00
            lines.append(
                f"  {pair['b']} − {pair['a']}: {0.0 - 100 * pair['f1_difference']:+.2f} F1 "
                f"[{0.0 - 100 * hi:+.2f}, {0.0 - 100 * lo:+.2f}], paired bootstrap p = {pair['p_value']:.3f}"
            )
    counts = (stages.get("knowledge") or {}).get("summary") or {}
    for split, c in counts.items():
        dropped = {k.removeprefix("dropped: "): v for k, v in c.items() if k.startswith("dropped: ")}
        lines.append(
            f"knowledge {split}: {c.get('kept', 0):,} of {c.get('examples', 0):,} kept"
            + (f"; dropped: {', '.join(f'{k} {v:,}' for k, v in dropped.items())}" if dropped else "")
        )
    return lines


def move_aside(run_dir: Path, stages: Sequence[str]) -> Path | None:
    """Move what ``stages`` wrote into one new ``RUN/previous/<n>/`` (same relative paths); returns it."""
    found = [p for stage in stages for pattern in STAGE_OUTPUTS[stage] for p in sorted(run_dir.glob(pattern))]
    if not found:
        return None
    n = 1
    while (run_dir / "previous" / str(n)).exists():
        n += 1
    target = run_dir / "previous" / str(n)
    for p in found:
        dest = target / p.relative_to(run_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(p), str(dest))
    return target


def run(
    config: RunConfig,
    *,
    redo: Sequence[str] = (),
    stop_after: str | None = None,
    say: Callable[[str], None] = print,
    backend=None,
) -> dict:
    """Run every unfinished stage in order (see the module docstring). ``redo`` names stages to run again,
    with every stage after them; ``stop_after`` ends the run after that stage. Returns the stage log."""
    for name in (*redo, *([stop_after] if stop_after else [])):
        if name not in STAGES:
            raise InputError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    validate(config)
    with exclusive(config.path, "this run"):
        write_resolved(config)
        run_dir = config.path
        log = StageLog(run_dir)
        first_redo = min((STAGES.index(s) for s in redo), default=len(STAGES))
        again = [stage for stage in STAGES[first_redo:] if log.done(stage) or stage in redo]
        if again:
            moved = move_aside(run_dir, again)
            for stage in again:
                log.forget(stage)
            if moved:
                say(f"[{', '.join(again)}] to be redone; earlier outputs moved to {moved}")
        check_paths(config, [s for s in STAGES if not log.done(s)])
        splits = None
        params = None
        for stage in STAGES:
            if log.done(stage):
                entry = log.stages[stage]
                stale = stage in stale_stages(config, {stage: entry})
                say(
                    f"[{stage}] finished {entry['finished']}, skipped"
                    + (f" (the config changed since; pass --redo {stage} to run it again)" if stale else "")
                )
                if stage == "train":
                    params = {"student": entry["summary"].get("parameters")}
            else:
                if stage in ("knowledge", "predict", "evaluate", "compare"):
                    moved = move_aside(run_dir, [stage])  # a half-finished earlier attempt
                    if moved:
                        say(f"[{stage}] outputs of an unfinished attempt moved to {moved}")
                say(f"[{stage}] running")
                start = time.perf_counter()
                try:
                    if stage in ("generate", "knowledge") and splits is None:
                        splits = load_splits(config)
                    if stage == "generate":
                        summary = generate(config, splits, backend=backend)
                    elif stage == "knowledge":
                        summary = knowledge(config, splits)
                    elif stage == "train":
                        summary = train(config, resume=True)
                        params = {"student": summary["parameters"]}
                    elif stage == "predict":
                        summary = predict(config, config.evaluation.split)
                    elif stage == "evaluate":
                        summary = evaluate(config, config.evaluation.split)
                    else:
                        summary = compare(config, config.evaluation.split, params=params)
                except Exception as err:
                    raise StageError(
                        f"stage {stage!r} failed: {err.__class__.__name__}: {err}\n"
                        f"  finished stages are kept in {run_dir}; fix the cause and rerun the same command to resume at {stage!r}"
                        f" (or add --redo {stage} to start that stage afresh)"
                    ) from err
                seconds = time.perf_counter() - start
                log.mark(stage, summary, seconds, _digest(config, stage))
                say(f"[{stage}] done in {seconds:.1f} s")
            if stage == stop_after:
                break
        return log.stages


__all__ = [
    "STAGES",
    "STAGE_INPUTS",
    "STAGE_OUTPUTS",
    "StageError",
    "StageLog",
    "TeacherFailedError",
    "check_paths",
    "compare",
    "encoder_config",
    "evaluate",
    "generate",
    "generative_config",
    "knowledge",
    "load_one",
    "load_splits",
    "move_aside",
    "predict",
    "predict_student",
    "predict_teacher",
    "prompt_library",
    "result_lines",
    "run",
    "samples_per_template",
    "stale_stages",
    "student_knowledge",
    "student_teacher_answers",
    "task_spec",
    "train",
    "validate",
]
