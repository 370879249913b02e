"""The transformers backend end to end on CPU with a tiny random Qwen2 LM (text-only teacher path)."""

import pytest
from tiny import tiny_qwen2_lm

from cotdistill.distill.backends import Sampling, TeacherRequest, TransformersBackend
from cotdistill.distill.runner import ShardStore, run_generation
from cotdistill.prompts import PromptLibrary
from cotdistill.records import EntityAnswer, Example
from cotdistill.tasks import TaskSpec


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return tiny_qwen2_lm(tmp_path_factory.mktemp("qwen2"))


def req(text, sample=0, temperature=0.0, max_tokens=6, image=None):
    content = ([{"type": "image", "image": image}] if image else []) + [{"type": "text", "text": text}]
    return TeacherRequest(
        f"k{text}{sample}",
        text,
        "mner.noun",
        sample,
        [{"role": "user", "content": content}],
        Sampling(temperature, 1.0, max_tokens, sample),
    )


def test_batched_greedy_equals_one_by_one(lm):
    backend = TransformersBackend(lm, text_only=True, batch_size=4, device="cpu")
    backend.load()
    texts = ["Obama visits Paris", "Apple and Google open offices in London and Berlin today", "the fox"]
    batched = backend.generate([req(t) for t in texts])
    alone = [backend.generate([req(t)])[0] for t in texts]
    assert [g.text for g in batched] == [g.text for g in alone]  # left padding changes nothing
    assert all(
        g.error is None and g.usage.completion_tokens <= 6 and g.usage.prompt_tokens > 3 for g in batched
    )
    assert [g.example_id for g in batched] == texts  # results come back in request order


def test_sampling_seeds_and_context_limit(lm):
    backend = TransformersBackend(lm, text_only=True, batch_size=1, device="cpu")
    backend.load()
    a = backend.generate([req("Obama", sample=1, temperature=1.0, max_tokens=12)])[0].text
    b = backend.generate([req("Obama", sample=1, temperature=1.0, max_tokens=12)])[0].text
    assert a == b  # same seed, same sample
    long = backend.generate([req("word " * 600, max_tokens=600)])[0]
    assert long.text is None and long.error.startswith("prompt longer than the context")


def test_runner_with_transformers_backend(lm, tmp_path):
    exs = [
        Example(str(i), "mner", t, EntityAnswer(), tokens=tuple(t.split()))
        for i, t in enumerate(["Obama visits Paris", "Apple opens in London"])
    ]
    backend = TransformersBackend(lm, text_only=True, batch_size=4, device="cpu")
    stats = run_generation(
        exs,
        ["mner.noun", "mner.answer"],
        PromptLibrary(),
        TaskSpec("mner", ("LOC", "ORG", "PER")),
        backend,
        tmp_path,
        samples=2,
        sampling=Sampling(0.8, 0.9, 8, 0),
        progress=False,
    )
    assert stats.generated == 8 and not stats.failures
    assert len(ShardStore(tmp_path).load()) == 8
