"""The generation runner: cache keys, resume, failures, and kill -9 at any moment."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from cotdistill.distill.backends import EchoBackend, ReplayBackend, Sampling, make_backend
from cotdistill.distill.runner import ShardStore, plan, run_generation, write_manifest
from cotdistill.prompts import PromptLibrary
from cotdistill.records import EntityAnswer, Example
from cotdistill.tasks import TaskSpec


def examples(n):
    return [
        Example(
            str(i),
            "mner",
            f"post number {i} about Paris",
            EntityAnswer(),
            tokens=("post", "number", str(i), "about", "Paris"),
        )
        for i in range(n)
    ]


SPEC = TaskSpec("mner", ("LOC", "ORG", "OTHER", "PER"))
GRAINS = ["mner.noun", "mner.sentence", "mner.answer"]


def test_keys_depend_on_content_not_position():
    lib = PromptLibrary()
    ts = [lib.get(n) for n in GRAINS]
    exs = examples(3)
    keys = [k for k, *_ in plan(exs, ts, "m", Sampling(), 2)]
    assert len(set(keys)) == 3 * 3 * 2
    assert set(keys) == {k for k, *_ in plan(exs[::-1], ts[::-1], "m", Sampling(), 2)}
    assert set(keys).isdisjoint(k for k, *_ in plan(exs, ts, "other-model", Sampling(), 2))
    assert set(keys).isdisjoint(k for k, *_ in plan(exs, ts, "m", Sampling(temperature=0.7), 2))
    from cotdistill.distill.runner import cache_key, example_digest, image_digest

    first = next(plan(exs, ts, "m", Sampling(), 2))
    assert first[0] == cache_key(example_digest(exs[0]), image_digest(None), ts[0], "m", Sampling(), 0)
    changed = [Example("0", "mner", "another text", EntityAnswer(), tokens=("another", "text"))]
    assert next(plan(changed, ts, "m", Sampling(), 1))[0] not in keys


def test_resume_failures_and_retry(tmp_path):
    lib = PromptLibrary()
    out = tmp_path / "teacher"
    backend = EchoBackend("echo", text="Named entities:1. Paris (city)", fail_ids=["2"])
    s1 = run_generation(examples(5), GRAINS, lib, SPEC, backend, out, samples=2, batch_size=4, progress=False)
    assert (s1.requests, s1.generated, sum(s1.failures.values())) == (30, 30, 6)
    s2 = run_generation(examples(5), GRAINS, lib, SPEC, backend, out, samples=2, progress=False)
    assert (s2.already_done, s2.generated) == (30, 0)  # nothing is paid for twice
    fixed = EchoBackend("echo", text="ok")
    s3 = run_generation(
        examples(5), GRAINS, lib, SPEC, fixed, out, samples=2, retry_failed=True, progress=False
    )
    assert (s3.already_done, s3.generated, sum(s3.failures.values())) == (24, 6, 0)
    gens = ShardStore(out).load()
    assert len(gens) == 30 and all(g.error is None for g in gens.values())
    manifest = json.loads(write_manifest(out, s3, {"backend": "echo"}).read_text())
    assert manifest["succeeded"] == 30 and manifest["failed"] == 0
    s4 = run_generation(examples(8), GRAINS, lib, SPEC, fixed, out, samples=2, limit=5, progress=False)
    assert s4.generated == 5


def test_backend_exception_is_stored_not_fatal(tmp_path):
    class Broken(EchoBackend):
        def generate(self, requests):
            raise ConnectionError("server gone")

    stats = run_generation(
        examples(2), ["mner.noun"], PromptLibrary(), SPEC, Broken("x"), tmp_path, progress=False
    )
    assert stats.failures == {"backend error": 2}
    assert all("server gone" in g.error for g in ShardStore(tmp_path).load().values())


def test_replay_backend(tmp_path):
    path = tmp_path / "k.jsonl"
    path.write_text('{"id": "0", "text": "Named entities:1. Paris (city)"}\n', encoding="utf-8")
    run_generation(
        examples(2),
        ["mner.answer"],
        PromptLibrary(),
        SPEC,
        ReplayBackend("chatgpt-pgim", path=str(path)),
        tmp_path / "t",
        progress=False,
    )
    gens = sorted(ShardStore(tmp_path / "t").load().values(), key=lambda g: g.example_id)
    assert gens[0].text.startswith("Named entities") and gens[1].error.startswith("no replayed text")
    with pytest.raises(
        ValueError,
        match="unknown teacher backend 'vlm'; expected one of: vllm, transformers, openai, replay, echo",
    ):
        make_backend("vlm", "m")


CHILD = textwrap.dedent(
    """
    import sys
    from cotdistill.distill.backends import EchoBackend
    from cotdistill.distill.runner import run_generation
    from cotdistill.prompts import PromptLibrary
    from cotdistill.records import EntityAnswer, Example
    from cotdistill.tasks import TaskSpec
    exs = [Example(str(i), "mner", f"post {i}", EntityAnswer(), tokens=("post", str(i))) for i in range(400)]
    run_generation(exs, ["mner.noun", "mner.answer"], PromptLibrary(), TaskSpec("mner", ("PER",)),
                   EchoBackend("echo", text="x" * 2000, delay=0.01), sys.argv[1], batch_size=7, progress=False)
    """
)


def _stored_keys(out):
    keys = []
    for shard in ShardStore(out).shards():
        for line in shard.read_text(encoding="utf-8").split("\n"):
            with contextlib.suppress(ValueError):  # a line cut off by a kill
                keys.append(json.loads(line)["key"])
    return keys


def test_kill_9_at_any_moment_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "teacher"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    for target in (100, 350, 600):  # kill mid-run, at three points of progress
        proc = subprocess.Popen([sys.executable, str(script), str(out)])
        deadline = time.time() + 120
        while len(_stored_keys(out)) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stored = _stored_keys(out)
        assert target <= len(stored) < 800 and len(stored) == len(set(stored))
    subprocess.run([sys.executable, str(script), str(out)], check=True, timeout=300)
    keys = _stored_keys(out)
    assert len(keys) == len(set(keys)) == 800  # every request exactly once
    assert len(ShardStore(out).shards()) == 4


def test_a_backend_returning_non_text_is_a_stored_failure(tmp_path):
    from cotdistill.distill.backends import Generation

    class Odd(EchoBackend):
        def generate(self, requests):
            return [
                Generation(
                    key=r.key,
                    example_id=r.example_id,
                    template=r.template,
                    sample=r.sample,
                    text={"not": "text"},
                    model=self.model,
                )  # type: ignore[arg-type]
                for r in requests
            ]

    stats = run_generation(
        examples(2), ["mner.answer"], PromptLibrary(), SPEC, Odd("odd"), tmp_path, progress=False
    )
    assert sum(stats.failures.values()) == 2
    gens = ShardStore(tmp_path).load().values()
    assert all(g.text is None and "instead of text" in g.error for g in gens)


def test_a_line_damaged_in_the_middle_is_made_again_not_lost(tmp_path):
    lib = PromptLibrary()
    out = tmp_path / "teacher"
    backend = EchoBackend("echo", text="Named entities:1. Paris (city)")
    run_generation(examples(3), GRAINS, lib, SPEC, backend, out, progress=False)
    shard = ShardStore(out).shards()[0]
    lines = shard.read_text(encoding="utf-8").splitlines(keepends=True)
    # key and ending intact, the middle overwritten (a torn sector, a bad copy)
    middle = len(lines[4]) // 2
    lines[4] = lines[4][:middle] + "\x00" * 12 + lines[4][middle + 12 :]
    shard.write_text("".join(lines), encoding="utf-8")
    store = ShardStore(out)
    assert len(store.finished()) == 8 and store.bad_lines == 1
    again = run_generation(examples(3), GRAINS, lib, SPEC, backend, out, progress=False)
    assert (again.already_done, again.generated) == (8, 1)
    assert len(ShardStore(out).load()) == 9


@pytest.mark.parametrize(
    "line",
    [
        '{"key": "%s", "example_id": 3, "template": "t", "sample": 0, "model": "m", "text": "x", "usage": {}, "error": null}',
        '{"key": "%s", "example_id": "3", "template": "t", "sample": "0", "model": "m", "text": "x", "usage": {}, "error": null}',
        '{"key": "%s", "example_id": "3", "template": "t", "sample": 0, "model": "m", "text": null, "usage": {}, "error": null}',
        '["%s"]',
    ],
)
def test_a_stored_line_of_the_wrong_shape_is_not_done(tmp_path, line):
    store = ShardStore(tmp_path)
    (tmp_path / "shard-1-1.jsonl").write_text((line % ("a" * 32)) + "\n", encoding="utf-8")
    assert store.finished() == {} and store.bad_lines == 1
    assert ShardStore(tmp_path).load() == {}


def test_rationale_samples_sample_the_answer_only(tmp_path):
    lib = PromptLibrary()
    ts = [lib.get(n) for n in GRAINS]
    counts = {"mner.noun": 1, "mner.sentence": 1, "mner.answer": 3}
    planned = list(plan(examples(2), ts, "m", Sampling(temperature=0.7), counts))
    assert len(planned) == 2 * 5
    # the same keys as a plan that samples everything three times: nothing made so far is lost
    full = {k for k, *_ in plan(examples(2), ts, "m", Sampling(temperature=0.7), 3)}
    assert {k for k, *_ in planned} <= full


def test_a_second_writer_on_the_same_teacher_folder_is_refused(tmp_path):
    from cotdistill.locking import RunLocked

    out = tmp_path / "teacher"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from cotdistill.locking import exclusive
                with exclusive({str(out)!r}):
                    print("locked", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        backend = EchoBackend("echo", text="x")
        with pytest.raises(RunLocked, match=f"another cotdistill process \\(pid {holder.pid}\\)"):
            run_generation(examples(2), GRAINS, PromptLibrary(), SPEC, backend, out, progress=False)
        assert ShardStore(out).shards() == []  # nothing was made
    finally:
        holder.kill()
        holder.wait()
    # the kernel drops the lock with its holder, even on kill -9: the next run goes ahead
    stats = run_generation(
        examples(2), GRAINS, PromptLibrary(), SPEC, EchoBackend("echo", text="x"), out, progress=False
    )
    assert stats.generated == 6


def test_a_prompt_that_cannot_be_rendered_fails_alone(tmp_path):
    folder = tmp_path / "templates" / "mner"
    folder.mkdir(parents=True)
    # a template that blows up on one example's text only
    (folder / "picky.j2").write_text(
        '{#- name: mner.picky | version: 1 | kind: cot | x -#}\n{% extends "common/base.j2" %}'
        '{% block user %}{{ text * (400000 if "3" in text else 1) }}{% endblock %}'
    )
    lib = PromptLibrary([tmp_path / "templates"])
    out = tmp_path / "teacher"
    stats = run_generation(
        examples(5),
        ["mner.picky"],
        lib,
        SPEC,
        EchoBackend("echo", text="x"),
        out,
        batch_size=2,
        progress=False,
    )
    gens = ShardStore(out).load()
    assert stats.generated == 5 and len(gens) == 5
    bad = [g for g in gens.values() if g.error]
    assert [g.example_id for g in bad] == ["3"] and bad[0].error.startswith("prompt not rendered: ")
    assert "over the 1,000,000 limit" in bad[0].error


def test_a_full_disk_stops_the_run_and_the_rerun_completes(tmp_path, monkeypatch):
    import errno

    import cotdistill.distill.runner as runner

    lib = PromptLibrary()
    out = tmp_path / "teacher"
    backend = EchoBackend("echo", text="x")
    real_fsync, calls = os.fsync, []

    def full(fd):
        calls.append(fd)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(runner.os, "fsync", full)
    with pytest.raises(runner.StoreError, match="No space left on device; what was stored before is kept"):
        run_generation(examples(6), GRAINS, lib, SPEC, backend, out, batch_size=3, progress=False)
    monkeypatch.setattr(runner.os, "fsync", real_fsync)
    again = run_generation(examples(6), GRAINS, lib, SPEC, backend, out, batch_size=3, progress=False)
    assert again.already_done >= 6 and again.already_done + again.generated == 18
    lines = [json.loads(x) for p in ShardStore(out).shards() for x in p.read_text().splitlines()]
    assert len({x["key"] for x in lines}) == 18


def test_a_failed_request_is_made_again_by_a_plain_rerun_and_an_own_failure_only_when_asked(tmp_path):
    from cotdistill.distill.backends import Generation
    from cotdistill.records import Usage

    class Flaky(EchoBackend):
        """Example 1's requests fail for the teacher's reason, example 2's for their own; example 3 reports a
        negative token count in a Generation it builds itself."""

        def generate(self, requests):
            gens = super().generate(requests)
            for i, (r, g) in enumerate(zip(requests, gens, strict=True)):
                if r.example_id == "1":
                    gens[i] = self.failed(r, "backend error: HTTP 503 after 5 retries", transient=True)
                elif r.example_id == "3":
                    fields = {f: getattr(g, f) for f in ("key", "example_id", "template", "sample", "text")}
                    gens[i] = Generation(**fields, usage=Usage(-1, 3, 0.0))
            return gens

    lib, out = PromptLibrary(), tmp_path / "teacher"
    first = run_generation(
        examples(4), ["mner.answer"], lib, SPEC, Flaky("e", fail_ids=["2"]), out, progress=False
    )
    assert (first.failed_requests, sum(first.failures.values()), first.usage_anomalies) == (1, 2, 1)
    assert first.prompt_tokens == sum(g.usage.prompt_tokens for g in ShardStore(out).load().values()) > 0
    by_example = {g.example_id: g for g in ShardStore(out).load().values()}
    assert (
        by_example["3"].usage_anomaly == "prompt_tokens=-1 is negative" and by_example["3"].usage == Usage()
    )
    again = run_generation(
        examples(4), ["mner.answer"], lib, SPEC, EchoBackend("e", text="ok"), out, progress=False
    )
    assert (again.already_done, again.generated) == (3, 1)  # the failed request only, not example 2's
    manifest = json.loads(write_manifest(out, again, {}).read_text())
    assert (manifest["failed"], manifest["failed_requests"], manifest["usage_anomalies"]) == (1, 0, 1)
    asked = run_generation(
        examples(4),
        ["mner.answer"],
        lib,
        SPEC,
        EchoBackend("e", text="ok"),
        out,
        retry_failed=True,
        progress=False,
    )
    assert (asked.already_done, asked.generated) == (3, 1)


class _Killed(BaseException):
    """Stands for kill -9 in the middle of a batch (the runner stores ordinary exceptions as failures)."""


class HalfBatch(EchoBackend):
    """Answers one by one, as a server's answers arrive, and dies after ``alive`` of them."""

    alive = 0

    def generate_each(self, requests, store):
        for r in requests:
            if self.alive == 0:
                raise _Killed
            self.alive -= 1
            store(self.generate([r]))


def test_answers_are_stored_as_they_arrive_so_a_kill_mid_batch_loses_none(tmp_path):
    backend = HalfBatch("echo")
    backend.alive = 7  # of a batch of 32: a batch written at its end would lose all seven
    with pytest.raises(_Killed):
        run_generation(examples(16), GRAINS[:2], PromptLibrary(), SPEC, backend, tmp_path, batch_size=32)
    assert len(_stored_keys(tmp_path)) == 7
    backend.alive = 10**6
    calls = []
    real = backend.generate
    backend.generate = lambda reqs: calls.extend(r.key for r in reqs) or real(reqs)
    stats = run_generation(examples(16), GRAINS[:2], PromptLibrary(), SPEC, backend, tmp_path, batch_size=32)
    assert stats.already_done == 7 and len(calls) == 32 - 7  # only what was missing is asked again
    assert len(_stored_keys(tmp_path)) == 32
