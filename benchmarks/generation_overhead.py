"""Generation pipeline overhead, with a backend that returns at once (one core):

1. throughput: render, key, cache check and write for N new requests (target: >= 5,000 requests/s);
2. resume: with 1,000,000 finished requests on disk, the time from the call until the backend receives the
   first new request (target: <= 10 s).

    python benchmarks/generation_overhead.py [--requests 30000] [--finished 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

from common import pin_one_core, write_result

from cotdistill.distill.backends import EchoBackend, Generation, Sampling
from cotdistill.distill.runner import ShardStore, plan, run_generation, write_batch
from cotdistill.prompts import PromptLibrary
from cotdistill.records import EntityAnswer, Example, Usage
from cotdistill.tasks import TaskSpec

GRAINS = ["mner.noun", "mner.sentence", "mner.answer"]
SPEC = TaskSpec("mner", ("LOC", "ORG", "OTHER", "PER"))


def posts(n: int, offset: int = 0) -> list[Example]:
    out = []
    for i in range(offset, offset + n):
        text = f"RT @user{i % 97} : post {i} about Paris , Obama and # Mets http://t.co/x{i}"
        out.append(Example(str(i), "mner", text, EntityAnswer(), tokens=tuple(text.split())))
    return out


class _Stop(BaseException):
    """Ends the run from inside the backend (the runner stores ordinary exceptions as failures)."""


class FirstRequestClock(EchoBackend):
    """Echo backend that notes when the first request arrives, then stops the run."""

    first_at: float | None = None

    def generate(self, requests):
        if self.first_at is None:
            self.first_at = time.perf_counter()
        raise _Stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--finished", type=int, default=1_000_000)
    args = parser.parse_args()
    pin_one_core()
    lib = PromptLibrary()
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        exs = posts(args.requests // len(GRAINS))
        start = time.perf_counter()
        stats = run_generation(
            exs,
            GRAINS,
            lib,
            SPEC,
            EchoBackend("echo", text="x" * 200),
            Path(tmp) / "a",
            batch_size=256,
            progress=False,
        )
        dt = time.perf_counter() - start
        result["throughput"] = {
            "requests": stats.generated,
            "seconds": dt,
            "requests_per_second": stats.generated / dt,
            "target": 5000,
        }
        print(
            f"throughput: {stats.generated:,} requests in {dt:.2f} s = {stats.generated / dt:,.0f} requests/s"
        )

        finished = posts(args.finished // len(GRAINS) + 1)
        folder = Path(tmp) / "b"
        templates = [lib.get(n) for n in GRAINS]
        made = 0
        with ShardStore(folder).open_writer() as f:
            batch = []
            for key, ex, t, s in plan(finished, templates, "echo", Sampling(), 1):
                batch.append(
                    Generation(
                        key=key,
                        example_id=ex.id,
                        template=t.name,
                        sample=s,
                        text="x" * 200,
                        usage=Usage(50, 50, 0.0),
                        error=None,
                        model="echo",
                    )
                )
                if len(batch) == 10_000:
                    write_batch(f, batch)
                    made += len(batch)
                    batch = []
            write_batch(f, batch)
            made += len(batch)
        all_examples = [*finished, *posts(10, offset=len(finished))]
        backend = FirstRequestClock("echo")
        start = time.perf_counter()
        with contextlib.suppress(_Stop):
            run_generation(all_examples, GRAINS, lib, SPEC, backend, folder, batch_size=256, progress=False)
        first = backend.first_at - start if backend.first_at else None
        result["resume"] = {
            "finished_requests": made,
            "seconds_to_first_new_request": first,
            "target_seconds": 10,
        }
        print(f"resume: {made:,} finished requests on disk, first new request after {first:.2f} s")
    result["meets_targets"] = result["throughput"]["requests_per_second"] >= 5000 and (first or 1e9) <= 10
    write_result("generation_overhead", result, "python benchmarks/generation_overhead.py")


if __name__ == "__main__":
    main()
