"""Teacher backends: the one plug-in seam.

A backend is loaded once and then asked to generate for batches of requests; it returns one Generation per
request, never raising for a bad request (the error is stored and counted). ``BACKENDS`` maps names to
classes; heavy packages are imported inside ``load()`` with an install hint.
"""

from __future__ import annotations

import abc
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cotdistill.records import Usage

logger = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Sampling:
    """Sampling parameters of a generation (part of its cache key)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0

    def to_dict(self) -> dict:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }


@dataclass(slots=True)
class TeacherRequest:
    """One generation to make: an example rendered through a template, one sample of it."""

    key: str
    example_id: str
    template: str
    sample: int
    messages: list[dict]
    sampling: Sampling
    json_schema: dict | None = None


@dataclass(slots=True)
class Generation:
    """What came back for one request: text and usage, or an error (never both empty)."""

    key: str
    example_id: str
    template: str
    sample: int
    text: str | None
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    model: str = ""

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "example_id": self.example_id,
            "template": self.template,
            "sample": self.sample,
            "model": self.model,
            "text": self.text,
            "usage": self.usage.to_dict(),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, obj: dict) -> Generation:
        return cls(
            key=obj["key"],
            example_id=obj["example_id"],
            template=obj["template"],
            sample=int(obj["sample"]),
            text=obj.get("text"),
            usage=Usage.from_dict(obj.get("usage") or {}),
            error=obj.get("error"),
            model=obj.get("model", ""),
        )


class Backend(abc.ABC):
    """Load once, then generate for batches of requests."""

    name: str = "backend"

    def __init__(self, model: str, **options):
        self.model = model
        self.options = options

    def load(self) -> None:  # noqa: B027 (optional hook)
        """Load weights or open connections; called once before the first batch."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        """One Generation per request, in order. A failing request gets ``error`` set, not an exception."""


class ReplayBackend(Backend):
    """Existing teacher outputs keyed by example id: PGIM's knowledge files or a plain JSONL file.

    ``model`` names the source; options: ``texts`` (a ``{example_id: text}`` mapping) or ``path`` (JSONL
    with ``id`` and ``text`` fields, one per line).
    """

    name = "replay"

    def load(self) -> None:
        import json

        texts = self.options.get("texts")
        if texts is None:
            path = self.options.get("path")
            if not path:
                raise ValueError("the replay backend needs texts= or path= (a JSONL file of {id, text})")
            texts = {}
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            obj = json.loads(line)
                            texts[str(obj["id"])] = str(obj["text"])
                        except (ValueError, KeyError) as err:
                            raise ValueError(
                                f"{path}:{lineno}: expected a JSON object with 'id' and 'text' ({err})"
                            ) from None
        self.texts: dict[str, str] = dict(texts)

    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        out = []
        for r in requests:
            text = self.texts.get(r.example_id)
            error = None if text is not None else f"no replayed text for example {r.example_id}"
            out.append(
                Generation(r.key, r.example_id, r.template, r.sample, text, Usage(), error, self.model)
            )
        return out


class EchoBackend(Backend):
    """Returns at once with a fixed text (option ``text``): measures pipeline overhead, drives tests."""

    name = "echo"

    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        text = self.options.get("text", "{}")
        delay = float(self.options.get("delay", 0.0))
        if delay:
            time.sleep(delay)
        fail = self.options.get("fail_ids", ())
        return [
            Generation(
                r.key,
                r.example_id,
                r.template,
                r.sample,
                None if r.example_id in fail else text,
                Usage(len(str(r.messages)) // 4, len(text) // 4, 0.0),
                "injected failure" if r.example_id in fail else None,
                self.model,
            )
            for r in requests
        ]


BACKENDS: dict[str, type[Backend]] = {"replay": ReplayBackend, "echo": EchoBackend}


def make_backend(name: str, model: str, **options) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown teacher backend {name!r}; expected one of: {', '.join(BACKENDS)}")
    return BACKENDS[name](model, **options)


def env_api_key(variable: str | None) -> str | None:
    """Read an API key from the environment variable the config names (never from the config itself)."""
    return os.environ.get(variable) if variable else None
