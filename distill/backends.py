"""Teacher backends: the one plug-in seam.

A backend is loaded once and then asked to generate for batches of requests; it returns one Generation per
request, never raising for a bad request (the error is stored and counted). ``BACKENDS`` maps names to
classes; heavy packages are imported inside ``load()`` with an install hint.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cotdistill.records import Usage

logger = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Sampling:
    """Sampling parameters of a generation (part of its cache key)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0

    def to_dict(self) -> dict:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }


@dataclass(slots=True)
class TeacherRequest:
    """One generation to make: an example rendered through a template, one sample of it."""

    key: str
    example_id: str
    template: str
    sample: int
    messages: list[dict]
    sampling: Sampling
    json_schema: dict | None = None


@dataclass(slots=True)
class Generation:
    """What came back for one request: text and usage, or an error (never both empty)."""

    key: str
    example_id: str
    template: str
    sample: int
    text: str | None
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    model: str = ""

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "example_id": self.example_id,
            "template": self.template,
            "sample": self.sample,
            "model": self.model,
            "text": self.text,
            "usage": self.usage.to_dict(),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, obj: dict) -> Generation:
        return cls(
            key=obj["key"],
            example_id=obj["example_id"],
            template=obj["template"],
            sample=int(obj["sample"]),
            text=obj.get("text"),
            usage=Usage.from_dict(obj.get("usage") or {}),
            error=obj.get("error"),
            model=obj.get("model", ""),
        )


class Backend(abc.ABC):
    """Load once, then generate for batches of requests."""

    name: str = "backend"

    def __init__(self, model: str, **options):
        self.model = model
        self.options = options

    def load(self) -> None:  # noqa: B027 (optional hook)
        """Load weights or open connections; called once before the first batch."""

    def failed(self, r: TeacherRequest, error: str, usage: Usage | None = None) -> Generation:
        """The stored result of a request that could not be made."""
        return Generation(
            r.key, r.example_id, r.template, r.sample, None, usage or Usage(), error, self.model
        )

    def made(self, r: TeacherRequest, text: str, usage: Usage) -> Generation:
        """The stored result of a request that succeeded."""
        return Generation(r.key, r.example_id, r.template, r.sample, text, usage, None, self.model)

    def ensure_loaded(self) -> None:
        """``load()`` the first time only: one backend serves every split of a run."""
        if not getattr(self, "_loaded", False):
            self.load()
            self._loaded = True

    @abc.abstractmethod
    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        """One Generation per request, in order. A failing request gets ``error`` set, not an exception."""


class ReplayBackend(Backend):
    """Existing teacher outputs keyed by example id: PGIM's knowledge files or a plain JSONL file.

    ``model`` names the source; options: ``texts`` (a ``{example_id: text}`` mapping), ``pgim_dir`` (a
    Twitter dataset folder with PGIM's ``pgim/*.txt``; ``dataset`` names it), or ``path`` (JSONL with ``id``
    and ``text`` fields, one per line).
    """

    name = "replay"

    def load(self) -> None:
        import json

        texts = self.options.get("texts")
        if texts is None and self.options.get("pgim_dir"):
            texts = self._pgim_texts(self.options["pgim_dir"], self.options.get("dataset", "twitter2015"))
        if texts is None:
            path = self.options.get("path")
            if not path:
                raise ValueError("the replay backend needs texts= or path= (a JSONL file of {id, text})")
            texts = {}
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            obj = json.loads(line)
                            texts[str(obj["id"])] = str(obj["text"])
                        except (ValueError, KeyError) as err:
                            raise ValueError(
                                f"{path}:{lineno}: expected a JSON object with 'id' and 'text' ({err})"
                            ) from None
        self.texts: dict[str, str] = dict(texts)

    @staticmethod
    def _pgim_texts(data_dir: str, dataset: str) -> dict[str, str]:
        """PGIM's knowledge for every split of a Twitter dataset, matched to posts by order and content."""
        from pathlib import Path

        from cotdistill.readers import align_knowledge, load_split, read_pgim_knowledge

        texts: dict[str, str] = {}
        for split in ("train", "valid", "test"):
            path = Path(data_dir) / "pgim" / f"{split}.txt"
            if not path.is_file():
                continue
            alignment = align_knowledge(
                load_split(dataset, data_dir, split).examples, read_pgim_knowledge(path)
            )
            if alignment.missing_examples or alignment.unmatched_blocks:
                logger.warning("PGIM %s %s: %s", dataset, split, alignment.summary())
            texts.update(alignment.knowledge)
        if not texts:
            raise ValueError(f"no PGIM knowledge files (pgim/train.txt, ...) under {data_dir}")
        return texts

    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        out = []
        for r in requests:
            text = self.texts.get(r.example_id)
            error = None if text is not None else f"no replayed text for example {r.example_id}"
            out.append(
                Generation(r.key, r.example_id, r.template, r.sample, text, Usage(), error, self.model)
            )
        return out


