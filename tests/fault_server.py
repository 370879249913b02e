"""A fault-injecting OpenAI-compatible chat-completions server for tests: a real HTTP server on 127.0.0.1
(the standard library's ``ThreadingHTTPServer``) that answers ``POST /v1/chat/completions`` with what a
seeded ``Schedule`` says, attempt by attempt.

A request is known by the digest of its body (messages, model and sampling), so the attempts of one request
are counted across retries and across runs. What the server can do to an attempt:

- ``ok``: a good answer (``content``, usage 11 prompt + 7 completion tokens)
- ``503``: Service Unavailable; ``429``: Too Many Requests with ``Retry-After: 0.2``; ``429-long``: the same
  with ``Retry-After: 3600``
- ``slow``: a good answer whose body trickles out in pieces (each gap well under the client's timeout)
- ``truncated``: 200 with a body of JSON cut short (its Content-Length matching what is sent)
- ``drop``: the connection closed without an answer
- ``usage``: a good answer with token usage that cannot be true, drawn by digest: ``usage-negative``
  (prompt_tokens -5) or ``usage-huge`` (a billion completion tokens)
- ``echo``: a good answer that repeats the request's API key; ``400-echo``: a 400 whose message repeats it

``first`` makes sure of what a test needs whatever the digests are: the first requests to arrive meet its
faults (in an order shuffled by the seed), one each. A ``sticky`` request (one of ``first``, or a share
drawn by digest) is answered 503 on every attempt until ``heal()``; every other request meets its faults on
its first ``faulty_attempts`` attempts only, and ``ok`` after. ``heal()`` makes every later attempt ``ok``.
The server logs every attempt it served (``log``).
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OK_ACTIONS = ("ok", "slow", "usage", "usage-negative", "usage-huge", "echo")  # what leaves an answer
FAULTS = ("503", "429", "429-long", "slow", "truncated", "drop", "usage", "echo")


@dataclass
class Schedule:
    """Which action meets attempt ``attempt`` of the request with body digest ``digest``.

    ``rules`` come first: (substring of the request's body, actions of its attempts in order, then
    ``then``). Then ``first``: the request that arrived ``order``-th (counting from 0) meets fault
    ``order`` of ``first`` shuffled by the seed ("sticky": 503 on every attempt). Otherwise a request is
    sticky with probability ``sticky``, and each of its first ``faulty_attempts`` attempts draws a fault
    with the probabilities in ``rates`` (the rest: ``ok``); every draw is seeded by (``seed``, digest,
    attempt), so a request meets the same faults on every run.
    """

    seed: int = 0
    sticky: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    faulty_attempts: int = 1
    first: list[str] = field(default_factory=list)
    rules: list[tuple[str, list[str]]] = field(default_factory=list)
    then: str = "ok"

    def action(self, digest: str, body_text: str, attempt: int, order: int = 0) -> str:
        for needle, actions in self.rules:
            if needle in body_text:
                return actions[attempt] if attempt < len(actions) else self.then
        fault = None
        if order < len(self.first):
            fault = random.Random(self.seed).sample(self.first, len(self.first))[order]
        if fault == "sticky" or random.Random(f"{self.seed}:sticky:{digest}").random() < self.sticky:
            return "503"
        if attempt >= self.faulty_attempts:
            return "ok"
        if fault is not None:
            return fault
        draw = random.Random(f"{self.seed}:{digest}:{attempt}").random()
        for name, p in sorted(self.rates.items()):
            if draw < p:
                return name
            draw -= p
        return "ok"


def body_digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


class FaultServer:
    """The server, as a context manager; ``url`` is its ``base_url``."""

    def __init__(self, schedule: Schedule | None = None, content: str = '{"entities": []}'):
        self.schedule = schedule or Schedule()
        self.content = content
        self.healed = False
        self.log: list[tuple[str, int, str]] = []  # (digest, attempt, action) of every attempt served
        self.attempts: dict[str, int] = {}
        self.order: dict[str, int] = {}  # digest -> the how-manieth distinct request it was to arrive
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def heal(self) -> None:
        """Every later attempt is answered ``ok``."""
        self.healed = True

    def mark(self) -> int:
        """Where the log stands now (to read what a later run asked for: ``requested(since=mark)``)."""
        return len(self.log)

    def requested(self, since: int = 0) -> set[str]:
        """The digests of the requests asked for since log position ``since``."""
        return {digest for digest, _, _ in self.log[since:]}

    def last_actions(self, since: int = 0) -> dict[str, str]:
        """Each request's last action since log position ``since``: how it ended."""
        return {digest: action for digest, _, action in self.log[since:]}

    def served(self, since: int = 0) -> set[str]:
        return {action for _, _, action in self.log[since:]}

    def _next(self, body: dict, raw: str) -> tuple[str, str]:
        digest = body_digest(body)
        with self.lock:
            attempt = self.attempts.get(digest, 0)
            self.attempts[digest] = attempt + 1
            order = self.order.setdefault(digest, len(self.order))
            action = "ok" if self.healed else self.schedule.action(digest, raw, attempt, order)
            self.log.append((digest, attempt, action))
        return digest, action

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
                digest, action = server._next(json.loads(raw), raw)
                key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                if action == "drop":
                    self.close_connection = True
                    return
                if action in ("503", "429", "429-long", "400-echo"):
                    message = f"injected {action}" + (f" for key {key}" if action == "400-echo" else "")
                    retry_after = {"429": "0.2", "429-long": "3600"}.get(action)
                    return self._send(int(action[:3]), {"error": {"message": message}}, retry_after)
                if action == "truncated":
                    return self._send(200, b'{"id": "x", "choices": [{"index": 0, "message": {"content": "')
                content = server.content + (f" (your key is {key})" if action == "echo" else "")
                if action == "usage":  # one of two lies, drawn by digest
                    action = ("usage-negative", "usage-huge")[int(digest, 16) % 2]
                usage = {
                    "usage-negative": {"prompt_tokens": -5, "completion_tokens": 7},
                    "usage-huge": {"prompt_tokens": 11, "completion_tokens": 10**9},
                }.get(action, {"prompt_tokens": 11, "completion_tokens": 7})
                reply = {
                    "id": f"cmpl-{digest}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": "fault",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": content},
                        }
                    ],
                    "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
                }
                self._send(200, reply, slow=action == "slow")

            def _send(self, status: int, body, retry_after: str | None = None, slow: bool = False):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                pieces = [data[i : i + 40] for i in range(0, len(data), 40)] if slow else [data]
                for piece in pieces:
                    self.wfile.write(piece)
                    self.wfile.flush()
                    if slow:
                        time.sleep(0.02)

        return Handler
