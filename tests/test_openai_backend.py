"""The openai backend (the official ``openai`` client) against a local chat-completions server that injects
429 (with and without Retry-After), 500, timeouts, cut-short and malformed bodies. A real ``vllm serve``
is tested in ``test_vllm_serve.py``."""

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cotdistill.distill.backends import OpenAIBackend, Sampling, TeacherRequest


class Server:
    """Answers POST /v1/chat/completions; ``script`` maps a request's first text to the failures to inject
    before success ("429", "500", "timeout", "400")."""

    def __init__(self, script):
        self.script = {k: list(v) for k, v in script.items()}
        self.requests = []
        self.auth = []
        self.times = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                outer.auth.append(self.headers.get("Authorization"))
                text = next(  # a turn of text alone comes as a string, one with an image as parts
                    m["content"] if isinstance(m["content"], str) else p["text"]
                    for m in body["messages"]
                    if m["role"] == "user"
                    for p in (m["content"] if isinstance(m["content"], list) else [m["content"]])
                    if isinstance(p, str) or p["type"] == "text"
                )
                plan = outer.script.get(text, [])
                action = plan.pop(0) if plan else "ok"
                outer.times.setdefault(text, []).append(time.monotonic())
                if action == "timeout":
                    time.sleep(1.0)
                    return
                if action in ("429", "500", "400", "429-retry-after"):
                    data = json.dumps({"error": {"message": f"injected {action}"}}).encode()
                    self.send_response(int(action[:3]))
                    if action == "429-retry-after":
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if action in ("cut", "garbage"):
                    data = b'{"choices": [{"mess' if action == "cut" else b"<html>not json</html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data) + (100 if action == "cut" else 0)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.close_connection = True
                    return
                reply = {
                    "choices": [{"message": {"content": f"answer to {text}"}}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 7},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


def request(text, image=None, schema=None, sample=0):
    content = ([{"type": "image", "image": image}] if image else []) + [{"type": "text", "text": text}]
    return TeacherRequest(
        f"k-{text}",
        text,
        "mner.answer",
        sample,
        [{"role": "system", "content": "sys"}, {"role": "user", "content": content}],
        Sampling(0.7, 0.9, 64, 5 + sample),
        schema,
    )


def test_retries_on_429_500_and_timeouts_then_succeeds(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("TEST_TEACHER_KEY", "sk-secret-123")
    script = {"a": ["429", "500"], "b": ["timeout"], "c": [], "d": ["400"], "e": ["500"] * 10, "f": ["cut"]}
    with Server(script) as srv:
        backend = OpenAIBackend(
            "qwen-vl",
            base_url=srv.url,
            api_key_env="TEST_TEACHER_KEY",
            concurrency=4,
            max_retries=3,
            timeout=0.5,
        )
        backend.load()
        gens = backend.generate([request(t) for t in "abcdef"])
    by = {g.example_id: g for g in gens}
    assert [g.example_id for g in gens] == list("abcdef")  # in order
    assert by["a"].text == "answer to a" and by["a"].usage.prompt_tokens == 11 and by["a"].error is None
    assert by["b"].text == "answer to b" and by["c"].text == "answer to c"
    assert by["f"].text == "answer to f"  # a body cut short is retried like a dropped connection
    assert by["d"].text is None and by["d"].error.startswith("backend error: HTTP 400: ")
    assert len(srv.times["d"]) == 1  # a 400 is not retried
    assert by["e"].error.startswith("backend error: HTTP 500 after 3 retries")
    assert len(srv.times["e"]) == 4
    assert set(srv.auth) == {"Bearer sk-secret-123"}
    assert "sk-secret-123" not in caplog.text and "sk-secret-123" not in json.dumps(backend.options)


def test_retry_after_is_honoured_and_a_malformed_body_fails_alone():
    with Server({"a": ["429-retry-after"], "b": ["garbage"] * 10}) as srv:
        backend = OpenAIBackend("m", base_url=srv.url, max_retries=2, timeout=5)
        backend.load()
        gens = backend.generate([request(t) for t in "abc"])
    first, second = srv.times["a"]
    assert second - first >= 0.9  # the server's Retry-After: 1, not the client's 0.5 s first backoff
    assert gens[0].text == "answer to a" and gens[2].text == "answer to c"
    assert gens[1].text is None and gens[1].error.startswith("malformed response")


def test_a_server_that_is_down_stops_the_batch_and_keeps_what_was_made(tmp_path):
    import socket

    from cotdistill.distill.backends import TeacherUnavailable

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, timeout=1)
    backend.load()
    reqs = [request("x"), request("y", image=str(tmp_path / "missing.jpg"))]
    with pytest.raises(TeacherUnavailable, match=r"could not be reached for 1 of 2 requests") as info:
        backend.generate(reqs)
    assert [g.example_id for g in info.value.made] == ["y"]  # its own failure, stored; x is not
    assert info.value.made[0].error.startswith("unreadable image")


def test_options_are_checked_and_a_key_in_the_config_is_refused():
    from cotdistill.run.config import ConfigError

    with pytest.raises(ConfigError, match=r"did you mean 'teacher\.options\.concurrency'"):
        OpenAIBackend("m", concurency=4)
    with pytest.raises(ConfigError, match="api_key_env"):
        OpenAIBackend("m", api_key="sk-123")


def test_payload_images_sampling_and_schema(tmp_path):
    from PIL import Image

    img = tmp_path / "x.jpg"
    Image.new("RGB", (8, 8), "blue").save(img)
    with Server({}) as srv:
        backend = OpenAIBackend("qwen-vl", base_url=srv.url)
        backend.load()
        schema = {"type": "object"}
        gens = backend.generate(
            [
                request("p", image=str(img), schema=schema, sample=2),
                request("q", image=str(tmp_path / "missing.jpg")),
            ]
        )
    body = srv.requests[0]
    user = body["messages"][1]["content"]
    assert user[0]["type"] == "image_url" and user[0]["image_url"]["url"].startswith(
        "data:image/jpeg;base64,"
    )
    assert (
        body["model"],
        body["n"],
        body["temperature"],
        body["top_p"],
        body["max_tokens"],
        body["seed"],
    ) == ("qwen-vl", 1, 0.7, 0.9, 64, 7)
    assert body["response_format"]["json_schema"]["schema"] == schema
    assert gens[1].error.startswith("unreadable image") and len(srv.requests) == 1


def test_missing_key_variable_is_an_error(monkeypatch):
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    with pytest.raises(ValueError, match="NOT_SET_KEY"):
        OpenAIBackend("m", api_key_env="NOT_SET_KEY").load()


def test_a_long_retry_after_is_not_waited_for_and_the_retries_made_are_reported():
    from fault_server import FaultServer, Schedule

    rules = [("long", ["429-long"] * 9), ("down", ["503"] * 9), ("once", ["503"])]
    with FaultServer(Schedule(rules=rules)) as srv:
        backend = OpenAIBackend("m", base_url=srv.url, max_retries=3, timeout=5, max_retry_wait=0.1)
        backend.load()
        start = time.monotonic()
        long, down, once = backend.generate([request(t) for t in ("long", "down", "once")])
        elapsed = time.monotonic() - start
    attempts = Counter(digest for digest, _, _ in srv.log)
    assert sorted(attempts.values()) == [1, 2, 4]  # long: no retry; once: one; down: all three
    assert long.error.startswith("backend error: HTTP 429 after 0 retries: the server asked to wait 3,600 s")
    assert "teacher.options.max_retry_wait (0.1 s)" in long.error and long.transient
    assert down.error.startswith("backend error: HTTP 503 after 3 retries") and down.transient
    assert once.text == '{"entities": []}' and once.error is None
    # three waits of at most 0.1 s each (the client's own backoff would wait 0.5 + 1 + 2 s, less jitter)
    assert elapsed < 2.0


def test_max_retry_wait_is_checked_when_the_config_is_read():
    from cotdistill.run.config import ConfigError

    with pytest.raises(ConfigError, match=r"max_retry_wait"):
        OpenAIBackend("m", max_retry_wait=-1)
