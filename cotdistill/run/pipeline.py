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
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import yaml

from cotdistill.errors import InputError, Interrupted, RunError
from cotdistill.files import write_atomic
from cotdistill.locking import exclusive
from cotdistill.readers.common import DataFormatError
from cotdistill.run.config import RunConfig, to_dict, write_resolved
from cotdistill.run.context import RunContext
from cotdistill.run.logs import run_log
from cotdistill.run.stages import BY_NAME, STAGE_NAMES, STAGES
from cotdistill.run.validation import check_before_stages, validate

logger = logging.getLogger(__name__)


class StageError(RunError):
    """A stage of ``cotdistill run`` failed; the message names the stage, the cause and how to resume."""


def _digest(config: RunConfig, stage: str) -> str:
    tree = to_dict(config)
    part = {k: tree[k] for k in BY_NAME[stage].reads}
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
        write_atomic(self.path, json.dumps(self.stages, indent=2, ensure_ascii=False) + "\n")


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
        reads = (m.get("provenance") or {}).get("systems") or {}
        for name, sysm in m["systems"].items():
            lo, hi = sysm["f1_ci"]
            what = str(reads.get(name, "")).split(";")[0] if name == "student" else ""
            lines.append(
                f"  {name:<10} {100 * sysm['f1']:6.2f}  [{100 * lo:.2f}, {100 * hi:.2f}]"
                + (f"  ({what})" if what else "")
            )
        for pair in m.get("pairs", []):
            lo, hi = pair["difference_ci"]
            # the difference is F1(b) − F1(a) (student − teacher), as in report.md, report.html, metrics.json
            lines.append(
                f"  {pair['b']} − {pair['a']}: {100 * pair['f1_difference']:+.2f} F1 "
                f"[{100 * lo:+.2f}, {100 * hi:+.2f}], paired bootstrap p = {pair['p_value']:.3f}"
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
    found = [
        p for stage in stages for pattern in BY_NAME[stage].writes for p in sorted(run_dir.glob(pattern))
    ]
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


def _redo(ctx: RunContext, log: StageLog, redo: Sequence[str], say: Callable[[str], None]) -> None:
    """Forget the stages named in ``redo`` and every finished stage after the first of them; what they had
    written goes to ``RUN/previous/<n>/``."""
    first = min((STAGE_NAMES.index(s) for s in redo), default=len(STAGES))
    again = [stage for stage in STAGE_NAMES[first:] if log.done(stage) or stage in redo]
    if not again:
        return
    moved = move_aside(ctx.path, again)
    for stage in again:
        log.forget(stage)
    if moved:
        say(f"[{', '.join(again)}] to be redone; earlier outputs moved to {moved}")


def _logged(say: Callable[[str], None]) -> Callable[[str], None]:
    """``say``, and the same line in the run's log file."""

    def both(line: str) -> None:
        say(line)
        logger.info(line)

    return both


def _run_stage(ctx: RunContext, stage, log: StageLog, say: Callable[[str], None]) -> None:
    """Run one unfinished stage and record it as done (after it returned, never before)."""
    if not stage.resumes:
        moved = move_aside(ctx.path, [stage.name])  # a half-finished earlier attempt
        if moved:
            say(f"[{stage.name}] outputs of an unfinished attempt moved to {moved}")
    say(f"[{stage.name}] running")
    start = time.perf_counter()
    try:
        summary = stage.run(ctx)
    except Interrupted as err:
        raise Interrupted(
            f"{err}\n  finished stages are kept in {ctx.path}; run the same command again to resume at "
            f"{stage.name!r}"
        ) from err
    except Exception as err:
        raise StageError(
            f"stage {stage.name!r} failed: {err.__class__.__name__}: {err}\n"
            f"  finished stages are kept in {ctx.path}; fix the cause and rerun the same command to resume at "
            f"{stage.name!r} (or add --redo {stage.name} to start that stage afresh)"
        ) from err
    seconds = time.perf_counter() - start
    log.mark(stage.name, summary, seconds, _digest(ctx.config, stage.name))
    ctx.summaries[stage.name] = summary
    say(f"[{stage.name}] done in {seconds:.1f} s")


def run(
    config: RunConfig,
    *,
    redo: Sequence[str] = (),
    stop_after: str | None = None,
    say: Callable[[str], None] = print,
    backend=None,
) -> dict:
    """Run every unfinished stage in order (see the module docstring). ``redo`` names stages to run again,
    with every stage after them; ``stop_after`` ends the run after that stage. Every check runs before the
    run folder is touched. Returns the stage log."""
    for name in (*redo, *([stop_after] if stop_after else [])):
        if name not in STAGE_NAMES:
            raise InputError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")
    validate(config)
    log = StageLog(config.path) if (config.path / "stages.json").is_file() else None
    first = min((STAGE_NAMES.index(s) for s in redo), default=len(STAGES))
    pending = [s for i, s in enumerate(STAGE_NAMES) if i >= first or log is None or not log.done(s)]
    check_before_stages(config, pending, backend_given=backend is not None)
    ctx = RunContext(config, backend=backend)
    with exclusive(config.path, "this run"), run_log(config.path):
        say = _logged(say)
        write_resolved(config)
        log = StageLog(config.path)
        _redo(ctx, log, redo, say)
        for stage in STAGES:
            if log.done(stage.name):
                entry = log.stages[stage.name]
                stale = stage.name in stale_stages(config, {stage.name: entry})
                say(
                    f"[{stage.name}] finished {entry['finished']}, skipped"
                    + (
                        f" (the config changed since; pass --redo {stage.name} to run it again)"
                        if stale
                        else ""
                    )
                )
                ctx.summaries[stage.name] = entry["summary"]
            else:
                _run_stage(ctx, stage, log, say)
            if stage.name == stop_after:
                break
        return log.stages


def print_result(config: RunConfig, stages: dict) -> None:
    """The end of a run on screen: scores, knowledge counts, the report, and a loud note when finished
    stages are older than the config."""
    print()
    for line in result_lines(config, stages):
        print(line)
    if "compare" in stages:
        print(f"report: {stages['compare']['summary']['report']}")
    stale = stale_stages(config, stages)
    if stale:
        print(
            f"\nNOTE: {', '.join(stale)} finished with an earlier config, so these results are from that "
            f"config, not this one. To redo them: add --redo {stale[0]} (earlier outputs are moved to "
            f"{config.path / 'previous'}/, never deleted).",
            file=sys.stderr,
        )
