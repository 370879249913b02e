"""Partial outages and hostile servers (issue 27), against ``fault_server.FaultServer``: a failed request is
stored and counted as one, never as an answer, and the generate stage is not done while one stands; a rerun
makes exactly those; a key the server echoes is never stored; token counts that cannot be true are counted,
never summed. The last test drives ``cotdistill run`` through a seeded schedule of every fault."""

import json
from collections import Counter

import pytest
import yaml
from fault_server import FAULTS, OK_ACTIONS, FaultServer, Schedule

from cotdistill.distill.backends import OpenAIBackend
from cotdistill.distill.knowledge import build_knowledge
from cotdistill.distill.runner import ShardStore, run_generation, write_manifest
from cotdistill.prompts import PromptLibrary
from cotdistill.records import EntityAnswer, Example
from cotdistill.run.cli import main
from cotdistill.run.demo import write_synthetic_twitter
from cotdistill.tasks import TaskSpec

KEY = "sk-fault-test-0123456789abcdef"
SPEC = TaskSpec("mner", ("LOC", "ORG", "OTHER", "PER"))
NAMES = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
FAILED = {"503", "429-long", "truncated"}  # what ends a request without an answer (after the retries)


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("FAULT_TEST_KEY", KEY)


def posts(names=NAMES):
    return [
        Example(
            name, "mner", f"post {name} about Paris", EntityAnswer(), tokens=("post", name, "about", "Paris")
        )
        for name in names
    ]


def teacher(url, **options):
    settings = {"concurrency": 4, "max_retries": 2, "timeout": 5, "max_retry_wait": 0.2, **options}
    return OpenAIBackend("fault", base_url=url, api_key_env="FAULT_TEST_KEY", **settings)


def generate(url, out, names=NAMES):
    return run_generation(
        posts(names), ["mner.answer"], PromptLibrary(), SPEC, teacher(url), out, batch_size=4, progress=False
    )


def test_a_failed_request_is_stored_as_one_and_only_a_rerun_of_it_is_made(tmp_path):
    out = tmp_path / "teacher"
    with FaultServer(Schedule(rules=[("post bravo", ["503"] * 9), ("post delta", ["truncated"])])) as srv:
        stats = generate(srv.url, out)
        gens = {g.example_id: g for g in ShardStore(out).load().values()}
        assert (stats.generated, stats.failed_requests, sum(stats.failures.values())) == (6, 2, 2)
        assert gens["bravo"].text is None and gens["bravo"].transient
        assert gens["bravo"].error.startswith("backend error: HTTP 503 after 2 retries")
        assert gens["delta"].transient and gens["delta"].error.startswith("malformed response")
        manifest = json.loads(write_manifest(out, stats, {}).read_text())
        assert (manifest["succeeded"], manifest["failed"], manifest["failed_requests"]) == (4, 2, 2)

        mark = srv.mark()
        again = generate(srv.url, out)  # a plain rerun, no --retry-failed: the failed requests only
        assert (again.already_done, again.generated, again.failed_requests) == (4, 2, 1)  # bravo still 503s
        assert len(srv.requested(since=mark)) == 2
        # the knowledge drops bravo as a failed request, not as an answer it could not parse
        report = build_knowledge(posts(), list(ShardStore(out).load().values()), SPEC, PromptLibrary())
        assert {r.id: r.reason for r in report.records}["bravo"] == "answer request failed"
        assert report.counts["failed requests"] == 1 and "dropped: answer unparsable" not in report.counts
        srv.heal()
        mark = srv.mark()
        last = generate(srv.url, out)
        assert (last.already_done, last.generated, last.failed_requests) == (5, 1, 0)
        assert len(srv.requested(since=mark)) == 1
    gens = ShardStore(out).load()
    assert len(gens) == 6 and all(g.error is None for g in gens.values())


def test_a_key_the_server_echoes_is_never_stored(tmp_path):
    out = tmp_path / "teacher"
    with FaultServer(Schedule(rules=[("post alpha", ["echo"]), ("post bravo", ["400-echo"])])) as srv:
        generate(srv.url, out, ["alpha", "bravo", "charlie"])
    stored = "".join(p.read_text() for p in ShardStore(out).shards())
    gens = {g.example_id: g for g in ShardStore(out).load().values()}
    assert KEY not in stored
    assert gens["alpha"].text.endswith("(your key is [api key removed])")
    assert (
        gens["bravo"].error.startswith("backend error: HTTP 400")
        and "[api key removed]" in gens["bravo"].error
    )
    assert not gens["bravo"].transient  # a rejected request is its own failure, not the teacher's


def test_token_counts_that_cannot_be_true_are_counted_never_summed(tmp_path, caplog):
    out = tmp_path / "teacher"
    rules = [("post alpha", ["usage-negative"]), ("post bravo", ["usage-huge"])]
    with FaultServer(Schedule(rules=rules)) as srv:
        stats = generate(srv.url, out)
    assert stats.usage_anomalies == 2
    assert (stats.prompt_tokens, stats.completion_tokens) == (11 * 4, 7 * 4)  # the four believable ones
    gens = {g.example_id: g for g in ShardStore(out).load().values()}
    assert gens["alpha"].usage_anomaly == "prompt_tokens=-5 is negative"
    assert gens["bravo"].usage_anomaly.startswith(
        "completion_tokens=1,000,000,000 is more than 100 × max_tokens"
    )
    assert gens["alpha"].text == '{"entities": []}' and gens["alpha"].error is None  # the answer is kept
    manifest = json.loads(write_manifest(out, stats, {}).read_text())
    assert (manifest["usage_anomalies"], manifest["prompt_tokens"], manifest["completion_tokens"]) == (
        2,
        44,
        28,
    )
    assert sum("token usage not counted" in r.message for r in caplog.records) == 2


