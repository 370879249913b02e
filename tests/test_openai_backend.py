"""The openai backend against a local chat-completions server that injects 429, 500 and timeouts."""

import json
import threading
import time
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
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                outer.auth.append(self.headers.get("Authorization"))
                text = next(
                    p["text"]
                    for m in body["messages"]
                    if isinstance(m["content"], list)
                    for p in m["content"]
                    if p["type"] == "text"
                )
                plan = outer.script.get(text, [])
                action = plan.pop(0) if plan else "ok"
                if action == "timeout":
                    time.sleep(1.0)
                    return
                if action in ("429", "500", "400"):
                    self.send_response(int(action))
                    self.end_headers()
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
    script = {"a": ["429", "500"], "b": ["timeout"], "c": [], "d": ["400"], "e": ["500"] * 10}
    with Server(script) as srv:
        backend = OpenAIBackend(
            "qwen-vl",
            base_url=srv.url,
            api_key_env="TEST_TEACHER_KEY",
            concurrency=4,
            max_retries=3,
            timeout=0.5,
            backoff=0.01,
        )
        backend.load()
        gens = backend.generate([request(t) for t in "abcde"])
    by = {g.example_id: g for g in gens}
    assert by["a"].text == "answer to a" and by["a"].usage.prompt_tokens == 11 and by["a"].error is None
    assert by["b"].text == "answer to b" and by["c"].text == "answer to c"
    assert by["d"].text is None and by["d"].error == "backend error after 1 attempts: HTTP 400"  # not retried
    assert by["e"].error == "backend error after 4 attempts: HTTP 500"
    assert set(srv.auth) == {"Bearer sk-secret-123"}
    assert "sk-secret-123" not in caplog.text and "sk-secret-123" not in json.dumps(backend.options)


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
