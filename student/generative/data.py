"""The generative student's data: the instruction (a prompts/ template of kind student), images, chat
items for answer and rationale, featurising, packing and collating."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from cotdistill.images import open_image
from cotdistill.records import Example, RelationAnswer
from cotdistill.student.generative.config import (
    KINDS,
    PREFIX,
    GenerativeConfig,
    GenerativeConfigError,
)
from cotdistill.student.generative.model import (
    tokenizer_of,
)
from cotdistill.tasks import TaskSpec

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ the data


_LIBRARY = None


def instruction(kind: str, example: Example, config: GenerativeConfig, sees_image: bool) -> str:
    """The user turn, rendered from the student's instruction template (``config.instruction_template``,
    by default ``<task>.student`` in ``prompts/templates``): task prefix, what to do, the post, and the
    caption when the image is not seen."""
    global _LIBRARY
    from cotdistill.prompts.library import PromptLibrary

    if _LIBRARY is None:
        _LIBRARY = PromptLibrary()
    spec = TaskSpec(config.task, tuple(config.labels)) if config.labels else None
    rel = example.gold.relations[0] if isinstance(example.gold, RelationAnswer) else None
    caption = example.meta.get("caption")
    variables = {
        "prefix": PREFIX[kind],
        "mode": kind,
        "text": example.text,
        "labels": list(config.labels),
        "label_descriptions": spec.label_descriptions() if spec else {},
        "caption": caption if caption and config.use_caption and not sees_image else None,
        "head": rel.head.text if rel else None,
        "tail": rel.tail.text if rel else None,
    }
    return _LIBRARY.render_blocks(config.instruction_template, variables)["user"]


def answer_target(example: Example) -> str:
    from cotdistill.prompts.library import gold_answer_json

    return json.dumps(gold_answer_json(example), ensure_ascii=False)


def load_image(path: str | None, max_pixels: int):
    """The example's image as RGB, resized (aspect kept) to at most ``max_pixels``; None if unreadable."""
    if not path:
        return None
    from PIL import Image

    try:
        image = open_image(path)
    except OSError:  # unreadable, not a regular file, or over the size cap
        return None
    w, h = image.size
    if w * h > max_pixels:
        scale = math.sqrt(max_pixels / (w * h))
        image = image.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.BICUBIC)
    return image


@dataclass
class ChatItem:
    example: Example
    kind: str  # answer or rationale
    target: str | None  # None at prediction time


class GenerativeFeaturizer:
    """Chat items → token ids with response-only labels (and pixel values for a VLM)."""

    def __init__(self, config: GenerativeConfig, processor):
        self.config = config
        self.processor = processor
        self.tokenizer = tokenizer_of(processor)
        self.image_token_id = getattr(processor, "image_token_id", None)
        if self.image_token_id is None and getattr(processor, "image_token", None):
            self.image_token_id = self.tokenizer.convert_tokens_to_ids(processor.image_token)
        self.missing_images: set[str] = set()  # ids of examples whose image could not be read

    def messages(self, item: ChatItem):
        image = load_image(item.example.image, self.config.max_pixels) if self.config.vision else None
        if self.config.vision and item.example.image and image is None:
            self.missing_images.add(item.example.id)
        text = instruction(item.kind, item.example, self.config, sees_image=image is not None)
        if not self.config.vision:
            return [{"role": "user", "content": text}], None
        parts = [{"type": "image"}] if image is not None else []
        return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}], image

    def _template(self, messages, **kw) -> str:
        owner = self.processor if getattr(self.processor, "chat_template", None) else self.tokenizer
        return owner.apply_chat_template(messages, tokenize=False, **kw)

    def prompt(self, item: ChatItem) -> tuple[str, object]:
        messages, image = self.messages(item)
        return self._template(messages, add_generation_prompt=True), image

    def response_text(self, messages: list[dict], prompt: str, target: str) -> str:
        """The assistant turn exactly as the chat template writes it after ``prompt`` (end-of-turn tokens
        included)."""
        full = self._template([*messages, {"role": "assistant", "content": target}])
        if not full.startswith(prompt):
            return target + (self.tokenizer.eos_token or "")
        return full[len(prompt) :]

    def encode(self, item: ChatItem, with_pixels: bool = True) -> dict:
        messages, image = self.messages(item)  # the image is read once per encoding
        prompt = self._template(messages, add_generation_prompt=True)
        if image is not None:
            enc = self.processor(text=[prompt], images=[image], return_tensors="pt")
            prompt_ids = enc["input_ids"][0].tolist()
            extra = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
        else:
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            extra = {}
        image_tokens = (
            sum(t == self.image_token_id for t in prompt_ids) if self.image_token_id is not None else 0
        )
        response = (
            self.tokenizer(self.response_text(messages, prompt, item.target), add_special_tokens=False)[
                "input_ids"
            ]
            if item.target is not None
            else []
        )
        out = {
            "input_ids": prompt_ids + response,
            "labels": [-100] * len(prompt_ids) + response,
            "kind": KINDS.index(item.kind),
            "prompt_length": len(prompt_ids),
            "image_tokens": image_tokens,
            "id": item.example.id,
            "per_token": {},  # processor outputs with one value per token (e.g. mm_token_type_ids)
        }
        if with_pixels:
            for k, v in extra.items():
                if v.dim() == 2 and v.shape == (1, len(prompt_ids)):
                    out["per_token"][k] = v[0].tolist() + [0] * len(response)
                else:
                    out[k] = v
        return out


