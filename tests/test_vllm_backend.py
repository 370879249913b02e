"""The vllm backend at its boundary: a fake ``vllm`` module in sys.modules records the exact calls.

vLLM itself cannot run here (no GPU); this checks what cotdistill hands it: engine options, images passed
for real, sampling parameters per sample, and structured output from the task's schema.
"""

import sys
import types
import typing

import pytest
from conftest import need

from cotdistill.distill.backends import Sampling, TeacherRequest, VLLMBackend


class FakeLLM:
    calls: typing.ClassVar[list] = []

    def __init__(self, **kwargs):
        FakeLLM.init = kwargs

    def chat(self, conversations, sampling_params, use_tqdm):
        FakeLLM.calls.append((conversations, sampling_params))
        return [
            types.SimpleNamespace(
                prompt_token_ids=[1] * 30,
                outputs=[types.SimpleNamespace(text=f"reply {k}", token_ids=[1] * 5, finish_reason="stop")],
            )
            for k in range(len(conversations))
        ]


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class FakeStructured:
    def __init__(self, json=None):
        self.json = json


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = FakeLLM, FakeSamplingParams
    sp = types.ModuleType("vllm.sampling_params")
    sp.StructuredOutputsParams = FakeStructured
    vllm.sampling_params = sp
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sp)
    FakeLLM.calls = []
    return vllm


def test_engine_options_images_sampling_and_schema(fake_vllm, datasets_dir, tmp_path):
    image = sorted((need(datasets_dir, "mnre") / "images").glob("*.jpg"))[0]
    backend = VLLMBackend(
        "Qwen/Qwen2.5-VL-7B-Instruct",
        tensor_parallel_size=2,
        max_model_len=8192,
        mm_processor_kwargs={"max_pixels": 1003520},
        gpu_memory_utilization=0.85,
    )
    backend.load()
    assert FakeLLM.init == {
        "model": "Qwen/Qwen2.5-VL-7B-Instruct",
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.85,
        "enable_prefix_caching": True,
        "limit_mm_per_prompt": {"image": 1},
        "trust_remote_code": False,
        "max_model_len": 8192,
        "mm_processor_kwargs": {"max_pixels": 1003520},
    }
    schema = {"type": "object", "properties": {"entities": {"type": "array"}}}
    msgs = [
        {"role": "system", "content": "s"},
        {
            "role": "user",
            "content": [{"type": "image", "image": str(image)}, {"type": "text", "text": "post"}],
        },
    ]
    reqs = [
        TeacherRequest("k0", "e", "mner.answer", 0, msgs, Sampling(0.7, 0.95, 256, 10), schema),
        TeacherRequest("k1", "e", "mner.answer", 1, msgs, Sampling(0.7, 0.95, 256, 11), schema),
        TeacherRequest(
            "k2",
            "e",
            "mner.noun",
            0,
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "image": str(tmp_path / "gone.jpg")},
                        {"type": "text", "text": "x"},
                    ],
                }
            ],
            Sampling(),
            None,
        ),
    ]
    gens = backend.generate(reqs)
    convs, params = FakeLLM.calls[0]
    assert len(convs) == 2  # the unreadable image failed before reaching the engine
    part = convs[0][1]["content"][0]
    assert part["type"] == "image_pil" and part["image_pil"].size[0] > 0  # the real image, as pixels
    assert convs[0][1]["content"][1] == {"type": "text", "text": "post"}
    assert [p.kwargs["seed"] for p in params] == [10, 11]
    assert params[0].kwargs | {"structured_outputs": None} == {
        "n": 1,
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 256,
        "seed": 10,
        "structured_outputs": None,
    }
    assert params[0].kwargs["structured_outputs"].json == schema
    assert (
        [g.text for g in gens[:2]] == ["reply 0", "reply 1"]
        and gens[0].usage.prompt_tokens == 30
        and gens[0].usage.completion_tokens == 5
    )
    assert gens[2].error.startswith("unreadable image")


def test_missing_vllm_has_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r'pip install "cotdistill\[vllm\]"'):
        VLLMBackend("m").load()
