"""A backend that calls no model and answers at once with a fixed text: measures pipeline overhead, and its
injected failures and outages drive the tests."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cotdistill.records import Usage
from cotdistill.settings import bounded

from .base import Backend, Generation, TeacherRequest, TeacherUnavailable


@dataclass
class EchoOptions:
    text: str | dict = "{}"  # a mapping is sent as its JSON
    delay: float = bounded(0.0, ge=0)  # seconds per batch
    fail_ids: list[str] = field(default_factory=list)  # example ids whose requests fail
    # example ids at which the teacher "goes down": the batch's requests before it come back, then
    # TeacherUnavailable is raised (drives the outage tests)
    unavailable_ids: list[str] = field(default_factory=list)


class EchoBackend(Backend):
    """Returns at once with a fixed text (option ``text``): measures pipeline overhead, drives tests."""

    name = "echo"
    Options = EchoOptions

    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        o: EchoOptions = self.opts
        text = o.text
        if not isinstance(text, str):  # e.g. a YAML mapping given where a JSON string was meant
            text = json.dumps(text, ensure_ascii=False)
        delay = o.delay
        if delay:
            time.sleep(delay)
        fail, down = set(o.fail_ids), set(o.unavailable_ids)
        gens = []
        for r in requests:
            if r.example_id in down:
                raise TeacherUnavailable(f"injected outage at example {r.example_id}", gens)
            usage = Usage(len(str(r.messages)) // 4, len(text) // 4, 0.0)
            gens.append(
                self.failed(r, "injected failure", usage)
                if r.example_id in fail
                else self.made(r, text, usage)
            )
        return gens
