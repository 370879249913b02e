"""Runs cotdistill's vllm backend on the real engine (vLLM's CPU build) and writes what came back as JSON.

vLLM starts its engine in spawned worker processes, so ``vllm.LLM`` must be created under
``if __name__ == "__main__":`` of a script: ``test_vllm_engine.py`` runs this file in a subprocess, once,
and checks the JSON. Usage: ``python engine_driver.py TEXT_MODEL VLM_MODEL IMAGE_DIR OUT.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cotdistill.distill.backends import Sampling, TeacherRequest, VLLMBackend


def request(key, text, sample=0, temperature=0.0, max_tokens=8, schema=None, image=None, system=True):
    content = ([{"type": "image", "image": image}] if image else []) + [{"type": "text", "text": text}]
    messages = ([{"role": "system", "content": "You find named entities."}] if system else []) + [
        {"role": "user", "content": content}
    ]
    return TeacherRequest(
        key, key, "mner.answer", sample, messages, Sampling(temperature, 1.0, max_tokens, 7 + sample), schema
    )


def flat(messages):
    """What the tokenizer's chat template takes for a text model: string contents."""
    return [
        {
            "role": m["role"],
            "content": m["content"]
            if isinstance(m["content"], str)
            else "".join(p["text"] for p in m["content"] if p["type"] == "text"),
        }
        for m in messages
    ]


def gens(backend, requests):
    return [
        {
            "key": g.key,
            "text": g.text,
            "error": g.error,
            "prompt": g.usage.prompt_tokens,
            "completion": g.usage.completion_tokens,
        }
        for g in backend.generate(requests)
    ]


def text_checks(model: str) -> dict:
    from transformers import AutoTokenizer

    from cotdistill.tasks import TaskSpec

    tok = AutoTokenizer.from_pretrained(model)
    backend = VLLMBackend(model, max_model_len=256, seed=0)
    backend.load()
    out: dict = {"seeded": backend._seeded}
    plain = [request(f"p{i}", t) for i, t in enumerate(["Obama visits Paris", "Apple opens in London", "x"])]
    out["plain"] = gens(backend, plain)
    out["plain_again"] = gens(backend, plain[::-1])
    out["tokenizer_prompt_tokens"] = [
        len(
            tok(
                tok.apply_chat_template(flat(r.messages), add_generation_prompt=True, tokenize=False),
                add_special_tokens=False,
            )["input_ids"]
        )
        for r in plain
    ]
    # four samples of one prompt (seed + sample index), then the same samples in another batch and order
    samples = [
        request(f"s{k}", "Obama visits Paris", sample=k, temperature=1.0, max_tokens=12) for k in range(4)
    ]
    out["samples"] = gens(backend, samples)
    out["samples_again"] = gens(backend, [plain[1], *samples[::-1]])[1:][::-1]
    # a prompt longer than the context, between two good ones
    long = request("long", "Paris " * 400)
    out["with_long"] = gens(backend, [plain[0], long, plain[1]])
    # structured output with the tasks' answer schemas: MRE's answer is short enough for a random model to
    # finish; MNER's is started right (a random model's strings need not end)
    out["mre_labels"] = ["/per/org/member_of", "/per/loc/place_of_residence", "None"]
    mre = TaskSpec("mre", tuple(out["mre_labels"])).answer_schema()
    mner = TaskSpec("mner", ("LOC", "ORG", "PER")).answer_schema()
    out["structured_mre"] = gens(
        backend, [request(f"j{i}", t, max_tokens=64, schema=mre) for i, t in enumerate(["Obama", "Paris"])]
    )
    out["structured_mner"] = gens(backend, [request("m0", "Obama", max_tokens=16, schema=mner)])
    return out


def vlm_checks(model: str, image_dir: str) -> dict:
    from PIL import Image
    from transformers import AutoProcessor

    images = sorted(str(p) for p in Path(image_dir).glob("*.jpg"))[:2]
    backend = VLLMBackend(model, max_model_len=512, seed=0)
    backend.load()
    reqs = [request(f"v{i}", "Who is in the picture?", image=im, system=False) for i, im in enumerate(images)]
    reqs.append(request("gone", "x", image=str(Path(image_dir) / "missing.jpg"), system=False))
    out = {"images": images, "vlm": gens(backend, reqs)}
    processor = AutoProcessor.from_pretrained(model)
    counts = []
    for r, path in zip(reqs, images, strict=False):
        chat = processor.tokenizer.apply_chat_template(
            [{"role": "user", "content": r.messages[0]["content"][1]["text"]}],
            add_generation_prompt=True,
            tokenize=False,
        )
        with Image.open(path) as im:
            counts.append(len(processor(text=chat, images=[im.convert("RGB")])["input_ids"][0]))
    out["processor_prompt_tokens"] = counts
    return out


if __name__ == "__main__":
    text_model, vlm_model, image_dir, target = sys.argv[1:5]
    result = {"text": text_checks(text_model), "vlm": vlm_checks(vlm_model, image_dir)}
    Path(target).write_text(json.dumps(result, indent=1), encoding="utf-8")
