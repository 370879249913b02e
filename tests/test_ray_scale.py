"""Scale-out with Ray Data: backend replicas as actors, the driver the only writer (Ray started locally)."""

import json

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'cotdistill[ray]'")

from cotdistill.distill.runner import ShardStore, run_generation  # noqa: E402
from cotdistill.distill.scale import run_generation_ray  # noqa: E402
from cotdistill.prompts import PromptLibrary  # noqa: E402
from cotdistill.records import EntityAnswer, Example  # noqa: E402
from cotdistill.tasks import TaskSpec  # noqa: E402

SPEC = TaskSpec("mner", ("LOC", "ORG", "OTHER", "PER"))
GRAINS = ["mner.noun", "mner.answer"]


def examples(n):
    return [
        Example(str(i), "mner", f"post {i} about Paris", EntityAnswer(), ("post", str(i), "about", "Paris"))
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def test_replicas_make_every_request_once_and_resume(local_ray, tmp_path):
    lib = PromptLibrary()
    out = tmp_path / "teacher"
    options = {"text": "Named entities:1. Paris (city)", "fail_ids": ["3"]}
    stats = run_generation_ray(
        examples(12),
        GRAINS,
        lib,
        SPEC,
        "echo",
        "echo",
        options,
        out,
        replicas=2,
        samples=2,
        batch_size=5,
        limit=30,
        progress=False,
    )
    assert stats.generated == 30  # --limit: at most 30 new requests
    again = run_generation_ray(
        examples(12), GRAINS, lib, SPEC, "echo", "echo", options, out, replicas=2, samples=2, progress=False
    )
    assert (again.already_done, again.generated) == (30, 18)
    gens = ShardStore(out).load()
    assert len(gens) == 48  # each of 12 × 2 templates × 2 samples exactly once
    lines = [json.loads(x) for p in ShardStore(out).shards() for x in p.read_text().splitlines()]
    assert len(lines) == 48 and len({x["key"] for x in lines}) == 48
    assert sum(g.error is not None for g in gens.values()) == 4  # example 3 fails: stored, counted
    # the same keys as the single-process runner: one cache for both ways of running
    single = tmp_path / "single"
    from cotdistill.distill.backends import make_backend

    run_generation(
        examples(12),
        GRAINS,
        lib,
        SPEC,
        make_backend("echo", "echo", **options),
        single,
        samples=2,
        progress=False,
    )
    assert set(ShardStore(single).load()) == set(gens)
    assert all(g.text == "Named entities:1. Paris (city)" for g in gens.values() if g.error is None)


def test_a_real_model_backend_runs_inside_the_actors(local_ray, tmp_path):
    from cotdistill.run.demo.tiny import tiny_qwen2_lm

    model = tiny_qwen2_lm(tmp_path / "lm")
    from cotdistill.distill.backends import Sampling

    stats = run_generation_ray(
        examples(4),
        ["mner.answer", "mner.sentence"],
        PromptLibrary(),
        SPEC,
        "transformers",
        model,
        {"text_only": True, "device": "cpu", "batch_size": 4},
        tmp_path / "teacher",
        replicas=1,
        progress=False,
        sampling=Sampling(max_tokens=8),
    )
    assert stats.generated == 8 and not stats.failures
    assert all(g.usage.completion_tokens > 0 for g in ShardStore(tmp_path / "teacher").load().values())


def test_the_generate_stage_uses_ray_when_asked(local_ray, tmp_path):
    from cotdistill.run.context import RunContext
    from cotdistill.run.demo import write_synthetic_twitter
    from cotdistill.run.stages.teacher import generate
    from cotdistill.run.validation import load_config

    data = write_synthetic_twitter(tmp_path / "data")
    config = load_config(
        None,
        [
            f"run_dir={tmp_path / 'runs'}",
            f"data.data_dir={data}",
            "data.splits=[valid]",
            "teacher.backend=echo",
            "teacher.model=echo",
            "teacher.templates=[mner.answer]",
            "teacher.ray_replicas=2",
            "teacher.options.text=Named entities:1. Paris (city)",
        ],
    )
    summary = generate(RunContext(config))
    assert summary["valid"]["generated"] == 12 and summary["valid"]["failures"] == 0
    assert len(ShardStore(config.path / "teacher" / "valid").load()) == 12


def test_an_unreachable_teacher_stops_the_ray_run_and_the_rerun_makes_exactly_the_rest(local_ray, tmp_path):
    from cotdistill.distill.backends import TeacherUnavailable

    lib = PromptLibrary()
    out = tmp_path / "teacher"
    down = {"text": "Named entities:1. Paris (city)", "unavailable_ids": ["5"]}
    with pytest.raises(TeacherUnavailable, match="injected outage at example 5"):
        run_generation_ray(
            examples(10),
            GRAINS,
            lib,
            SPEC,
            "echo",
            "echo",
            down,
            out,
            replicas=1,
            batch_size=4,
            progress=False,
        )
    stored = ShardStore(out).load()
    # nothing is stored for requests the teacher never made: no failures, and example 5 is not among them
    assert stored and all(g.error is None for g in stored.values())
    assert "5" not in {g.example_id for g in stored.values()}
    up = {"text": "Named entities:1. Paris (city)"}
    again = run_generation_ray(
        examples(10), GRAINS, lib, SPEC, "echo", "echo", up, out, replicas=1, batch_size=4, progress=False
    )
    assert again.already_done == len(stored) and again.generated == 20 - len(stored)
    lines = [json.loads(x) for p in ShardStore(out).shards() for x in p.read_text().splitlines()]
    assert len(lines) == 20 and len({x["key"] for x in lines}) == 20
