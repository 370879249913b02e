"""The ``openai`` backend: any OpenAI-compatible chat-completions server (``vllm serve`` first of all), through
the official ``openai`` client (``AsyncOpenAI``: its requests, typed errors and timeouts). The retries are
made here, not by the client (``max_retries=0``): how long the client waits when a server asks for a wait
(``Retry-After``) is fixed inside it and differs between its versions, and it does not say how many retries
it made; here the wait is bounded by ``max_retry_wait`` and the count is reported."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import os
import random
import time
import weakref
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

MIN_SCRUBBED_KEY = 8  # a shorter key cannot be told from ordinary text, so it is not scrubbed from responses


@dataclass
class OpenAIOptions:
    base_url: str = "http://localhost:8000/v1"
    api_key_env: str | None = None  # the name of the environment variable that holds the key
    concurrency: int = bounded(8, ge=1)  # requests in flight at once
    max_retries: int = bounded(5, ge=0)  # retries of 408/409/429/5xx, timeouts and connection errors
    timeout: float = bounded(120.0, gt=0)  # seconds per attempt
    # the longest wait before one retry, in seconds: the backoff is cut to it, and a server that asks for a
    # longer wait (Retry-After) is not waited for (the request fails now and the next run makes it again)
    max_retry_wait: float = bounded(60.0, ge=0)
    # the HTTP transport: auto (aiohttp where "openai[aiohttp]" is installed, else httpx), aiohttp or httpx
    http_client: str = "auto"


class _Unreached(Exception):
    """A request the server never answered (connection refused, reset or timed out after every retry)."""


class _GaveUp(Exception):
    """A request the server kept refusing (408/409/429/5xx): the status error and the retries made."""

    def __init__(self, err, retries: int, note: str = ""):
        super().__init__(str(err))
        self.err, self.retries, self.note = err, retries, note


def retryable(status: int) -> bool:
    """The statuses worth another attempt (the openai client's own choice): timeout, conflict, rate limit,
    and every server error."""
    return status in (408, 409, 429) or status >= 500


def retry_after(headers) -> float | None:
    """The wait in seconds a response asks for (``Retry-After-Ms``, or ``Retry-After`` as seconds or as an
    HTTP date), or None when it asks for none or says it unreadably."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            if name != "retry-after":
                continue
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
        return None if math.isnan(seconds) else max(seconds, 0.0)
    return None


def backoff(retries_made: int, cap: float) -> float:
    """Exponential backoff with jitter (the openai client's: 0.5 s doubling to 8 s, less up to 25%), cut to
    ``cap``."""
    return min(0.5 * 2.0 ** min(retries_made, 16), 8.0, cap) * (1 - 0.25 * random.random())


def retries_text(n: int) -> str:
    return f"{n} retr{'y' if n == 1 else 'ies'}"


def http_client(openai, name: str):
    """The client's HTTP transport: ``aiohttp`` (the openai package's ``DefaultAioHttpClient``, which needs
    ``pip install "openai[aiohttp]"``; about half the client's time per request against a fast server), or
    ``httpx`` (the client's default). ``auto``: aiohttp where it is installed."""
    if name == "httpx":
        return None
    try:
        return openai.DefaultAioHttpClient()  # raises RuntimeError without the aiohttp extra
    except (AttributeError, RuntimeError):
        if name == "aiohttp":
            raise BackendLoadError(
                'teacher.options.http_client=aiohttp needs the aiohttp transport: pip install "openai[aiohttp]"'
            ) from None
        return None


def _shut_down(state: dict) -> None:
    """Close a backend's client and its event loop (when the backend is collected, or at exit). Collected
    while another event loop runs in this thread, the loop cannot run the client's close: its connections
    then close with the loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if state["client"] is not None:
            with contextlib.suppress(Exception):
                state["loop"].run(state["client"].close())
    with contextlib.suppress(Exception):
        state["loop"].close()


class OpenAIBackend(Backend):
    """Any OpenAI-compatible chat-completions server.

    The key is read from the environment variable named by ``api_key_env`` (never from the config, never
    logged, and scrubbed from whatever the server says back before it is stored); without one a placeholder
    key is sent, which local servers such as ``vllm serve`` accept. 408, 409, 429, 5xx, timeouts and
    connection errors are retried up to ``max_retries`` times with exponential backoff and jitter, honouring
    ``Retry-After`` up to ``max_retry_wait`` seconds. A request the server rejects (other 4xx) fails alone
    and is stored with the reason; one the server kept refusing (429, 5xx) or answered unreadably is stored
    as a failed request (``transient``), which the next run makes again; a server that cannot be reached
    raises ``TeacherUnavailable`` after the batch, with the requests that did come back, so a rerun makes
    exactly the missing ones.
    """

    name = "openai"
    Options = OpenAIOptions
    requires = ("openai",)
    _state: dict | None = None  # the event loop and the client, made by the first batch

    def load(self) -> None:
        from cotdistill.optional import require

        self._openai = require("openai", "the openai teacher backend")
        o: OpenAIOptions = self.opts
        if o.concurrency < 1 or o.max_retries < 0 or o.timeout <= 0 or not o.max_retry_wait >= 0:
            raise BackendLoadError(
                "teacher.options: concurrency must be ≥ 1, max_retries ≥ 0, timeout > 0 and max_retry_wait "
                f"≥ 0 (got {o.concurrency}, {o.max_retries}, {o.timeout}, {o.max_retry_wait})"
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
            if len(key) >= MIN_SCRUBBED_KEY:
                self.secrets = (key,)
            else:
                logger.warning(
                    "the key in %s is shorter than %d characters: it is not scrubbed from stored responses",
                    o.api_key_env,
                    MIN_SCRUBBED_KEY,
                )
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

    async def _create(self, client, payload: dict):
        """The server's response, retried as the class docstring says. Raises ``_GaveUp`` for a status the
        server kept answering (or a wait longer than ``max_retry_wait``), ``_Unreached`` for a server that
        never answered, and the client's error for a status not worth retrying."""
        openai, o = self._openai, self.opts
        retries = 0
        while True:
            try:
                # The client's generic post, read as plain JSON: the payload is already in the API's form,
                # and the typed ``chat.completions.create`` would walk it against its parameter types and
                # build the response's models on every request (most of the client's time per request
                # against a fast server). Status errors, timeouts and connection errors are the same.
                return await client.post("/chat/completions", cast_to=object, body=payload)
            except openai.APIStatusError as err:
                if not retryable(err.status_code):
                    raise
                if retries >= o.max_retries:
                    raise _GaveUp(err, retries) from None
                asked = retry_after(err.response.headers)
                if asked is not None and asked > o.max_retry_wait:
                    raise _GaveUp(
                        err,
                        retries,
                        f"the server asked to wait {asked:,.0f} s, longer than teacher.options.max_retry_wait "
                        f"({o.max_retry_wait:g} s)",
                    ) from None
                wait = asked if asked is not None else backoff(retries, o.max_retry_wait)
            except openai.APIConnectionError as err:  # includes APITimeoutError
                if retries >= o.max_retries:
                    raise _Unreached(
                        f"{err.__class__.__name__}: {err} (after {retries_text(retries)})"
                    ) from None
                wait = backoff(retries, o.max_retry_wait)
            await asyncio.sleep(wait)
            retries += 1

    async def _one(self, client, gate: asyncio.Semaphore, r: TeacherRequest) -> Generation:
        openai = self._openai
        try:
            payload = self._payload(r)
        except OSError as err:
            return self.failed(r, f"unreadable image: {err.strerror or err}")
        start = time.perf_counter()
        async with gate:  # held through the waits between retries: a busy server gets fewer requests
            try:
                response = await self._create(client, payload)
            except _GaveUp as gave_up:
                err = gave_up.err
                note = f"{gave_up.note}: " if gave_up.note else ""
                return self.failed(
                    r,
                    f"backend error: HTTP {err.status_code} after {retries_text(gave_up.retries)}: {note}"
                    f"{one_line(err.message, 200)}",
                    Usage(seconds=time.perf_counter() - start),
                    transient=True,
                )
            except openai.APIStatusError as err:  # rejected: the request's own fault, not retried
                return self.failed(
                    r,
                    f"backend error: HTTP {err.status_code}: {one_line(err.message, 200)}",
                    Usage(seconds=time.perf_counter() - start),
                )
            except (openai.APIError, ValueError, TypeError) as err:  # a body the client could not read
                return self.failed(
                    r,
                    f"malformed response: {one_line(str(err), 200)}",
                    Usage(seconds=time.perf_counter() - start),
                    transient=True,
                )
        return self._answer(r, response, time.perf_counter() - start)

    def _answer(self, r: TeacherRequest, response, seconds: float) -> Generation:
        """The generation of a response the client could read: its text, and its usage as the server counted
        it (``made`` refuses counts that cannot be true)."""
        if not isinstance(response, dict):  # a body that is not a JSON object: the server's fault
            return self.failed(
                r, "malformed response: not a JSON object", Usage(seconds=seconds), transient=True
            )
        try:
            text = response["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            text = None
        if not isinstance(text, str):
            return self.failed(r, "malformed response: no message content", Usage(seconds=seconds))
        usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        # a server that counts nothing sends no usage: 0, not an anomaly; anything else is checked by made()
        return self.made(
            r, text, Usage(0 if prompt is None else prompt, 0 if completion is None else completion, seconds)
        )

    async def _settled(self, client, gate: asyncio.Semaphore, r: TeacherRequest) -> Generation | str:
        """The request's generation, or why the server could not be reached (a string)."""
        try:
            return await self._one(client, gate, r)
        except _Unreached as err:
            return self.scrub(str(err))
        except Exception as err:  # a bug or a response shape nobody foresaw: this request fails alone
            reason = self.scrub(f"{err.__class__.__name__}: {one_line(str(err), 200)}")
            logger.error("request %s: %s", r.key, reason)
            return self.failed(r, f"backend error: {reason}")

    async def _batch(self, requests: Sequence[TeacherRequest], store) -> list[str]:
        """Every request in flight (``concurrency`` at a time); each generation goes to ``store`` the moment
        it is made. Returns why each unreached request was not made."""
        o: OpenAIOptions = self.opts
        if self._state["client"] is None:  # made in the loop that uses it, once: connections outlive a batch
            self._state["client"] = self._openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self.api_key,
                max_retries=0,
                timeout=o.timeout,
                http_client=http_client(self._openai, o.http_client),
            )
        client = self._state["client"]
        gate = asyncio.Semaphore(o.concurrency)
        unreached = []
        for done in asyncio.as_completed([self._settled(client, gate, r) for r in requests]):
            result = await done
            if isinstance(result, str):
                unreached.append(result)
            else:
                store([result])
        return unreached

    def generate_each(self, requests: Sequence[TeacherRequest], store) -> None:
        if self._state is None:  # one event loop and one client for the backend's life, closed with it
            self._state = {"loop": asyncio.Runner(), "client": None}
            weakref.finalize(self, _shut_down, self._state)
        unreached = self._state["loop"].run(self._batch(requests, store))
        if unreached:
            raise TeacherUnavailable(
                f"the teacher at {self.base_url} could not be reached for {len(unreached)} of {len(requests)} "
                f"requests ({unreached[0]}); what came back is stored, rerun when the server is up to make "
                "the rest",
                [],
            )

    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        made: list[Generation] = []
        try:
            self.generate_each(requests, made.extend)
        except TeacherUnavailable as err:
            err.made = made
            raise
        order = {r.key: i for i, r in enumerate(requests)}
        return sorted(made, key=lambda g: order[g.key])
