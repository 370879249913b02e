"""Teacher backends: the one plug-in seam.

A backend is loaded once and then asked to generate for batches of requests; it returns one Generation per
request, never raising for a bad request (the error is stored and counted). ``BACKENDS`` maps names to
classes, one module each; heavy packages are imported inside ``load()`` with an install hint.
"""

from __future__ import annotations

from cotdistill.errors import InputError

from .base import (
    Backend,
    BackendLoadError,
    Generation,
    Sampling,
    TeacherRequest,
    TeacherUnavailable,
    convert_messages,
    image_data_url,
    openai_messages,
    usage_anomaly,
)
from .echo import EchoBackend
from .openai_api import OpenAIBackend
from .replay import ReplayBackend
from .transformers_local import TransformersBackend
from .vllm_engine import VLLMBackend

BACKENDS: dict[str, type[Backend]] = {
    "vllm": VLLMBackend,
    "transformers": TransformersBackend,
    "openai": OpenAIBackend,
    "replay": ReplayBackend,
    "echo": EchoBackend,
}


def make_backend(name: str, model: str, **options) -> Backend:
    """The backend ``name`` for ``model``, its options checked (an unknown one names the nearest)."""
    if name not in BACKENDS:
        raise InputError(f"unknown teacher backend {name!r}; expected one of: {', '.join(BACKENDS)}")
    return BACKENDS[name](model, **options)


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendLoadError",
    "EchoBackend",
    "Generation",
    "OpenAIBackend",
    "ReplayBackend",
    "Sampling",
    "TeacherRequest",
    "TeacherUnavailable",
    "TransformersBackend",
    "VLLMBackend",
    "convert_messages",
    "image_data_url",
    "make_backend",
    "openai_messages",
    "usage_anomaly",
]
