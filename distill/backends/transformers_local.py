"""The in-process transformers backend (CPU or GPU): what tests use with tiny models."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from cotdistill.images import open_image
from cotdistill.models import from_pretrained
from cotdistill.records import Usage
from cotdistill.settings import bounded

from .base import Backend, Generation, TeacherRequest


@dataclass
class TransformersOptions:
    device: str | None = None  # default: cuda if available, else cpu
    dtype: str | None = None  # default: bfloat16 on GPU, float32 on CPU
    batch_size: int = bounded(8, ge=1)
    text_only: bool = False  # a causal LM: image parts are dropped (the templates fall back to the caption)
    trust_remote_code: bool = False


class TransformersBackend(Backend):
    """In-process generation with transformers, on CPU or GPU.

    A vision-language model loads with ``AutoProcessor`` + ``AutoModelForImageTextToText``; a text-only model
    (``text_only=True``) with ``AutoTokenizer`` + ``AutoModelForCausalLM``, and then image parts are dropped
    (the templates already fall back to the caption). Requests are sorted by prompt length and batched with
    left padding; samples are drawn with ``do_sample`` when temperature > 0, seeded per batch from the batch's
    first request.

    Options: ``device`` (default: cuda if available), ``dtype`` (``bfloat16`` on GPU by default),
    ``batch_size``, ``text_only``, ``trust_remote_code`` (off unless turned on).
    """

    name = "transformers"
    Options = TransformersOptions

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        o: TransformersOptions = self.opts
        self.device = o.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = o.dtype or ("bfloat16" if str(self.device).startswith("cuda") else "float32")
        trust = o.trust_remote_code
        self.text_only = o.text_only
        if not self.text_only:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            self.processor = from_pretrained(AutoProcessor, self.model, trust_remote_code=trust)
            self.tokenizer = self.processor.tokenizer
            self.lm = from_pretrained(
                AutoModelForImageTextToText, self.model, dtype=getattr(torch, dtype), trust_remote_code=trust
            )
        else:
            self.processor = None
            self.tokenizer = from_pretrained(AutoTokenizer, self.model, trust_remote_code=trust)
            self.lm = from_pretrained(
                AutoModelForCausalLM, self.model, dtype=getattr(torch, dtype), trust_remote_code=trust
            )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.lm.to(self.device).eval()
        self.batch_size = o.batch_size
        config = self.lm.config
        self.context = getattr(config, "max_position_embeddings", None) or getattr(
            getattr(config, "text_config", None), "max_position_embeddings", None
        )

    def _prepare(self, r: TeacherRequest) -> tuple[str, list]:

        images, messages = [], []
        for m in r.messages:
            content = m["content"]
            if isinstance(content, list):
                parts = []
                for part in content:
                    if part["type"] == "image":
                        if self.text_only:
                            continue
                        images.append(open_image(part["image"]))
                        parts.append({"type": "image"})
                    else:
                        parts.append({"type": "text", "text": part["text"]})
                content = parts if not self.text_only else "".join(p["text"] for p in parts)
            messages.append({"role": m["role"], "content": content})
        owner = self.processor if self.processor is not None else self.tokenizer
        return owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), images

    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        import torch

        results: list[Generation | None] = [None] * len(requests)
        ready = []
        for i, r in enumerate(requests):
            try:
                text, images = self._prepare(r)
            except OSError as err:
                results[i] = self.failed(r, f"unreadable image: {err}")
                continue
            n_prompt = len(self.tokenizer(text)["input_ids"])
            if self.context and n_prompt + r.sampling.max_tokens > self.context:
                results[i] = self.failed(
                    r,
                    f"prompt longer than the context: {n_prompt} prompt tokens + {r.sampling.max_tokens} new > {self.context}",
                )
                continue
            ready.append((n_prompt, i, text, images))
        ready.sort(key=lambda x: x[0])  # similar lengths together: less padding
        for start in range(0, len(ready), self.batch_size):
            chunk = ready[start : start + self.batch_size]
            first = requests[chunk[0][1]]
            max_new = max(requests[i].sampling.max_tokens for _, i, _, _ in chunk)
            texts = [x[2] for x in chunk]
            images = [im for x in chunk for im in x[3]]
            if self.processor is not None:
                inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
            else:
                inputs = self.tokenizer(texts, padding=True, return_tensors="pt")
            inputs = inputs.to(self.device)
            sample = first.sampling.temperature > 0
            torch.manual_seed(first.sampling.seed)
            t0 = time.perf_counter()
            with torch.no_grad():
                out = self.lm.generate(
                    **inputs,
                    max_new_tokens=max_new,
                    do_sample=sample,
                    temperature=first.sampling.temperature if sample else None,
                    top_p=first.sampling.top_p if sample else None,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            seconds = (time.perf_counter() - t0) / len(chunk)
            new = out[:, inputs["input_ids"].shape[1] :]
            # prompt tokens as the model saw them: image placeholders expanded, padding not counted
            seen = inputs["attention_mask"].sum(dim=1).tolist()
            for row, n_prompt, (_, i, _, _) in zip(new, seen, chunk, strict=True):
                r = requests[i]
                ids = row[: r.sampling.max_tokens]
                ids = ids[ids != self.tokenizer.pad_token_id]
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                results[i] = Generation(
                    key=r.key,
                    example_id=r.example_id,
                    template=r.template,
                    sample=r.sample,
                    text=text,
                    usage=Usage(int(n_prompt), int(ids.numel()), seconds),
                    model=self.model,
                )
        return results  # type: ignore[return-value]
