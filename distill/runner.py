"""The generation runner: examples × templates × samples through a backend, cached, resumable, accounted.

Outputs are append-only JSONL shards in the run's ``teacher/`` folder. Each run writes a fresh shard (never
appending to one a killed run may have left half-written); lines are flushed and fsynced per batch. At
start, every valid line of every shard marks its request done, so a rerun — after kill -9 at any moment —
skips what is finished and makes each missing request once. A half-written last line is ignored (and its
request made again). A request that failed for its own reason (an unreadable image, a prompt the server
rejects) is stored with its error and counted; ``retry_failed`` redoes only those, and a later success
supersedes the failure. A request that failed for the teacher's reason (``Generation.transient``: a 503 or
429 after every retry, a response cut short) is stored and counted as a failed request, not an answer, and
every rerun makes it again until it succeeds. A teacher that cannot be reached (``TeacherUnavailable``)
stops the run after storing what came back: nothing is recorded for the requests never answered, so the
next run makes exactly those. Token counts a server reports that cannot be true are stored as 0 and counted
(``usage_anomalies``), never summed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from cotdistill.distill.backends import (
    Backend,
    BackendLoadError,
    Generation,
    Sampling,
    TeacherRequest,
    TeacherUnavailable,
    usage_anomaly,
)
from cotdistill.errors import RunError
from cotdistill.images import read_image_bytes
from cotdistill.locking import exclusive
from cotdistill.prompts import PromptLibrary, TemplateError, TemplateInfo
from cotdistill.records import Example, Usage
from cotdistill.tasks import TaskSpec

logger = logging.getLogger(__name__)


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:32]


def image_digest(path: str | None) -> str:
    """Hash of the image's bytes ('' when there is none or it cannot be read)."""
    if not path:
        return ""
    try:
        return hashlib.sha256(read_image_bytes(path)).hexdigest()[:16]
    except OSError:  # ImageFileError too: a FIFO or device is never read, a huge file never loaded
        return "unreadable"


def example_digest(example: Example) -> str:
    """Hash of what a prompt can read of the example: id, text, tokens, caption."""
    tokens = "\x1f".join(example.tokens) if example.tokens is not None else ""
    return _sha(example.id, example.text, tokens, str(example.meta.get("caption") or ""))


def _key_suffix(template: TemplateInfo, model: str, sampling: Sampling, sample: int, extra: str = "") -> str:
    return "\0".join(
        [
            template.name,
            template.version,
            template.digest,
            model,
            json.dumps(sampling.to_dict(), sort_keys=True),
            str(sample),
            extra,
        ]
    )


def cache_key(
    example_hash: str,
    image_hash: str,
    template: TemplateInfo,
    model: str,
    sampling: Sampling,
    sample: int,
    extra: str = "",
) -> str:
    """Content hash of everything a generation depends on: never positions, so reordering data or
    templates reuses every finished generation, and changing any input makes a new one."""
    return _hash_key(f"{example_hash}\0{image_hash}\0", _key_suffix(template, model, sampling, sample, extra))


def _hash_key(prefix: str, suffix: str) -> str:
    return hashlib.sha256((prefix + suffix).encode("utf-8")).hexdigest()[:32]


class StoreError(RunError):
    """The teacher's results could not be written (disk full, folder gone); the run stops, nothing is lost."""


def valid_record(obj) -> bool:
    """A stored generation as ``write_batch`` writes it: the fields of ``Generation.to_dict`` with their types,
    and text or an error."""
    if not isinstance(obj, dict):
        return False
    try:
        return (
            isinstance(obj["key"], str)
            and len(obj["key"]) == 32
            and isinstance(obj["example_id"], str)
            and isinstance(obj["template"], str)
            and type(obj["sample"]) is int
            and isinstance(obj["model"], str)
            and isinstance(obj["usage"], dict)
            and (obj["text"] is None or isinstance(obj["text"], str))
            and (obj["error"] is None or isinstance(obj["error"], str))
            and (obj["text"] is not None or obj["error"] is not None)
            and type(obj.get("transient", False)) is bool
            and (obj.get("usage_anomaly") is None or isinstance(obj["usage_anomaly"], str))
        )
    except KeyError:
        return False