class EchoBackend(Backend):
    """Returns at once with a fixed text (option ``text``): measures pipeline overhead, drives tests."""

    name = "echo"

    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        text = self.options.get("text", "{}")
        if not isinstance(text, str):  # e.g. a YAML mapping given where a JSON string was meant
            text = json.dumps(text, ensure_ascii=False)
        delay = float(self.options.get("delay", 0.0))
        if delay:
            time.sleep(delay)
        fail = self.options.get("fail_ids", ())
        return [
            Generation(
                r.key,
                r.example_id,
                r.template,
                r.sample,
                None if r.example_id in fail else text,
                Usage(len(str(r.messages)) // 4, len(text) // 4, 0.0),
                "injected failure" if r.example_id in fail else None,
                self.model,
            )
            for r in requests
        ]


def image_data_url(path: str) -> str:
    """An image file as a base64 ``data:`` URL (what OpenAI-compatible servers take for local images)."""
    import base64
    import mimetypes

    mime = mimetypes.guess_type(path)[0] or "image/jpeg"
    with open(path, "rb") as f:
        return f"data:{mime};base64,{base64.b64encode(f.read()).decode('ascii')}"


def convert_messages(messages: list[dict], image_part) -> list[dict]:
    """cotdistill chat messages with each image part replaced by ``image_part(path)`` (an engine's own form)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [
                image_part(p["image"]) if p["type"] == "image" else {"type": "text", "text": p["text"]}
                for p in content
            ]
        out.append({"role": m["role"], "content": content})
    return out


def openai_messages(messages: list[dict]) -> list[dict]:
    """cotdistill chat messages -> OpenAI chat format (image parts become ``image_url`` data URLs)."""
    return convert_messages(
        messages, lambda path: {"type": "image_url", "image_url": {"url": image_data_url(path)}}
    )


class OpenAIBackend(Backend):
    """Any OpenAI-compatible chat-completions server (``vllm serve`` first of all).

    Options: ``base_url`` (e.g. ``http://localhost:8000/v1``), ``api_key_env`` (the name of the environment
    variable holding the key; the key itself is never stored in configs or logged), ``concurrency``,
    ``max_retries``, ``timeout`` (seconds), ``backoff`` (first delay, doubled per retry, with jitter).
    Retries cover 429, 5xx, timeouts and connection errors; other HTTP errors fail the request at once.
    """

    name = "openai"
    RETRY_STATUS = (408, 409, 429, 500, 502, 503, 504)

    def load(self) -> None:
        self.base_url = str(self.options.get("base_url") or "http://localhost:8000/v1").rstrip("/")
        self.api_key = env_api_key(self.options.get("api_key_env"))
        if self.options.get("api_key_env") and not self.api_key:
            raise ValueError(
                f"the environment variable {self.options['api_key_env']} named by api_key_env is not set"
            )
        self.concurrency = int(self.options.get("concurrency", 8))
        self.max_retries = int(self.options.get("max_retries", 5))
        self.timeout = float(self.options.get("timeout", 120))
        self.backoff = float(self.options.get("backoff", 1.0))

    def _post(self, payload: dict) -> dict:
        import json
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(payload).encode(),
            headers=headers,
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def _one(self, r: TeacherRequest) -> Generation:
        import random
        import urllib.error

        try:
            messages = openai_messages(r.messages)
        except OSError as err:
            return self.failed(r, f"unreadable image: {err.strerror}")
        payload = {
            "model": self.model,
            "messages": messages,
            "n": 1,
            "temperature": r.sampling.temperature,
            "top_p": r.sampling.top_p,
            "max_tokens": r.sampling.max_tokens,
            "seed": r.sampling.seed,
        }
        if r.json_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": r.json_schema},
            }
        start = time.perf_counter()
        last = ""
        rng = random.Random(r.key)
        for attempt in range(self.max_retries + 1):
            try:
                body = self._post(payload)
                text = body["choices"][0]["message"]["content"]
                usage = body.get("usage") or {}
                return Generation(
                    r.key,
                    r.example_id,
                    r.template,
                    r.sample,
                    text,
                    Usage(
                        int(usage.get("prompt_tokens", 0)),
                        int(usage.get("completion_tokens", 0)),
                        time.perf_counter() - start,
                    ),
                    None,
                    self.model,
                )
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code}"
                if err.code not in self.RETRY_STATUS:
                    break
            except (TimeoutError, urllib.error.URLError, ConnectionError) as err:
                last = f"timeout or connection error: {getattr(err, 'reason', err)}"
            except (KeyError, IndexError, ValueError) as err:
                last = f"malformed response: {err}"
                break
            if attempt < self.max_retries:
                time.sleep(
                    self.backoff * (2**attempt) * (0.5 + rng.random())
                )  # exponential backoff with jitter
        return self.failed(
            r,
            f"backend error after {attempt + 1} attempts: {last}",
            Usage(seconds=time.perf_counter() - start),
        )

    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, requests))


class VLLMBackend(Backend):
    """vLLM's in-process engine, the default on GPU.

    Options (passed to ``vllm.LLM``): ``tensor_parallel_size``, ``max_model_len``, ``gpu_memory_utilization``,
    ``limit_mm_per_prompt`` (default one image), ``mm_processor_kwargs`` (e.g. ``{"max_pixels": 1003520}``),
    ``trust_remote_code`` (off unless turned on), ``dtype``. Prefix caching is on, so the image and the post,
    placed first in every grain's prompt, are computed once per example. Images are passed for real, as PIL
    images in the chat's content parts; structured output uses ``StructuredOutputsParams(json=schema)``.
    """

    name = "vllm"

    def load(self) -> None:
        from cotdistill.optional import require

        vllm = require("vllm", "the vllm teacher backend")
        kwargs = {
            "model": self.model,
            "tensor_parallel_size": int(self.options.get("tensor_parallel_size", 1)),
            "gpu_memory_utilization": float(self.options.get("gpu_memory_utilization", 0.9)),
            "enable_prefix_caching": True,
            "limit_mm_per_prompt": self.options.get("limit_mm_per_prompt", {"image": 1}),
            "trust_remote_code": bool(self.options.get("trust_remote_code", False)),
        }
        for key in ("max_model_len", "mm_processor_kwargs", "dtype", "seed"):
            if self.options.get(key) is not None:
                kwargs[key] = self.options[key]
        self.llm = vllm.LLM(**kwargs)
        self._vllm = vllm

    def _sampling(self, r: TeacherRequest):
        from vllm.sampling_params import StructuredOutputsParams

        extra = (
            {"structured_outputs": StructuredOutputsParams(json=r.json_schema)}
            if r.json_schema is not None
            else {}
        )
        return self._vllm.SamplingParams(
            n=1,
            temperature=r.sampling.temperature,
            top_p=r.sampling.top_p,
            max_tokens=r.sampling.max_tokens,
            seed=r.sampling.seed,
            **extra,
        )

    @staticmethod
    def _messages(messages: list[dict]) -> list[dict]:
        from PIL import Image

        def pil(path: str) -> dict:
            with Image.open(path) as im:
                return {"type": "image_pil", "image_pil": im.convert("RGB")}

        return convert_messages(messages, pil)

    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        results: list[Generation | None] = [None] * len(requests)
        convs, params, index = [], [], []
        for i, r in enumerate(requests):
            try:
                convs.append(self._messages(r.messages))
            except OSError as err:
                results[i] = self.failed(r, f"unreadable image: {err}")
                continue
            params.append(self._sampling(r))
            index.append(i)
        if convs:
            start = time.perf_counter()
            outputs = self.llm.chat(convs, sampling_params=params, use_tqdm=False)
            seconds = (time.perf_counter() - start) / len(convs)
            for i, out in zip(index, outputs, strict=True):
                r = requests[i]
                completion = out.outputs[0]
                usage = Usage(len(out.prompt_token_ids or ()), len(completion.token_ids or ()), seconds)
                error = (
                    "prompt longer than the context"
                    if getattr(completion, "finish_reason", None) == "abort"
                    else None
                )
                results[i] = Generation(
                    r.key,
                    r.example_id,
                    r.template,
                    r.sample,
                    completion.text if error is None else None,
                    usage,
                    error,
                    self.model,
                )
        return results  # type: ignore[return-value]


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

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = self.options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = self.options.get("dtype") or (
            "bfloat16" if str(self.device).startswith("cuda") else "float32"
        )
        trust = bool(self.options.get("trust_remote_code", False))
        self.text_only = bool(self.options.get("text_only", False))
        if not self.text_only:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            self.processor = AutoProcessor.from_pretrained(self.model, trust_remote_code=trust)
            self.tokenizer = self.processor.tokenizer
            self.lm = AutoModelForImageTextToText.from_pretrained(
                self.model, dtype=getattr(torch, dtype), trust_remote_code=trust
            )
        else:
            self.processor = None
            self.tokenizer = AutoTokenizer.from_pretrained(self.model, trust_remote_code=trust)
            self.lm = AutoModelForCausalLM.from_pretrained(
                self.model, dtype=getattr(torch, dtype), trust_remote_code=trust
            )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.lm.to(self.device).eval()
        self.batch_size = int(self.options.get("batch_size", 8))
        config = self.lm.config
        self.context = getattr(config, "max_position_embeddings", None) or getattr(
            getattr(config, "text_config", None), "max_position_embeddings", None
        )

    def _prepare(self, r: TeacherRequest) -> tuple[str, list]:
        from PIL import Image

        images, messages = [], []
        for m in r.messages:
            content = m["content"]
            if isinstance(content, list):
                parts = []
                for part in content:
                    if part["type"] == "image":
                        if self.text_only:
                            continue
                        with Image.open(part["image"]) as im:
                            images.append(im.convert("RGB"))
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
                    r.key,
                    r.example_id,
                    r.template,
                    r.sample,
                    text,
                    Usage(int(n_prompt), int(ids.numel()), seconds),
                    None,
                    self.model,
                )
        return results  # type: ignore[return-value]


BACKENDS: dict[str, type[Backend]] = {
    "vllm": VLLMBackend,
    "transformers": TransformersBackend,
    "openai": OpenAIBackend,
    "replay": ReplayBackend,
    "echo": EchoBackend,
}


def make_backend(name: str, model: str, **options) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown teacher backend {name!r}; expected one of: {', '.join(BACKENDS)}")
    return BACKENDS[name](model, **options)


def env_api_key(variable: str | None) -> str | None:
    """Read an API key from the environment variable the config names (never from the config itself)."""
    return os.environ.get(variable) if variable else None
