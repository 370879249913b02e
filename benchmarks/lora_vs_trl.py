"""One LoRA training run of SmolLM2-135M-Instruct on Twitter-2017 answers, through cotdistill's generative
student or through TRL's ``SFTTrainer`` (a benchmark-only dependency: ``pip install trl``). Run once per
implementation, each in a fresh process so that its peak memory (max RSS) is its own:

    python benchmarks/lora_vs_trl.py cotdistill DATA_DIR OUT.json [--steps 30]
    python benchmarks/lora_vs_trl.py trl DATA_DIR OUT.json [--steps 30]

Same examples (the first ``steps × batch`` training posts, answer task only: prompt → gold JSON, loss on the
completion only), same chat template, sequence limit, batch, learning rate, schedule, seed, LoRA
(r 16, alpha 32, dropout 0.05, every linear layer of the language model) and number of optimizer steps.
Tokens/s counts non-padding tokens over the summed duration of the optimizer steps (a callback on both
trainers), so model loading, tokenization and cotdistill's end-of-epoch dev generation are not counted.
Peak memory is the process's peak RSS over the optimizer steps (VmHWM reset when training starts, read
after each step, so neither loading nor checkpoint saving counts), plus the whole process's for the record.
``benchmarks/real_lm.py trl`` runs both and writes the ``trl`` section of ``real_lm.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from common import smollm2_gguf
from transformers import TrainerCallback

from cotdistill.tasks import TaskSpec

BATCH, LR, MAX_LENGTH, SEED = 8, 5e-4, 768, 0


def _peak_rss_mb() -> float:
    """The process's peak resident memory (VmHWM) since the last reset, in MB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets VmHWM to the current RSS (Linux ≥ 4.0)
        f.write("5")


class StepTimer(TrainerCallback):
    """Times the optimizer steps and measures peak memory from the start of training (model loading and
    tokenization, the same for both, are not counted)."""

    def __init__(self):
        self.seconds = 0.0
        self.losses: list[float] = []
        self._t = 0.0
        self.peak_mb = 0.0

    def on_train_begin(self, args, state, control, **kw):
        _reset_peak_rss()

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.seconds += time.perf_counter() - self._t
        # read here, before the Trainer's end-of-epoch evaluation and checkpoint (cotdistill saves a
        # checkpoint each epoch and generates dev answers; the TRL run is configured without either)
        self.peak_mb = _peak_rss_mb()

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


def examples(data_dir: Path, n: int):
    from cotdistill.readers import load_split

    train = load_split("twitter2017", data_dir / "twitter2017", "train").examples[:n]
    dev = load_split("twitter2017", data_dir / "twitter2017", "valid").examples[:1]
    return train, dev


def run_cotdistill(data_dir: Path, steps: int, work: Path, checkpointing: bool) -> dict:
    from cotdistill.student import generative as gen

    train, dev = examples(data_dir, steps * BATCH)
    cfg = gen.GenerativeConfig(
        model=str(smollm2_gguf()),
        task="mner",
        alpha=1.0,
        lora_r=16,
        lora_alpha=32,
        max_length=MAX_LENGTH,
        max_new_tokens=8,
    )
    training = gen.GenerativeTrainingConfig(
        output_dir=str(work / "cotdistill"),
        epochs=1,
        batch_size=BATCH,
        learning_rate=LR,
        logging_steps=1,
        seed=SEED,
        eval_examples=1,
        gradient_checkpointing=checkpointing,
    )
    timer = StepTimer()
    cfg.labels = list(TaskSpec.from_examples("mner", train).labels)
    processor = gen.load_processor(cfg)
    featurizer = gen.GenerativeFeaturizer(cfg, processor)
    tokens = sum(len(featurizer.encode(item)["input_ids"]) for item in gen.chat_items(train, None, 1.0))
    gen.train_generative(cfg, training, train, dev, processor=processor, callbacks=[timer])
    return {
        "tokens": tokens,
        "step_seconds": timer.seconds,
        "losses": timer.losses,
        "train_peak_mb": timer.peak_mb,
    }


def run_trl(data_dir: Path, steps: int, work: Path, checkpointing: bool) -> dict:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from cotdistill.models import from_pretrained
    from cotdistill.student import generative as gen

    train, _ = examples(data_dir, steps * BATCH)
    cfg = gen.GenerativeConfig(model=str(smollm2_gguf()), task="mner", alpha=1.0, max_length=MAX_LENGTH)
    cfg.labels = list(TaskSpec.from_examples("mner", train).labels)
    rows = [
        {
            "prompt": [{"role": "user", "content": gen.instruction("answer", ex, cfg, sees_image=False)}],
            "completion": [{"role": "assistant", "content": gen.answer_target(ex)}],
        }
        for ex in train
    ]
    tokenizer = from_pretrained(AutoTokenizer, cfg.model)
    # the same loading as cotdistill's (a GGUF model made plain, so that a Trainer accepts it)
    model = from_pretrained(AutoModelForCausalLM, cfg.model, dtype=torch.float32)
    lora = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.05,
        target_modules=gen.lora_target_modules(model),
        task_type="CAUSAL_LM",
    )
    args = SFTConfig(
        output_dir=str(work / "trl"),
        num_train_epochs=1,
        per_device_train_batch_size=BATCH,
        learning_rate=LR,
        warmup_steps=0.03,
        weight_decay=0.0,
        max_length=MAX_LENGTH,
        packing=False,
        completion_only_loss=True,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=SEED,
        use_cpu=True,
        # TRL's defaults are gradient checkpointing and bf16 autocast; the comparison is of the same
        # training, so both are set as cotdistill's run has them (fp32 on CPU; checkpointing per flag)
        gradient_checkpointing=checkpointing,
        bf16=False,
    )
    timer = StepTimer()
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[timer],
    )
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"])
    trainer.train()
    return {
        "tokens": tokens,
        "step_seconds": timer.seconds,
        "losses": timer.losses,
        "train_peak_mb": timer.peak_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=["cotdistill", "trl"])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--gradient-checkpointing", action="store_true", help="in both implementations")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cotdistill-lora-vs-trl"))
    args = parser.parse_args()
    run = run_cotdistill if args.impl == "cotdistill" else run_trl
    r = run(args.data_dir, args.steps, args.work, args.gradient_checkpointing)
    tail = r["losses"][-5:]
    result = {
        "impl": args.impl,
        "gradient_checkpointing": args.gradient_checkpointing,
        "steps": len(r["losses"]),
        "examples": args.steps * BATCH,
        "tokens": r["tokens"],
        "step_seconds": round(r["step_seconds"], 2),
        "tokens_per_s": round(r["tokens"] / r["step_seconds"], 1),
        "peak_rss_mb": round(r["train_peak_mb"], 1),  # during training
        "peak_rss_mb_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "first_loss": r["losses"][0] if r["losses"] else None,
        "final_loss": round(sum(tail) / len(tail), 4) if tail else None,
        "losses": r["losses"],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "losses"}))


if __name__ == "__main__":
    main()