class ShardStore:
    """The append-only shards of one ``teacher/`` folder."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.bad_lines = 0

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.jsonl"))

    def iter_lines(self) -> Iterator[str]:
        for shard in self.shards():
            with open(shard, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.endswith("\n"):
                        yield line
                    else:
                        self.bad_lines += 1  # cut off by a kill: its request is made again

    def finished(self) -> dict[str, bool]:
        """key -> succeeded, for every finished request: one that succeeded, or whose last failure was its
        own. A failed request (its last failure ``transient``: the teacher's) is not finished, so every run
        makes it again. Every line is parsed and checked whole (``valid_record``): a line damaged anywhere,
        even with its key and ending intact, is not counted as done, so its request is made again rather
        than lost."""
        state: dict[str, bool | None] = {}  # True: succeeded; False: failed on its own; None: failed request
        for obj in self.records():
            key = obj["key"]
            if state.get(key) is not True:
                state[key] = True if obj["error"] is None else (None if obj.get("transient") else False)
        return {key: ok for key, ok in state.items() if ok is not None}

    def records(self) -> Iterator[dict]:
        """Every stored line that ``valid_record`` accepts, parsed; the others are counted in ``bad_lines``."""
        for line in self.iter_lines():
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if valid_record(obj):
                yield obj
            else:
                self.bad_lines += 1

    def load(self) -> dict[str, Generation]:
        """One Generation per key: the last success, else the last failure."""
        out: dict[str, Generation] = {}
        for obj in self.records():
            g = Generation.from_dict(obj)
            prev = out.get(g.key)
            if prev is None or g.error is None or prev.error is not None:
                out[g.key] = g
        return out

    def open_writer(self):
        path = self.folder / f"shard-{time.time_ns()}-{os.getpid()}.jsonl"
        return open(path, "a", encoding="utf-8")


def write_batch(f, generations: Sequence[Generation], sync: bool = True) -> None:
    f.write("".join(json.dumps(g.to_dict(), ensure_ascii=False) + "\n" for g in generations))
    f.flush()
    if sync:
        os.fsync(f.fileno())


@dataclass
class RunStats:
    requests: int = 0
    already_done: int = 0
    generated: int = 0
    failures: Counter = field(default_factory=Counter)  # every failure, by reason
    failed_requests: int = 0  # of them, the teacher's (``Generation.transient``): made again by the next run
    usage_anomalies: int = 0  # generations whose token counts could not be true (stored as 0)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "requests": self.requests,
            "already_done": self.already_done,
            "generated": self.generated,
            "failures": sum(self.failures.values()),
            "failures_by_reason": dict(self.failures),
            "failed_requests": self.failed_requests,
            "usage_anomalies": self.usage_anomalies,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": self.seconds,
        }


def sample_sampling(sampling: Sampling, sample: int) -> Sampling:
    """Sample k of a request draws with seed + k, so the n samples of one prompt differ and repeat."""
    return Sampling(sampling.temperature, sampling.top_p, sampling.max_tokens, sampling.seed + sample)


def plan(
    examples: Sequence[Example],
    templates: Sequence[TemplateInfo],
    model: str,
    sampling: Sampling,
    samples: int | Mapping[str, int],
) -> Iterator[tuple[str, Example, TemplateInfo, int]]:
    """(key, example, template, sample) of every request, in a stable order, without rendering anything.
    ``samples`` is one count for every template, or a count per template name."""
    suffixes = [
        (t, s, _key_suffix(t, model, sample_sampling(sampling, s), s))
        for t in templates
        for s in range(samples if isinstance(samples, int) else samples[t.name])
    ]
    for ex in examples:
        prefix = f"{example_digest(ex)}\0{image_digest(ex.image)}\0"
        for t, s, suffix in suffixes:
            yield _hash_key(prefix, suffix), ex, t, s


def pending_requests(
    examples: Sequence[Example],
    templates: Sequence[TemplateInfo],
    model: str,
    sampling: Sampling,
    samples: int | Mapping[str, int],
    store: ShardStore,
    stats: RunStats,
    *,
    retry_failed: bool = False,
    limit: int | None = None,
) -> list[tuple[str, Example, TemplateInfo, int]]:
    """The requests not yet finished in ``store`` (failed ones too, with ``retry_failed``); counts into
    ``stats``."""
    done = store.finished()
    if store.bad_lines:
        logger.warning(
            "%d cut-off or unreadable lines in %s; their requests are made again",
            store.bad_lines,
            store.folder,
        )
    pending = []
    for key, ex, t, s in plan(examples, templates, model, sampling, samples):
        stats.requests += 1
        if key in done and (done[key] or not retry_failed):
            stats.already_done += 1
            continue
        pending.append((key, ex, t, s))
        if limit is not None and len(pending) >= limit:
            break
    return pending


@contextmanager
def locked_run(
    out_dir: str | os.PathLike,
    examples: Sequence[Example],
    template_names: Sequence[str],
    library: PromptLibrary,
    model: str,
    sampling: Sampling,
    samples: int | Mapping[str, int],
    retry_failed: bool,
    limit: int | None,
) -> Iterator[tuple[ShardStore, RunStats, list[tuple[str, Example, TemplateInfo, int]]]]:
    """The set-up of every generation run (``run_generation`` here, ``run_generation_ray`` in ``scale``):
    the teacher folder's lock, held until the block ends so that two runs never make the same request; its
    shards read; the requests planned, finished ones skipped and counted. Yields the store, this run's
    stats and the requests still to make."""
    # Before the lock: an unknown template name fails without touching the folder.
    templates = [library.get(n) for n in template_names]
    with exclusive(out_dir, "the teacher"):
        store = ShardStore(out_dir)
        stats = RunStats()
        pending = pending_requests(
            examples,
            templates,
            model,
            sampling,
            samples,
            store,
            stats,
            retry_failed=retry_failed,
            limit=limit,
        )
        yield store, stats, pending


def make_request(
    library: PromptLibrary,
    spec: TaskSpec,
    key: str,
    example: Example,
    template: TemplateInfo,
    sample: int,
    sampling: Sampling,
    *,
    sees_images: bool = True,
    structured: bool = False,
) -> TeacherRequest:
    return TeacherRequest(
        key,
        example.id,
        template.name,
        sample,
        library.render(template.name, example, spec, sees_images=sees_images),
        sample_sampling(sampling, sample),
        spec.answer_schema() if structured and template.kind == "answer" else None,
    )


def render_requests(
    library: PromptLibrary,
    spec: TaskSpec,
    chunk: Sequence[tuple[str, Example, TemplateInfo, int]],
    sampling: Sampling,
    model: str,
    *,
    sees_images: bool = True,
    structured: bool = False,
) -> tuple[list[TeacherRequest], list[Generation]]:
    """The chunk's requests, and a stored failure for each prompt that could not be rendered (a runaway
    prompt, a sandbox refusal on one example's text): one bad example never stops the run."""
    requests, failed = [], []
    for key, ex, t, s in chunk:
        try:
            requests.append(
                make_request(
                    library, spec, key, ex, t, s, sampling, sees_images=sees_images, structured=structured
                )
            )
        except TemplateError as err:
            logger.warning("example %s, template %s: %s", ex.id, t.name, err)
            failed.append(
                Generation(
                    key=key,
                    example_id=ex.id,
                    template=t.name,
                    sample=s,
                    text=None,
                    error=f"prompt not rendered: {err}",
                    model=model,
                )
            )
    return requests, failed


def batch_failed(requests: Sequence[TeacherRequest], err: Exception, model: str) -> list[Generation]:
    """Every request of a batch the backend raised on, stored as failed with the error."""
    return [
        Generation(
            key=r.key,
            example_id=r.example_id,
            template=r.template,
            sample=r.sample,
            text=None,
            error=f"backend error: {err.__class__.__name__}: {err}",
            model=model,
        )
        for r in requests
    ]


def checked(g: Generation) -> Generation:
    """A generation whose text is not a string is stored as failed, never passed on to the parsers; token
    counts that cannot be true (from any backend) are stored as 0 with the reason, never summed."""
    if g.error is None and not isinstance(g.text, str):
        g = dataclasses.replace(
            g, text=None, error=f"backend error: returned {type(g.text).__name__} instead of text"
        )
    if g.usage_anomaly is None and (anomaly := usage_anomaly(g.usage)):
        g = dataclasses.replace(g, usage=Usage(seconds=g.usage.seconds), usage_anomaly=anomaly)
    return g


def progress_bar(total: int, name: str, enabled: bool):
    return tqdm(total=total, desc=f"generate ({name})", unit="req", disable=not enabled)


def store_batch(f, gens: Sequence[Generation], stats: RunStats, start: float, bar, sync: bool = True) -> None:
    """One batch of results: checked, written (flushed; fsynced with ``sync``: a killed process loses
    nothing flushed, a crashed machine what was not fsynced), counted, shown."""
    gens = [checked(g) for g in gens]
    try:
        write_batch(f, gens, sync)
    except OSError as err:
        # A full disk or a vanished mount: every earlier batch is fsynced and kept, this one may be cut
        # short (its lines are then made again), and the run stops rather than spend teacher calls.
        raise StoreError(
            f"could not write the teacher's results to {getattr(f, 'name', 'the shard')}: "
            f"{err.strerror or err}; what was stored before is kept: free space and rerun to continue"
        ) from err
    for g in gens:
        stats.generated += 1
        stats.prompt_tokens += g.usage.prompt_tokens
        stats.completion_tokens += g.usage.completion_tokens
        if g.error:
            stats.failures[g.error.split(":")[0][:60]] += 1
            stats.failed_requests += g.transient
        if g.usage_anomaly:
            stats.usage_anomalies += 1
            logger.warning(
                "request %s (example %s): token usage not counted: %s", g.key, g.example_id, g.usage_anomaly
            )
    stats.seconds = time.perf_counter() - start
    bar.update(len(gens))
    bar.set_postfix(
        failed=sum(stats.failures.values()),
        tok_s=f"{stats.completion_tokens / max(stats.seconds, 1e-9):.0f}",
        refresh=False,  # shown at the bar's next refresh: answers stored one by one must not each redraw it
    )


def run_generation(
    examples: Sequence[Example],
    template_names: Sequence[str],
    library: PromptLibrary,
    spec: TaskSpec,
    backend: Backend,
    out_dir: str | os.PathLike,
    *,
    samples: int | Mapping[str, int] = 1,
    sampling: Sampling | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    retry_failed: bool = False,
    sees_images: bool = True,
    structured: bool = False,
    progress: bool = True,
) -> RunStats:
    """Make every missing generation; return what this run did. See the module docstring for guarantees."""
    sampling = sampling or Sampling()
    with locked_run(
        out_dir, examples, template_names, library, backend.model, sampling, samples, retry_failed, limit
    ) as (store, stats, pending):
        if not pending:
            return stats
        backend.ensure_loaded()
        start = time.perf_counter()
        bar = progress_bar(len(pending), backend.name, progress)
        stored: set[str] = set()  # the keys of the chunk in hand stored so far

        def keep(gens: list[Generation]) -> None:  # each answer stored as it comes: a kill loses none
            store_batch(f, gens, stats, start, bar, sync=False)
            stored.update(g.key for g in gens)

        with store.open_writer() as f:
            for i in range(0, len(pending), batch_size):
                chunk = pending[i : i + batch_size]
                requests, unrendered = render_requests(
                    library,
                    spec,
                    chunk,
                    sampling,
                    backend.model,
                    sees_images=sees_images,
                    structured=structured,
                )
                stored.clear()
                try:
                    if requests and hasattr(backend, "generate_each"):
                        backend.generate_each(requests, keep)
                    elif requests:  # a backend of its own making, with generate() alone: the batch at its end
                        keep(backend.generate(requests))
                except TeacherUnavailable as err:  # store what came back, stop: the rest is made next run
                    store_batch(f, [*unrendered, *err.made], stats, start, bar)
                    bar.close()
                    raise
                except BackendLoadError:
                    raise
                except Exception as err:  # a backend that raises for a whole batch: each request's failure
                    logger.exception("backend failed on a batch of %d requests", len(requests))
                    keep(batch_failed([r for r in requests if r.key not in stored], err, backend.model))
                store_batch(f, unrendered, stats, start, bar)  # and everything of the chunk fsynced
                missing = {r.key for r in requests} - stored
                if missing:
                    raise RunError(
                        f"backend {backend.name} returned no generation for {len(missing)} of {len(requests)} "
                        "requests"
                    )
        bar.close()
        return stats


def write_manifest(out_dir: str | os.PathLike, stats: RunStats, config: dict) -> Path:
    """manifest.json: what the teacher folder holds now (all shards) and what the last run did."""
    store = ShardStore(out_dir)
    gens = store.load()
    reasons = Counter(g.error.split(":")[0][:60] for g in gens.values() if g.error)
    manifest = {
        "generations": len(gens),
        "succeeded": sum(g.error is None for g in gens.values()),
        "failed": sum(reasons.values()),
        "failures_by_reason": dict(reasons),
        # of the failed, the teacher's: the generate stage is not done while one stands
        "failed_requests": sum(bool(g.error) and g.transient for g in gens.values()),
        "usage_anomalies": sum(g.usage_anomaly is not None for g in gens.values()),
        "prompt_tokens": sum(g.usage.prompt_tokens for g in gens.values()),
        "completion_tokens": sum(g.usage.completion_tokens for g in gens.values()),
        "cut_off_lines": store.bad_lines,
        "last_run": stats.to_dict(),
        "config": config,
    }
    path = Path(out_dir) / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
