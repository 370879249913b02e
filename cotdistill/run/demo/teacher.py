"""The demo's teacher, taught for a few seconds: the tiny LLaVA learns to answer the smoke config's prompts
on synthetic posts of its own (drawn with another seed than the run's), so its rationales are readable words
and some of its answers are right. It is still a toy that has seen a few hundred posts of eight patterns: what it writes
shows the pipeline's files, not what a real teacher knows."""

from __future__ import annotations

import json
import logging
import random
import time

from cotdistill.distill.backends import TeacherRequest
from cotdistill.distill.runner import make_request
from cotdistill.records import Example
from cotdistill.run.context import RunContext
from cotdistill.run.stages.teacher import sampling as teacher_sampling

logger = logging.getLogger(__name__)

KINDS = {"PER": "a person", "LOC": "a place", "ORG": "an organisation", "OTHER": "an event or a thing"}


def entities(example: Example) -> list[tuple[str, str]]:
    """(text, type) of the post's gold entities, in the order they appear."""
    return [(e.text, e.type) for e in example.gold.entities]


def target(template: str, example: Example, caption: str | None) -> str:
    """What the demo teacher is taught to answer to one of the smoke config's templates."""
    found = entities(example)
    if not found:
        grains = "No name in this post needs explaining."
    else:
        grains = " ".join(f"{text} is {KINDS[kind]}." for text, kind in found)
    if template == "mner.noun":
        return grains
    if template == "mner.sentence":
        names = " and ".join(text for text, _ in found) or "an everyday moment"
        return f"The post is about {names}."
    if template == "mner.multimodal":
        picture = caption or "some coloured shapes"
        first = found[0][0] if found else "nothing in the text"
        return f"The image shows {picture}, which goes with {first}."
    answer = {"entities": [{"text": text, "type": kind} for text, kind in found]}
    return f"{grains}\n{json.dumps(answer)}"


def lessons(ctx: RunContext) -> list[tuple[TeacherRequest, str]]:
    """Each (request, answer to teach) for every training post of ``ctx`` and template of its config."""
    spec, library, t = ctx.spec(["train"]), ctx.library, ctx.config.teacher
    templates = [library.get(n) for n in t.templates]
    params = teacher_sampling(ctx)
    return [
        (
            make_request(library, spec, "lesson", ex, template, 0, params, sees_images=t.sees_images),
            target(template.name, ex, ex.meta.get("caption")),
        )
        for ex in ctx.split("train").examples
        for template in templates
    ]


def lesson_text(lessons: list[tuple[TeacherRequest, str]]) -> list[str]:
    """The words of the lessons, prompts and answers: what the tiny tokenizer is trained on."""
    texts = []
    for request, answer in lessons:
        for m in request.messages:
            content = m["content"]
            parts = [content] if isinstance(content, str) else [p.get("text", "") for p in content]
            texts += [p for p in parts if p]
        texts.append(answer)
    return texts


def teach(backend, lessons, steps: int = 300, batch_size: int = 16, seed: int = 0) -> dict:
    """Teach a loaded transformers-backend teacher the lessons; returns the loss before and after and the
    seconds taken."""
    import torch
    from tqdm.auto import trange

    model, processor, tok = backend.lm, backend.processor, backend.tokenizer
    items = []  # (prompt, images, answer, prompt tokens with the image placeholders expanded): once per lesson
    for request, answer in lessons:
        prompt, images = backend._prepare(request)
        length = len(processor(text=[prompt], images=images or None)["input_ids"][0])
        items.append((prompt, images, answer, length))
    tok.padding_side = "right"
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small runs slower on more threads
    torch.manual_seed(seed)
    rng = random.Random(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    start, losses = time.perf_counter(), []
    for _ in trange(steps, desc="teach the demo teacher", unit="step"):
        batch = rng.sample(items, batch_size)
        full = [p + a + tok.eos_token for p, _, a, _ in batch]
        images = [im for _, ims, _, _ in batch for im in ims]
        inputs = processor(text=full, images=images or None, padding=True, return_tensors="pt")
        labels = inputs["input_ids"].clone()
        labels[inputs["attention_mask"] == 0] = -100
        for row, (_, _, _, n) in enumerate(batch):  # the loss is on the answer alone
            labels[row, :n] = -100
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        losses.append(loss.item())
    model.eval()
    tok.padding_side = "left"
    torch.set_num_threads(threads)
    return {
        "loss_first": losses[0],
        "loss_last": sum(losses[-10:]) / 10,
        "seconds": time.perf_counter() - start,
    }
