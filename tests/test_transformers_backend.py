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


def test_vision_language_teacher_on_real_mnre_images(datasets_dir, tmp_path, monkeypatch):
    """A tiny random Qwen2-VL built from a config sees the real MNRE sample images through the backend."""
    import transformers
    from conftest import need
    from transformers import AutoTokenizer

    from cotdistill.readers import load_split
    from cotdistill.run.demo.tiny import image_only_qwen2_vl_processor, tiny_qwen2_vl_teacher

    root = need(datasets_dir, "mnre")
    path = tiny_qwen2_vl_teacher(tmp_path / "qwen2vl")
    processor = image_only_qwen2_vl_processor(AutoTokenizer.from_pretrained(path))
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", lambda *a, **k: processor)
    test = load_split("mnre", root, "test")
    with_image = [ex for ex in test.examples if ex.image][:3]
    without = [ex for ex in test.examples if not ex.image][:1]
    assert len(with_image) == 3, "the MNRE sample ships some images"
    examples = with_image + without
    spec = TaskSpec.from_examples("mre", test.examples)
    backend = TransformersBackend(path, batch_size=4, device="cpu")
    stats = run_generation(
        examples,
        ["mre.multimodal", "mre.answer"],
        PromptLibrary(),
        spec,
        backend,
        tmp_path / "teacher",
        sampling=Sampling(max_tokens=6),
        progress=False,
    )
    assert stats.generated == 8 and not stats.failures
    gens = list(ShardStore(tmp_path / "teacher").load().values())
    assert all(g.usage.completion_tokens > 0 for g in gens)
    # usage counts the prompt as the model saw it: each image adds its <|image_pad|> tokens
    library = PromptLibrary()
    by_id = {ex.id: ex for ex in examples}
    for g in gens:
        messages = library.render(g.template, by_id[g.example_id], spec, sees_images=True)
        text, _ = backend._prepare(TeacherRequest("k", g.example_id, g.template, 0, messages, Sampling()))
        n_text = len(backend.tokenizer(text)["input_ids"])
        if by_id[g.example_id].image:
            assert g.usage.prompt_tokens > n_text + 4
        else:
            assert g.usage.prompt_tokens == n_text
