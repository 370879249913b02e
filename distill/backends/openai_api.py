"""The ``openai`` backend: any OpenAI-compatible chat-completions server (``vllm serve`` first of all), through
the official ``openai`` client (``AsyncOpenAI``: its retries with backoff and jitter, ``Retry-After``, its
typed errors)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cotdistill.records import Usage
from cotdistill.settings import bounded

from .base import (
    Backend,
    BackendLoadError,
    Generation,
    TeacherRequest,
    TeacherUnavailable,
    one_line,
    openai_messages,
)

logger = logging.getLogger(__name__)


@dataclass
class OpenAIOptions:
    base_url: str = "http://localhost:8000/v1"
    api_key_env: str | None = None  # the name of the environment variable that holds the key
    concurrency: int = bounded(8, ge=1)  # requests in flight at once
    max_retries: int = bounded(
        5, ge=0
    )  # the client's retries of 408/409/429/5xx, timeouts and connection errors
    timeout: float = bounded(120.0, gt=0)  # seconds per attempt


class _Unreached(Exception):
    """A request the server never answered (connection refused, reset or timed out after every retry)."""


class OpenAIBackend(Backend):
    """Any OpenAI-compatible chat-completions server.

    The key is read from the environment variable named by ``api_key_env`` (never from the config, never
    logged); without one a placeholder key is sent, which local servers such as ``vllm serve`` accept. The
    client retries 408, 409, 429, 5xx, timeouts and connection errors with exponential backoff and jitter,
    honouring ``Retry-After``. A request the server rejects (4xx) or answers with something unreadable fails
    alone and is stored with the reason; a server that cannot be reached raises ``TeacherUnavailable`` after
    the batch, with the requests that did come back, so a rerun makes exactly the missing ones.
    """

    name = "openai"
    Options = OpenAIOptions
    requires = ("openai",)

    def load(self) -> None:
        from cotdistill.optional import require

        self._openai = require("openai", "the openai teacher backend")
        o: OpenAIOptions = self.opts
        if o.concurrency < 1 or o.max_retries < 0 or o.timeout <= 0:
            raise BackendLoadError(
                "teacher.options: concurrency must be ≥ 1, max_retries ≥ 0 and timeout > 0 "
                f"(got {o.concurrency}, {o.max_retries}, {o.timeout})"
            )
        self.api_key = "EMPTY"
        if o.api_key_env:
            key = os.environ.get(o.api_key_env)
            if not key:
                raise BackendLoadError(
                    f"the environment variable {o.api_key_env} named by teacher.options.api_key_env is not "
                    "set; export it, or drop api_key_env for a server that needs no key"
                )
            self.api_key = key
        self.base_url = o.base_url.rstrip("/")

    def _payload(self, r: TeacherRequest) -> dict:
        payload = {
            "model": self.model,
            "messages": openai_messages(r.messages),
            "n": 1,
            "temperature": r.sampling.temperature,
            "top_p": r.sampling.top_p,
            "max_tokens": r.sampling.max_tokens,
        }
        if r.sampling.temperature > 0:  # a greedy answer needs no seed (and vLLM's CPU engine dislikes them)
            payload["seed"] = r.sampling.seed
        if r.json_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": r.json_schema},
            }
        return payload

    async def _one(self, client, gate: asyncio.Semaphore, r: TeacherRequest) -> Generation:
        openai = self._openai
        try:
            payload = self._payload(r)
        except OSError as err:
            return self.failed(r, f"unreadable image: {err.strerror or err}")
        start = time.perf_counter()
        async with gate:
            try:
                response = await client.chat.completions.create(**payload)
            except openai.APIConnectionError as err:  # includes APITimeoutError
                raise _Unreached(f"{err.__class__.__name__}: {err}") from None
            except openai.APIStatusError as err:
                return self.failed(
                    r,
                    f"backend error: HTTP {err.status_code} after {self.opts.max_retries} retries: "
                    f"{one_line(err.message, 200)}"
                    if err.status_code == 429 or err.status_code >= 500
                    else f"backend error: HTTP {err.status_code}: {one_line(err.message, 200)}",
                    Usage(seconds=time.perf_counter() - start),
                )
            except (openai.APIError, ValueError, TypeError) as err:  # a body the client could not read
                return self.failed(
                    r,
                    f"malformed response: {one_line(str(err), 200)}",
                    Usage(seconds=time.perf_counter() - start),
                )
        seconds = time.perf_counter() - start
        try:
            text = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            text = None
        if not isinstance(text, str):
            return self.failed(r, "malformed response: no message content", Usage(seconds=seconds))
        usage = getattr(response, "usage", None)
        return self.made(
            r,
            text,
            Usage(
                int(getattr(usage, "prompt_tokens", 0) or 0),
                int(getattr(usage, "completion_tokens", 0) or 0),
                seconds,
            ),
        )

    async def _batch(self, requests: Sequence[TeacherRequest]) -> list:
        o: OpenAIOptions = self.opts
        gate = asyncio.Semaphore(o.concurrency)
        async with self._openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, max_retries=o.max_retries, timeout=o.timeout
        ) as client:
            return await asyncio.gather(
                *(self._one(client, gate, r) for r in requests), return_exceptions=True
            )

    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        results = asyncio.run(self._batch(requests))
        made, unreached = [], []
        for r, res in zip(requests, results, strict=True):
            if isinstance(res, Generation):
                made.append(res)
            elif isinstance(res, _Unreached):
                unreached.append(str(res))
            else:  # a bug or a response shape nobody foresaw: this request fails alone, with the reason
                logger.error("request %s: %s: %s", r.key, res.__class__.__name__, res)
                made.append(
                    self.failed(r, f"backend error: {res.__class__.__name__}: {one_line(str(res), 200)}")
                )
        if unreached:
            raise TeacherUnavailable(
                f"the teacher at {self.base_url} could not be reached for {len(unreached)} of {len(requests)} "
                f"requests after {self.opts.max_retries} retries ({unreached[0]}); what came back is stored, "
                "rerun when the server is up to make the rest",
                made,
            )
        return made
