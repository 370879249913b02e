"""What every teacher backend shares: the request and result records, the ``Backend`` base class, the
errors a backend raises, and the conversion of cotdistill chat messages into an engine's own form."""

from __future__ import annotations

import abc
import base64
import mimetypes
from collections.abc import Callable, Sequence
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
    """What came back for one request: text and usage, or an error (never both empty). Built by keyword.

    ``transient`` marks an error that is the teacher's, not the request's (HTTP 429 or 5xx after every
    retry, a response cut short or unreadable): a failed request, not an answer. The runner makes it again
    on every rerun, and the generate stage is not done while one stands. ``usage_anomaly`` says why the
    server's token counts were not believed (they are then stored as 0, so no sum includes them).
    """

    key: str
    example_id: str
    template: str
    sample: int
    text: str | None
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    model: str = ""
    transient: bool = False
    usage_anomaly: str | None = None

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
            "transient": self.transient,
            "usage_anomaly": self.usage_anomaly,
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
            transient=obj.get("transient") is True,
            usage_anomaly=obj.get("usage_anomaly"),
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
    secrets: tuple[str, ...] = ()  # set by load(): strings never stored (an API key a server may echo)

    def __init__(self, model: str, **options):
        self.model = model
        self.options = options
        self.opts = backend_options(self.Options, options) if self.Options is not None else None

    def load(self) -> None:  # noqa: B027 (optional hook)
        """Load weights or open connections; called once before the first batch."""

    def failed(
        self, r: TeacherRequest, error: str, usage: Usage | None = None, *, transient: bool = False
    ) -> Generation:
        """The stored result of a request that could not be made: its own fault (an unreadable image, a
        request the server rejects), or with ``transient`` the teacher's (a failed request, made again by
        the next run)."""
        return Generation(
            key=r.key,
            example_id=r.example_id,
            template=r.template,
            sample=r.sample,
            text=None,
            usage=usage or Usage(),
            error=self.scrub(error),
            model=self.model,
            transient=transient,
        )

    def made(self, r: TeacherRequest, text: str, usage: Usage) -> Generation:
        """The stored result of a request that succeeded; token counts that cannot be true are stored as 0
        with the reason (``usage_anomaly``)."""
        anomaly = usage_anomaly(usage, r.sampling.max_tokens)
        return Generation(
            key=r.key,
            example_id=r.example_id,
            template=r.template,
            sample=r.sample,
            text=self.scrub(text),
            usage=Usage(seconds=usage.seconds) if anomaly else usage,
            error=None,
            model=self.model,
            usage_anomaly=anomaly,
        )

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this backend replaced by ``[api key removed]``: what a server says
        back is stored, and a server may repeat the key it was sent."""
        for secret in self.secrets:
            if secret and isinstance(text, str):
                text = text.replace(secret, REMOVED)
        return text

    def ensure_loaded(self) -> None:
        """``load()`` the first time only: one backend serves every split of a run."""
        if not getattr(self, "_loaded", False):
            self.load()
            self._loaded = True

    def generate_each(
        self, requests: Sequence[TeacherRequest], store: Callable[[list[Generation]], None]
    ) -> None:
        """Hand every request's generation to ``store`` once, as soon as it is made, so that a run killed
        half way keeps every answer that came back. The default hands over the whole batch at its end; a
        backend whose answers arrive one by one (a server) overrides it."""
        store(self.generate(requests))

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


REMOVED = "[api key removed]"
MAX_PROMPT_TOKENS = 10_000_000  # ten times the longest context served today: more is a miscount
MAX_COMPLETION_FACTOR = 100  # a completion past 100 × max_tokens is a miscount, not text the model wrote


def usage_anomaly(usage: Usage, max_tokens: int | None = None) -> str | None:
    """Why a server's token counts cannot be true (None when they can): a count that is not a whole number
    ≥ 0, a prompt longer than any context, or a completion far past ``max_tokens``."""
    for name in ("prompt_tokens", "completion_tokens"):
        value = getattr(usage, name)
        if type(value) is not int:
            return f"{name}={one_line(repr(value), 40)} is not a whole number"
        if value < 0:
            return f"{name}={value} is negative"
    if usage.prompt_tokens > MAX_PROMPT_TOKENS:
        return f"prompt_tokens={usage.prompt_tokens:,} is more than any context ({MAX_PROMPT_TOKENS:,})"
    if max_tokens is not None and usage.completion_tokens > MAX_COMPLETION_FACTOR * max_tokens:
        return (
            f"completion_tokens={usage.completion_tokens:,} is more than {MAX_COMPLETION_FACTOR} × "
            f"max_tokens ({max_tokens})"
        )
    return None


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
    """cotdistill chat messages -> OpenAI chat format (image parts become ``image_url`` data URLs). A turn of
    text parts alone is sent as one string: the same to the server, and the client walks a string in one step
    where it checks every part of a list against its types (a large share of its time per request)."""
    out = convert_messages(
        messages, lambda path: {"type": "image_url", "image_url": {"url": image_data_url(path)}}
    )
    for m in out:
        if isinstance(m["content"], list) and all(p["type"] == "text" for p in m["content"]):
            m["content"] = "".join(p["text"] for p in m["content"])
    return out
