"""GPU figures from random weights (configs only, nothing downloaded), for a lent device.

- ``encoder``: LoRA training steps of an XLM-R-large-shaped tagger (the encoder student's default model):
  step time, tokens/s and model FLOPs utilisation (6 × parameters × tokens per step, against the device's
  dense bf16 peak).
- ``vlm``: the same for a Qwen2-VL-2B-shaped language model (the generative student's default; text tokens).
- ``decode``: teacher decode milliseconds per token through vLLM (``load_format="dummy"``: random weights of a
  Qwen2.5-7B-shaped LM) at batch 1 and 64.

``--size toy`` shrinks every model to a few layers of width 64 so that a CPU test runs the same code in
seconds (its numbers mean nothing). ``benchmarks/gpu/run.sh`` runs the full size and writes
``benchmarks/results/gpu.json``.

    python benchmarks/gpu/bench.py --size full --out benchmarks/results/gpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, per the vendors' data sheets

SIZES = {
    "full": {
        "encoder": {
            "hidden_size": 1024,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "intermediate_size": 4096,
            "vocab_size": 250002,
        },
        "vlm": {
            "hidden_size": 1536,
            "num_hidden_layers": 28,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "intermediate_size": 8960,
            "vocab_size": 151936,
        },
        "decode": {
            "hidden_size": 3584,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "intermediate_size": 18944,
            "vocab_size": 152064,
        },
        "batch": 32,
        "seq": 128,
        "steps": 20,
        "new_tokens": 128,
    },
    "toy": {
        "encoder": {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "vocab_size": 1000,
        },
        "vlm": {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "intermediate_size": 128,
            "vocab_size": 1000,
        },
        "decode": {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "intermediate_size": 128,
            "vocab_size": 1000,
        },
        "batch": 4,
        "seq": 16,
        "steps": 3,
        "new_tokens": 8,
    },
}


def _device():
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        return "cuda", name, peak, torch.bfloat16
    return "cpu", platform.processor() or "cpu", None, torch.float32


def _train_steps(model, batch: int, seq: int, steps: int, vocab: int, device, labels_fn) -> dict:
    """Timed LoRA training steps (AdamW on the adapters); the first step is a warm-up, not timed."""
    import torch

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(5, vocab, (batch, seq), device=device)
    times = []
    for _ in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = labels_fn(model, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    step = sum(times[1:]) / steps
    return {"step_seconds": step, "tokens_per_s": batch * seq / step}


def _with_figures(out: dict, params: int, trainable: int, batch: int, seq: int, peak) -> dict:
    flops = 6 * params * batch * seq / out["step_seconds"]
    return {
        **out,
        "parameters": params,
        "trainable_parameters": trainable,
        "model_tflops_per_s": flops / 1e12,
        "mfu": flops / (peak * 1e12) if peak else None,
    }


def bench_encoder(size: dict, device, peak, dtype) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import XLMRobertaConfig, XLMRobertaForTokenClassification

    cfg = XLMRobertaConfig(**size["encoder"], max_position_embeddings=514, num_labels=9)
    model = XLMRobertaForTokenClassification(cfg).to(device=device, dtype=dtype)
    model = get_peft_model(
        model,
        LoraConfig(r=16, lora_alpha=32, target_modules=["query", "value"], modules_to_save=["classifier"]),
    )

    def loss(m, ids):
        return m(input_ids=ids, labels=torch.randint(0, 9, ids.shape, device=ids.device)).loss

    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out = _train_steps(model, size["batch"], size["seq"], size["steps"], cfg.vocab_size, device, loss)
    return _with_figures(out, params, trainable, size["batch"], size["seq"], peak)


def bench_vlm(size: dict, device, peak, dtype) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(**size["vlm"], max_position_embeddings=4096, tie_word_embeddings=True)
    model = Qwen2ForCausalLM(cfg).to(device=device, dtype=dtype)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=targets))
    model.gradient_checkpointing_enable() if device == "cuda" else None

    def loss(m, ids):
        return m(input_ids=ids, labels=ids).loss

    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out = _train_steps(
        model, size["batch"] // 4 or 1, size["seq"] * 4, size["steps"], cfg.vocab_size, device, loss
    )
    return _with_figures(out, params, trainable, size["batch"] // 4 or 1, size["seq"] * 4, peak)


def bench_decode(size: dict, new_tokens: int, batches=(1, 64), cpu: bool = False) -> dict:
    """vLLM decode ms/token with random weights (``load_format="dummy"``), prompts of 64 token ids."""
    from transformers import Qwen2Config
    from vllm import LLM, SamplingParams

    with tempfile.TemporaryDirectory() as folder:
        Qwen2Config(**size["decode"], max_position_embeddings=4096, torch_dtype="bfloat16").save_pretrained(
            folder
        )
        engine = {"gpu_memory_utilization": 0.9}
        if cpu:  # the CPU build: a small KV cache, no chunked prefill (as the vllm backend sets them)
            engine = {"kv_cache_memory_bytes": 1 << 28, "enable_chunked_prefill": False, "dtype": "float32"}
        llm = LLM(
            model=folder, load_format="dummy", skip_tokenizer_init=True, max_model_len=1024, seed=0, **engine
        )
        params = SamplingParams(max_tokens=new_tokens, ignore_eos=True, temperature=0.0, detokenize=False)
        out = {}
        for batch in batches:
            prompts = [{"prompt_token_ids": [5 + (k + j) % 900 for j in range(64)]} for k in range(batch)]
            llm.generate(prompts[:1], params, use_tqdm=False)  # warm-up
            start = time.perf_counter()
            done = llm.generate(prompts, params, use_tqdm=False)
            seconds = time.perf_counter() - start
            tokens = sum(len(o.outputs[0].token_ids) for o in done)
            out[f"batch_{batch}"] = {
                "ms_per_token_per_sequence": 1000 * seconds / new_tokens,
                "tokens_per_s": tokens / seconds,
                "tokens": tokens,
            }
        return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=list(SIZES), default="full")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--parts", nargs="+", default=["encoder", "vlm", "decode"], choices=["encoder", "vlm", "decode"]
    )
    args = parser.parse_args()
    size = SIZES[args.size]
    device, name, peak, dtype = _device()
    result: dict = {"size": args.size, "device": name, "peak_bf16_tflops": peak, "dtype": str(dtype)}
    start = time.perf_counter()
    for part in args.parts:
        try:
            if part == "decode":
                batches = (1, 4) if args.size == "toy" else (1, 64)
                result[part] = bench_decode(size, size["new_tokens"], batches, cpu=device == "cpu")
            else:
                result[part] = (bench_encoder if part == "encoder" else bench_vlm)(size, device, peak, dtype)
        except Exception as err:  # one part failing must not lose the others' numbers
            result[part] = None
            result[f"{part}_why"] = f"{type(err).__name__}: {err}"[:500]
        print(part, json.dumps(result[part]), flush=True)
    result["wall_seconds"] = time.perf_counter() - start
    result["command"] = f"python benchmarks/gpu/bench.py --size {args.size} --out {args.out}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
