"""The stages of a run, each declared once: its name, the config sections its result depends on, what it
writes in the run folder, whether it resumes its own partial output, and the function that runs it.

A stage is done when ``RUN/stages.json`` has its entry, which the pipeline writes only after the stage
returned. A stage that resumes (``generate``: its shards skip finished keys; ``train``: the last whole
checkpoint) picks up a half-finished attempt; any other stage's half-finished outputs are moved to
``RUN/previous/<n>/`` and it starts afresh. ``cotdistill.run.pipeline`` loops over ``STAGES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cotdistill.run.context import RunContext
from cotdistill.run.stages.scoring import compare, evaluate, predict
from cotdistill.run.stages.student import train
from cotdistill.run.stages.teacher import generate, knowledge


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of ``cotdistill run``."""

    name: str
    reads: tuple[str, ...]  # the config sections its result depends on (a change there makes it stale)
    writes: tuple[str, ...]  # what it writes, relative to the run folder (glob patterns)
    resumes: bool  # picks up its own half-finished output (else that output is moved aside first)
    run: Callable[[RunContext], dict]  # returns the summary kept in RUN/stages.json


def _split(ctx: RunContext) -> str:
    return ctx.config.evaluation.split


_TEACHER = ("data", "teacher")
_ALL = ("data", "teacher", "knowledge", "student", "evaluation")

STAGES: tuple[Stage, ...] = (
    Stage("generate", _TEACHER, ("teacher",), True, generate),
    Stage("knowledge", (*_TEACHER, "knowledge"), ("knowledge",), False, knowledge),
    Stage("train", _ALL[:4], ("student",), True, lambda ctx: train(ctx, resume=True)),
    Stage("predict", _ALL, ("predictions",), False, lambda ctx: predict(ctx, _split(ctx))),
    Stage("evaluate", _ALL, ("report/scores",), False, lambda ctx: evaluate(ctx, _split(ctx))),
    Stage(
        "compare",
        _ALL,
        ("report/metrics.json", "report/report.md", "report/report.html", "report/*.png"),
        False,
        lambda ctx: compare(ctx, _split(ctx)),
    ),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
BY_NAME = {s.name: s for s in STAGES}