def write_config(tmp_path, url) -> str:
    student = tmp_path / "student"  # never loaded: the run stops after generate
    student.mkdir()
    (student / "config.json").write_text("{}")
    config = {
        "name": "faults",
        "run_dir": str(tmp_path / "runs"),
        "data": {
            "dataset": "twitter2015",
            "data_dir": str(write_synthetic_twitter(tmp_path / "data")),
            "splits": ["test"],
        },
        "teacher": {
            "backend": "openai",
            "model": "fault",
            "templates": ["mner.answer", "mner.noun"],
            "max_tokens": 32,
            "batch_size": 8,
            "options": {
                "base_url": url,
                "api_key_env": "FAULT_TEST_KEY",
                "concurrency": 4,
                "max_retries": 2,
                "timeout": 5,
                "max_retry_wait": 0.3,
            },
        },
        "student": {"model": str(student)},
    }
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def stored(run):
    """Every stored line of the teacher's test split, and its manifest."""
    folder = run / "teacher" / "test"
    lines = [json.loads(line) for p in sorted(folder.glob("shard-*.jsonl")) for line in p.open()]
    return lines, json.loads((folder / "manifest.json").read_text())


def check_each_request_once(srv, lines, manifest, failed: set[str], requests: int = 40):
    """Every request ends with exactly one stored answer or one counted failed request; none twice."""
    answers = Counter(g["key"] for g in lines if g["error"] is None)
    assert set(answers.values()) <= {1}  # no answer stored twice
    assert len({g["key"] for g in lines}) == manifest["generations"] == len(srv.requested()) == requests
    assert (manifest["succeeded"], manifest["failed"]) == (len(answers), requests - len(answers))
    assert manifest["failed_requests"] == manifest["failed"] == len(failed)
    served_ok = Counter(digest for digest, _, action in srv.log if action in OK_ACTIONS)
    assert set(served_ok.values()) <= {1} and len(served_ok) == len(answers)  # never answered twice


def test_generate_through_a_faulty_server_finishes_resumes_and_completes(tmp_path, capsys):
    # each fault once among the first requests to arrive, two of them down for good; the rest drawn
    rates = dict.fromkeys(FAULTS, 0.05)
    schedule = Schedule(seed=3, sticky=0.05, rates=rates, first=["sticky", "sticky", *FAULTS])
    with FaultServer(schedule) as srv:
        config = write_config(tmp_path, srv.url)
        run = tmp_path / "runs" / "faults"
        assert main(["run", config, "--stop-after", "generate"]) == 1
        err = capsys.readouterr().err
        failed = {d for d, action in srv.last_actions().items() if action in FAILED}
        assert srv.served() >= set(FAULTS)  # every kind of fault was served
        assert f"{len(failed)} of 40 teacher requests failed" in err and "rerun the same command" in err
        assert not (run / "stages.json").is_file() or "generate" not in json.loads(
            (run / "stages.json").read_text()
        )
        lines, manifest = stored(run)
        check_each_request_once(srv, lines, manifest, failed)
        # what the server lied about is counted, not summed; the key it echoed is not stored
        ends = Counter(srv.last_actions().values())
        believed = manifest["succeeded"] - ends["usage"]
        assert manifest["usage_anomalies"] == ends["usage"] > 0
        assert (manifest["prompt_tokens"], manifest["completion_tokens"]) == (11 * believed, 7 * believed)
        shards = "".join(p.read_text() for p in (run / "teacher" / "test").glob("shard-*.jsonl"))
        assert KEY not in shards and shards.count("[api key removed]") == ends["echo"] > 0

        # resumed, the server still down for some: exactly the failed requests are made again
        mark = srv.mark()
        assert main(["run", config, "--stop-after", "generate"]) == 1
        assert srv.requested(since=mark) == failed
        still = {d for d, action in srv.last_actions(since=mark).items() if action in FAILED}
        assert 0 < len(still) < len(failed)  # the truncated and the long 429s came back, the 503s did not
        lines, manifest = stored(run)
        check_each_request_once(srv, lines, manifest, still)
        capsys.readouterr()

        # the knowledge counts them as failed requests, not as unparsable answers
        assert main(["knowledge", config]) == 0
        out = capsys.readouterr().out
        assert f"failed requests: {len(still)}" in out and "unparsable" not in out
        now = ShardStore(run / "teacher" / "test").load().values()
        answer_failed = sum(g.template == "mner.answer" and g.transient for g in now)
        counts = json.loads((run / "knowledge" / "test.counts.json").read_text())
        assert counts.get("dropped: answer request failed", 0) == answer_failed

        # healed: the rerun makes the rest and the stage is done
        srv.heal()
        mark = srv.mark()
        assert main(["run", config, "--stop-after", "generate"]) == 0
        assert srv.requested(since=mark) == still
        assert "generate" in json.loads((run / "stages.json").read_text())
        lines, manifest = stored(run)
        check_each_request_once(srv, lines, manifest, set())
