"""benchmarks/gpu/bench.py, the script a lent GPU runs (benchmarks/gpu/run.sh), in its toy size on CPU: every
part runs and writes its figures (the numbers mean nothing here)."""

import importlib.util
import json
import subprocess
import sys

import pytest
from conftest import REPO


def test_the_gpu_benchmark_runs_in_toy_size(tmp_path):
    parts = ["encoder", "vlm"] + (["decode"] if importlib.util.find_spec("vllm") else [])
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "gpu" / "bench.py"),
            "--size",
            "toy",
            "--out",
            str(out),
            "--parts",
            *parts,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["size"] == "toy" and result["device"]
    for part in ("encoder", "vlm"):
        figures = result[part]
        assert figures is not None, result.get(f"{part}_why")
        assert figures["step_seconds"] > 0 and figures["tokens_per_s"] > 0
        assert 0 < figures["trainable_parameters"] < figures["parameters"]  # LoRA: a small share trains
        assert figures["mfu"] is None  # no known peak for a CPU
    if "decode" in parts:
        decode = result["decode"]
        assert decode is not None, result.get("decode_why")
        assert decode["batch_1"]["tokens"] == 8 and decode["batch_4"]["tokens"] == 32
        assert decode["batch_4"]["tokens_per_s"] > 0
    if "decode" not in parts:
        pytest.skip("vllm is not installed: the decode part was not run")