def chat_items(
    examples: Sequence[Example], rationales: dict[str, str] | None, alpha: float
) -> list[ChatItem]:
    """The answer task for every example (unless alpha is 0) and the rationale task where there is one."""
    items = []
    for ex in examples:
        if alpha > 0:
            items.append(ChatItem(ex, "answer", answer_target(ex)))
        text = (rationales or {}).get(ex.id)
        if text and alpha < 1:
            items.append(ChatItem(ex, "rationale", text))
    return items


class GenerativeDataset(torch.utils.data.Dataset):
    """Chat items, checked for length before training. Text-only items are kept encoded; VLM items are
    encoded (with their image) in ``__getitem__``, so dataloader workers overlap preprocessing with the GPU."""

    def __init__(self, featurizer: GenerativeFeaturizer, items: Sequence[ChatItem]):
        self.featurizer = featurizer
        self.items = list(items)
        cfg = featurizer.config
        self.encoded: list[dict] = []
        too_long, cut = [], 0
        for item in tqdm(self.items, desc="chat examples", unit="ex", disable=len(self.items) < 2000):
            enc = featurizer.encode(item, with_pixels=False)
            n = len(enc["input_ids"])
            if n > cfg.max_length:
                if enc["prompt_length"] < cfg.max_length - 8 and item.kind == "rationale":
                    keep = cfg.max_length
                    enc["input_ids"], enc["labels"] = enc["input_ids"][:keep], enc["labels"][:keep]
                    cut += 1  # only a rationale's tail is cut; never the prompt, never an image
                else:
                    too_long.append((item.example.id, item.kind, n, enc["image_tokens"]))
            self.encoded.append(enc)
        if too_long:
            first = ", ".join(
                f"{i} ({k}: {n} tokens, {img} of them image tokens)" for i, k, n, img in too_long[:5]
            )
            raise GenerativeConfigError(
                f"{len(too_long)} chat examples exceed max_length={cfg.max_length}: {first}; raise max_length or lower "
                f"max_pixels (now {cfg.max_pixels}) — images are never cut"
            )
        if cut:
            logger.warning("%d rationales were cut to fit max_length=%d", cut, cfg.max_length)
        if featurizer.missing_images:
            logger.warning(
                "%d images could not be read; those examples use the caption", len(featurizer.missing_images)
            )
        self.vision = bool(cfg.vision)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        if not self.vision:
            return self.encoded[i]
        enc = self.featurizer.encode(self.items[i])
        keep = len(self.encoded[i]["input_ids"])
        enc["input_ids"], enc["labels"] = enc["input_ids"][:keep], enc["labels"][:keep]
        enc["per_token"] = {k: v[:keep] for k, v in enc["per_token"].items()}
        return enc


def pack(encoded: Sequence[dict], max_length: int) -> list[list[dict]]:
    """Greedy first-fit packing of encoded examples into rows of at most ``max_length`` tokens."""
    rows: list[list[dict]] = []
    room: list[int] = []
    for enc in sorted(encoded, key=lambda e: -len(e["input_ids"])):
        n = len(enc["input_ids"])
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(enc)
                room[r] -= n
                break
        else:
            rows.append([enc])
            room.append(max_length - n)
    return rows


class PackedDataset(torch.utils.data.Dataset):
    def __init__(self, dataset: GenerativeDataset, max_length: int):
        self.rows = pack(dataset.encoded, max_length)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> list[dict]:
        return self.rows[i]


def collate(features: list, pad_id: int) -> dict:
    """Right-padded batch. A feature that is a list of encoded examples is one packed row: position ids
    restart per example and no attention mask is returned. ``seq_ids`` numbers each token's example within
    the batch (-1 for padding), ``seq_kind`` gives each example's task (0 answer, 1 rationale)."""
    packed = isinstance(features[0], list)
    rows = features if packed else [[f] for f in features]
    width = max(sum(len(e["input_ids"]) for e in row) for row in rows)
    B = len(rows)
    input_ids = torch.full((B, width), pad_id, dtype=torch.long)
    labels = torch.full((B, width), -100, dtype=torch.long)
    seq_ids = torch.full((B, width), -1, dtype=torch.long)
    position_ids = torch.zeros((B, width), dtype=torch.long)
    attention = torch.zeros((B, width), dtype=torch.long)
    kinds = []
    extras: dict[str, list] = {}
    per_token: dict[str, torch.Tensor] = {}
    for b, row in enumerate(rows):
        pos = 0
        for enc in row:
            n = len(enc["input_ids"])
            input_ids[b, pos : pos + n] = torch.tensor(enc["input_ids"])
            labels[b, pos : pos + n] = torch.tensor(enc["labels"])
            seq_ids[b, pos : pos + n] = len(kinds)
            position_ids[b, pos : pos + n] = torch.arange(n)
            attention[b, pos : pos + n] = 1
            kinds.append(enc["kind"])
            for k, v in enc.get("per_token", {}).items():
                if k not in per_token:
                    per_token[k] = torch.zeros((B, width), dtype=torch.long)
                per_token[k][b, pos : pos + n] = torch.tensor(v)
            for k, v in enc.items():
                if isinstance(v, torch.Tensor):
                    extras.setdefault(k, []).append(v)
            pos += n
        position_ids[b, pos:] = torch.arange(width - pos)  # padding: its own (masked-out) sequence
    batch = {
        "input_ids": input_ids,
        "labels": labels,
        "seq_ids": seq_ids,
        "seq_kind": torch.tensor(kinds, dtype=torch.long),
    }
    if packed:
        batch["position_ids"] = position_ids
    else:
        batch["attention_mask"] = attention
    for k, vs in extras.items():
        batch[k] = torch.cat(vs, dim=0)
    batch.update(per_token)
    return batch
