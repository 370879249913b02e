"""What every teacher backend shares: the request and result records, the ``Backend`` base class, the
errors a backend raises, and the conversion of cotdistill chat messages into an engine's own form."""

from __future__ import annotations

import abc
import base64
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field

from cotdistill.errors import InputError, RunError
from cotdistill.images import read_image_bytes
from cotdistill.records import Usage
from cotdistill.settings import ConfigError, build_section


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


@dataclass(slots=True, kw_only=True)
class Generation:
    """What came back for one request: text and usage, or an error (never both empty). Built by keyword."""

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
    """Load once, then generate for batches of requests.

    ``Options``, when a backend sets it, is the dataclass of its ``teacher.options``: they are checked
    against it when the backend is made (an unknown key is an error naming the nearest valid one) and read
    as ``self.opts``; ``self.options`` keeps the mapping as given.
    """

    name: str = "backend"
    Options: type | None = None
    requires: tuple[str, ...] = ()  # the packages load() imports (checked before a run starts)

    def __init__(self, model: str, **options):
        self.model = model
        self.options = options
        self.opts = backend_options(self.Options, options) if self.Options is not None else None

    def load(self) -> None:  # noqa: B027 (optional hook)
        """Load weights or open connections; called once before the first batch."""

    def failed(self, r: TeacherRequest, error: str, usage: Usage | None = None) -> Generation:
        """The stored result of a request that could not be made (its own fault, not the teacher's)."""
        return Generation(
            key=r.key,
            example_id=r.example_id,
            template=r.template,
            sample=r.sample,
            text=None,
            usage=usage or Usage(),
            error=error,
            model=self.model,
        )

    def made(self, r: TeacherRequest, text: str, usage: Usage) -> Generation:
        """The stored result of a request that succeeded."""
        return Generation(
            key=r.key,
            example_id=r.example_id,
            template=r.template,
            sample=r.sample,
            text=text,
            usage=usage,
            error=None,
            model=self.model,
        )

    def ensure_loaded(self) -> None:
        """``load()`` the first time only: one backend serves every split of a run."""
        if not getattr(self, "_loaded", False):
            self.load()
            self._loaded = True

    @abc.abstractmethod
    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        """One Generation per request, in order. A request that fails on its own (an unreadable image, a
        prompt too long, a response that cannot be read) gets ``error`` set, not an exception; a teacher
        that cannot be reached at all raises ``TeacherUnavailable`` with what was made before."""


class BackendLoadError(InputError):
    """The backend cannot start (a model it cannot load, a missing package, a machine it cannot run on).
    Raised by ``load()`` before any request is made; the message is one line that says how to fix it."""


class TeacherUnavailable(RunError):
    """The teacher could not be reached (server down, engine dead): nothing is wrong with the requests.

    ``made`` holds the generations of the batch that did come back, which the runner stores before it
    stops; the requests that were not made are not stored, so the next run makes them.
    """

    def __init__(self, message: str, made: Sequence[Generation] = ()):
        super().__init__(message)
        self.made = list(made)


def backend_options(cls: type, options: dict):
    """``teacher.options`` checked against a backend's options dataclass."""
    if "api_key" in options:
        raise ConfigError(
            "teacher.options.api_key: a key is never put in a config (configs are saved with every run); "
            "export it in an environment variable and name that variable with teacher.options.api_key_env"
        )
    try:
        return build_section(cls, options, "teacher.options.")
    except ConfigError as err:
        raise ConfigError(
            f"{err} (the options of this teacher backend; switching backends by override? set the whole "
            "mapping, e.g. teacher.options={...})"
        ) from None


def one_line(text: str, limit: int = 300) -> str:
    """An error message as one line of at most ``limit`` characters (for stored reasons and load errors)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def image_data_url(path: str) -> str:
    """An image file as a base64 ``data:`` URL (what OpenAI-compatible servers take for local images)."""
    mime = mimetypes.guess_type(path)[0] or "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(read_image_bytes(path)).decode('ascii')}"


def convert_messages(messages: list[dict], image_part) -> list[dict]:
    """cotdistill chat messages with each image part replaced by ``image_part(path)`` (an engine's own form)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [
                image_part(p["image"]) if p["type"] == "image" else {"type": "text", "text": p["text"]}
                for p in content
            ]
        out.append({"role": m["role"], "content": content})
    return out


def openai_messages(messages: list[dict]) -> list[dict]:
    """cotdistill chat messages -> OpenAI chat format (image parts become ``image_url`` data URLs)."""
    return convert_messages(
        messages, lambda path: {"type": "image_url", "image_url": {"url": image_data_url(path)}}
    )
