"""Greedy answers of a generative student, parsed with the task's parser into Prediction records."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from cotdistill.records import Example, Prediction, Usage
from cotdistill.student.generative.config import (
    GenerativeConfig,
)
from cotdistill.student.generative.data import (
    ChatItem,
    GenerativeFeaturizer,
)
from cotdistill.tasks import parse_answer

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------- predict


@torch.no_grad()
def predict_generative(
    model: nn.Module,
    processor,
    config: GenerativeConfig,
    examples: Sequence[Example],
    *,
    batch_size: int = 16,
    source: str = "student:generative",
    progress: bool = True,
) -> list[Prediction]:
    """Greedy answers in left-padded batches (longest first), parsed into Prediction records."""
    featurizer = GenerativeFeaturizer(config, processor)
    tok = featurizer.tokenizer
    spec_none = next((lab for lab in config.labels if lab.lower() == "none"), None)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].text))
    out: list[Prediction | None] = [None] * len(examples)
    side = tok.padding_side
    tok.padding_side = "left"
    try:
        for start in tqdm(
            range(0, len(order), batch_size), desc="generate (student)", unit="batch", disable=not progress
        ):
            idx = order[start : start + batch_size]
            t0 = time.perf_counter()
            prompts, images = [], []
            for i in idx:
                p, img = featurizer.prompt(ChatItem(examples[i], "answer", None))
                prompts.append(p)
                if img is not None:
                    images.append(img)
            if images:
                enc = processor(text=prompts, images=images, padding=True, return_tensors="pt")
            else:
                enc = tok(prompts, padding=True, add_special_tokens=False, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items()}
            gen = model.generate(
                **enc,
                max_new_tokens=config.max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
            new = gen[:, enc["input_ids"].shape[1] :]
            seconds = (time.perf_counter() - t0) / len(idx)
            for row, i in enumerate(idx):
                ids = new[row].tolist()
                stop = [tok.eos_token_id, tok.pad_token_id]
                n = next((k for k, t in enumerate(ids) if t in stop), len(ids))
                text = tok.decode(ids[:n], skip_special_tokens=True)
                ex = examples[i]
                answer, rationale, error = parse_answer(config.task, text, ex, config.labels, spec_none)
                prompt_tokens = int(enc["attention_mask"][row].sum())
                out[i] = Prediction(
                    ex.id,
                    source,
                    answer,
                    raw=text,
                    rationale=rationale,
                    parse_error=error,
                    usage=Usage(prompt_tokens, n, seconds),
                )
    finally:
        tok.padding_side = side
        model.train(was_training)
    return [p for p in out if p is not None]
