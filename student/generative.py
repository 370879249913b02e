"""Generative students: a small vision-language model (or a text LM reading captions) tuned with LoRA/QLoRA.

Distilling step by step: every training example gives up to two chat examples on the same input, told apart
by an instruction prefix — ``[answer]`` (the gold answer as JSON in the task's schema) and ``[rationale]``
(the teacher's kept CoT knowledge). One loss combines them, ``alpha * answer + (1 - alpha) * rationale``;
at test time only the answer is generated, greedily, and parsed with the task's parser.

The loss covers response tokens only: prompt, image and padding tokens are masked. Hidden states are
projected to the vocabulary only at response positions, so full-sequence logits are never materialised.
Images are resized under ``max_pixels``; an example whose image tokens plus text exceed ``max_length`` is an
error before training starts (an image is never cut). Text-only students can pack several examples into one
row: position ids restart per example and no attention mask is passed, so attention stays within each
example (transformers' packed-sequence masking).

LoRA goes on the language model's linear layers only, named in full (a VLM's vision tower may reuse the
names ``gate_proj``/``up_proj``/``down_proj``); ``lm_head`` and the vision tower are never adapted and, under
QLoRA (4-bit NF4, double quantization, bf16 compute), never quantized.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cotdistill.errors import PathExistsError
from cotdistill.models import from_pretrained
from cotdistill.parsing import parse_answer
from cotdistill.records import Example, Prediction, RelationAnswer, Usage
from cotdistill.student import StudentConfigError, read_student_config, save_student_config
from cotdistill.student.train import TrainingLoopConfig, training_arguments
from cotdistill.tasks import TASK_PLUGINS, TaskSpec

logger = logging.getLogger(__name__)

KINDS = ("answer", "rationale")
PREFIX = {"answer": "[answer]", "rationale": "[rationale]"}
QUANTIZATION = ("none", "4bit")


class GenerativeConfigError(StudentConfigError):
    """A generative-student setting or input that cannot work; the message names it and the fix."""


@dataclass
class GenerativeConfig:
    """What a generative student is and reads. Training-loop settings live in ``GenerativeTrainingConfig``."""

    model: str
    task: str = "mner"
    labels: list[str] = field(default_factory=list)
    vision: bool | None = None  # None: from the model's config (a vision_config means a VLM)
    use_caption: bool = True  # the caption stands in for a missing image (always, for a text LM)
    alpha: float = 0.5  # weight of the answer task; the rationale task gets 1 - alpha
    max_length: int = 1024
    max_pixels: int = 448 * 448
    max_new_tokens: int = 256
    packing: bool = False  # text-only students: several examples per row
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=list)  # empty: every LM linear layer, by full name
    quantization: str = "none"  # none or 4bit (QLoRA: NF4, double quantization, bf16 compute)
    trust_remote_code: bool = False
    instruction_template: str = ""  # a prompts/ template of kind student; set to <task>.student when empty

    def __post_init__(self) -> None:
        if self.task not in TASK_PLUGINS:
            raise GenerativeConfigError(f"task={self.task!r}; expected one of {', '.join(TASK_PLUGINS)}")
        if not self.instruction_template:
            self.instruction_template = f"{self.task}.student"
        if not 0.0 <= self.alpha <= 1.0:
            raise GenerativeConfigError(f"alpha={self.alpha}: the answer weight must lie in [0, 1]")
        if self.quantization not in QUANTIZATION:
            raise GenerativeConfigError(
                f"quantization={self.quantization!r}; expected one of {', '.join(QUANTIZATION)}"
            )
        if self.quantization == "4bit" and self.lora_r <= 0:
            raise GenerativeConfigError("a 4-bit base model trains only through adapters: set lora_r > 0")
        if self.max_length < 32:
            raise GenerativeConfigError(f"max_length={self.max_length} is too small; use 512 or more")
        if self.max_pixels < 28 * 28:
            raise GenerativeConfigError(f"max_pixels={self.max_pixels} is below one 28×28 patch")
        if self.packing and self.vision:
            raise GenerativeConfigError("packing is for text-only students; set packing=false for a VLM")


@dataclass
class GenerativeTrainingConfig(TrainingLoopConfig):
    """The generative student's training loop: ``TrainingLoopConfig`` with LLM fine-tuning defaults, plus
    activation checkpointing and how many dev examples to generate after each epoch."""

    epochs: float = 3.0
    learning_rate: float = 2e-4
    batch_size: int = 8
    eval_batch_size: int = 16
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    logging_steps: int = 10
    gradient_checkpointing: bool = False
    eval_examples: int = 0  # dev examples generated each epoch (0: all)


# ------------------------------------------------------------------------------------- model loading


def is_vision_model(model_id: str, trust_remote_code: bool = False) -> bool:
    from transformers import AutoConfig

    cfg = from_pretrained(AutoConfig, model_id, trust_remote_code=trust_remote_code)
    return getattr(cfg, "vision_config", None) is not None


def _resolve_vision(config: GenerativeConfig) -> GenerativeConfig:
    if config.vision is None:
        config.vision = is_vision_model(config.model, config.trust_remote_code)
        config.__post_init__()
    return config


def _model_class(vision: bool):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return AutoModelForImageTextToText if vision else AutoModelForCausalLM


def language_model(model: nn.Module) -> nn.Module:
    """The decoder stack of a causal LM or VLM (transformers' ``get_decoder``), through a PEFT wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    if decoder is None:
        raise GenerativeConfigError(f"{type(base).__name__} does not say which part is its language model")
    return decoder


def lora_target_modules(model: nn.Module) -> list[str]:
    """Full names of every linear layer in the language model: never the vision tower, never lm_head."""
    decoder = language_model(model)
    inside = {id(m) for m in decoder.modules()}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and id(m) in inside and m is not head
    ]
    if not names:
        raise GenerativeConfigError(f"no linear layers found in the language model of {type(model).__name__}")
    return names


def unquantized_modules(model: nn.Module) -> list[str]:
    """Full names of what 4-bit loading must leave alone: every top-level part of the model that is not the
    language model (the vision tower, the projector) and the output head."""
    decoder = language_model(model)
    inside = {id(m) for m in decoder.modules()}
    keep: list[str] = []
    for name, m in model.named_modules():
        if not name or id(m) in inside or any(name.startswith(k + ".") for k in keep):
            continue
        has_decoder = any(id(sub) in inside for sub in m.modules())
        has_params = any(True for _ in m.parameters(recurse=True))
        if not has_decoder and has_params:
            keep.append(name)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_names = [n for n, m in model.named_modules() if m is head]
    return sorted(set(keep) | set(head_names or ["lm_head"]))


def quantization_config(config: GenerativeConfig, model: nn.Module | None = None):
    """The ``BitsAndBytesConfig`` for QLoRA (None without quantization). ``model`` may be a meta-device
    instance; without one it is built on the meta device from the model's config (no weights load)."""
    if config.quantization == "none":
        return None
    from transformers import AutoConfig, BitsAndBytesConfig

    if model is None:
        cfg = from_pretrained(AutoConfig, config.model, trust_remote_code=config.trust_remote_code)
        with torch.device("meta"):
            model = _model_class(bool(config.vision)).from_config(
                cfg, trust_remote_code=config.trust_remote_code
            )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        llm_int8_skip_modules=unquantized_modules(model),
    )


def check_quantization_runtime() -> None:
    """QLoRA needs bitsandbytes and a CUDA GPU; say so before anything loads."""
    from cotdistill.optional import require

    require("bitsandbytes", "QLoRA (student.quantization=4bit)")
    if not torch.cuda.is_available():
        raise GenerativeConfigError(
            "QLoRA (quantization=4bit) needs a CUDA GPU; set quantization=none on CPU"
        )


def load_base_model(config: GenerativeConfig, bf16: bool = False) -> nn.Module:
    """The base model by id or local path, in bf16 when asked, 4-bit when ``quantization=4bit``."""
    config = _resolve_vision(config)
    kwargs: dict = {"trust_remote_code": config.trust_remote_code}
    if bf16 or config.quantization == "4bit":
        kwargs["dtype"] = torch.bfloat16
    if config.quantization == "4bit":
        check_quantization_runtime()
        kwargs["quantization_config"] = quantization_config(config)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = from_pretrained(_model_class(bool(config.vision)), config.model, **kwargs)
    if config.quantization == "4bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model


def add_lora(model: nn.Module, config: GenerativeConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    targets = config.lora_target_modules or lora_target_modules(model)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def load_processor(config: GenerativeConfig, path: str | None = None):
    """AutoProcessor for a VLM, AutoTokenizer for a text LM; padding on the left for generation."""
    from transformers import AutoProcessor, AutoTokenizer

    config = _resolve_vision(config)
    src = path or config.model
    cls = AutoProcessor if config.vision else AutoTokenizer
    processor = from_pretrained(cls, src, trust_remote_code=config.trust_remote_code)
    tok = tokenizer_of(processor)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None and getattr(processor, "chat_template", None) is None:
        raise GenerativeConfigError(f"{src} has no chat template; use an instruction-tuned model")
    return processor


def tokenizer_of(processor):
    return getattr(processor, "tokenizer", processor)


# ------------------------------------------------------------------------------------------ the data


_LIBRARY = None


def instruction(kind: str, example: Example, config: GenerativeConfig, sees_image: bool) -> str:
    """The user turn, rendered from the student's instruction template (``config.instruction_template``,
    by default ``<task>.student`` in ``prompts/templates``): task prefix, what to do, the post, and the
    caption when the image is not seen."""
    global _LIBRARY
    from cotdistill.prompts.library import PromptLibrary
    from cotdistill.tasks import TaskSpec

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
        with Image.open(path) as im:
            image = im.convert("RGB")
    except OSError:
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


# ------------------------------------------------------------------------------------------ the loss


def _unwrapped(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def response_logits(model: nn.Module, inputs: dict, positions: torch.Tensor) -> torch.Tensor:
    """Logits only at ``positions`` (a [B, L] bool mask): the body's hidden states there, through lm_head.
    Falls back to the full forward pass for a model without the usual ``.model`` / output head split."""
    hf = _unwrapped(model)
    body = getattr(hf, "model", None)
    head = hf.get_output_embeddings() if hasattr(hf, "get_output_embeddings") else None
    if body is None or head is None:
        return model(**inputs, use_cache=False).logits[positions].float()
    hidden = body(**inputs, use_cache=False).last_hidden_state
    return head(hidden[positions]).float()


def distill_loss(model: nn.Module, batch: dict, alpha: float) -> tuple[torch.Tensor, dict]:
    """``alpha * answer + (1 - alpha) * rationale``: each task's loss is the mean over its examples of the
    mean token loss on the example's response. A task absent from the batch adds nothing, and the weights
    present are renormalised, so a batch that happens to hold one task keeps the loss's scale."""
    batch = dict(batch)
    labels = batch.pop("labels")
    seq_ids = batch.pop("seq_ids")
    kinds = batch.pop("seq_kind")
    target = labels[:, 1:]
    positions = torch.zeros_like(labels, dtype=torch.bool)
    positions[:, :-1] = target != -100
    logits = response_logits(model, batch, positions)
    tok_loss = F.cross_entropy(logits, labels[:, 1:][target != -100], reduction="none")
    sid = seq_ids[:, 1:][target != -100]
    S = kinds.numel()
    sums = torch.zeros(S, device=tok_loss.device, dtype=tok_loss.dtype).index_add(0, sid, tok_loss)
    counts = torch.bincount(sid, minlength=S).to(tok_loss.dtype)
    per_seq = sums / counts.clamp(min=1)
    kinds = kinds.to(tok_loss.device)
    loss = tok_loss.new_zeros(())
    weight = 0.0
    parts = {}
    for k, name in enumerate(KINDS):
        mask = (kinds == k) & (counts > 0)
        w = alpha if name == "answer" else 1 - alpha
        if mask.any() and w > 0:
            part = per_seq[mask].mean()
            parts[name] = part.detach()
            loss = loss + w * part
            weight += w
    return loss / max(weight, 1e-12), parts


# ----------------------------------------------------------------------------------------- predict


@torch.no_grad()
def predict_generative(
    model: nn.Module,
    processor,
    config: GenerativeConfig,
    examples: Sequence[Example],
    *,
    batch_size: int = 16,
    source: str = "student:generative",
    progress: bool = True,
) -> list[Prediction]:
    """Greedy answers in left-padded batches (longest first), parsed into Prediction records."""
    featurizer = GenerativeFeaturizer(config, processor)
    tok = featurizer.tokenizer
    spec_none = next((lab for lab in config.labels if lab.lower() == "none"), None)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].text))
    out: list[Prediction | None] = [None] * len(examples)
    side = tok.padding_side
    tok.padding_side = "left"
    try:
        for start in tqdm(
            range(0, len(order), batch_size), desc="generate (student)", unit="batch", disable=not progress
        ):
            idx = order[start : start + batch_size]
            t0 = time.perf_counter()
            prompts, images = [], []
            for i in idx:
                p, img = featurizer.prompt(ChatItem(examples[i], "answer", None))
                prompts.append(p)
                if img is not None:
                    images.append(img)
            if images:
                enc = processor(text=prompts, images=images, padding=True, return_tensors="pt")
            else:
                enc = tok(prompts, padding=True, add_special_tokens=False, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items()}
            gen = model.generate(
                **enc,
                max_new_tokens=config.max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
            new = gen[:, enc["input_ids"].shape[1] :]
            seconds = (time.perf_counter() - t0) / len(idx)
            for row, i in enumerate(idx):
                ids = new[row].tolist()
                stop = [tok.eos_token_id, tok.pad_token_id]
                n = next((k for k, t in enumerate(ids) if t in stop), len(ids))
                text = tok.decode(ids[:n], skip_special_tokens=True)
                ex = examples[i]
                answer, rationale, error = parse_answer(config.task, text, ex, config.labels, spec_none)
                prompt_tokens = int(enc["attention_mask"][row].sum())
                out[i] = Prediction(
                    ex.id,
                    source,
                    answer,
                    raw=text,
                    rationale=rationale,
                    parse_error=error,
                    usage=Usage(prompt_tokens, n, seconds),
                )
    finally:
        tok.padding_side = side
        model.train(was_training)
    return [p for p in out if p is not None]


# ------------------------------------------------------------------------------------------- train


def _trainer_class():
    from transformers import Trainer

    from cotdistill.eval.scoring import score_answers

    class GenerativeTrainer(Trainer):
        """Trainer whose loss is distilling step by step and whose evaluation generates dev answers and
        scores them with the task metric."""

        def __init__(self, *args, gen_config=None, processor=None, dev_examples=(), eval_examples=0, **kw):
            super().__init__(*args, **kw)
            # distill_loss is a mean, not a sum over num_items_in_batch: let the Trainer divide it by the
            # gradient accumulation steps
            self.model_accepts_loss_kwargs = False
            if hasattr(self, "loss_is_scaled_for_ga"):
                self.loss_is_scaled_for_ga = False
            self.gen_config = gen_config
            self.processor = processor
            self.dev_examples = list(dev_examples)[: eval_examples or None]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, parts = distill_loss(model, inputs, self.gen_config.alpha)
            return (loss, parts) if return_outputs else loss

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict:
            model = self.accelerator.unwrap_model(self.model)
            preds = predict_generative(
                model,
                self.processor,
                self.gen_config,
                self.dev_examples,
                batch_size=self.args.per_device_eval_batch_size,
                progress=False,
            )
            by_id = {p.id: p.answer for p in preds}
            scores = score_answers(
                self.gen_config.task,
                [ex.gold for ex in self.dev_examples],
                [by_id.get(ex.id) for ex in self.dev_examples],
            )
            metrics = {f"{metric_key_prefix}_{k}": scores[k] for k in ("precision", "recall", "f1")}
            metrics[f"{metric_key_prefix}_parse_failures"] = sum(p.answer is None for p in preds)
            metrics["epoch"] = self.state.epoch
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            model.train()
            return metrics

    return GenerativeTrainer


def _labels_from(task: str, examples: Sequence[Example]) -> list[str]:
    return list(TaskSpec.from_examples(task, list(examples)).labels)


def train_generative(
    config: GenerativeConfig,
    training: GenerativeTrainingConfig,
    train_examples: Sequence[Example],
    dev_examples: Sequence[Example],
    rationales: dict[str, str] | None = None,
    model: nn.Module | None = None,
    processor=None,
):
    """Train a generative student; returns (best model by dev F1, processor, log history). The adapter,
    processor and ``cotdistill_student.json`` go to ``<output_dir>/best``."""
    from transformers import set_seed

    if not config.labels:
        config.labels = _labels_from(config.task, train_examples)
    config = _resolve_vision(config)
    set_seed(training.seed)
    processor = processor if processor is not None else load_processor(config)
    if model is None:
        model = load_base_model(config, bf16=training.bf16)
    if config.lora_r > 0 and not hasattr(model, "peft_config"):
        model = add_lora(model, config)
    if training.gradient_checkpointing:
        _unwrapped(model).gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
        model.enable_input_require_grads()  # LoRA inputs need grads through checkpointed blocks
    featurizer = GenerativeFeaturizer(config, processor)
    dataset = GenerativeDataset(featurizer, chat_items(train_examples, rationales, config.alpha))
    train_ds = PackedDataset(dataset, config.max_length) if config.packing else dataset
    pad = tokenizer_of(processor).pad_token_id
    args = training_arguments(training)
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=list(dev_examples),  # scored by GenerativeTrainer.evaluate with the task metric
        data_collator=lambda feats: collate(feats, pad),
        gen_config=config,
        processor=processor,
        dev_examples=dev_examples,
        eval_examples=training.eval_examples,
    )
    trainer.train(resume_from_checkpoint=training.resume_from_checkpoint)
    out = Path(training.output_dir) / "best"
    trainer.save_model(str(out))
    processor.save_pretrained(str(out))
    save_config(config, out)
    (out / "training_config.json").write_text(json.dumps(asdict(training), indent=2) + "\n")
    return trainer.model, processor, trainer.state.log_history


def save_config(config: GenerativeConfig, out_dir: str | Path) -> None:
    save_student_config("generative", config, out_dir)


def _read_config(path: Path) -> GenerativeConfig:
    return GenerativeConfig(**read_student_config(path, "generative")[1])


def load_generative_student(path: str | Path, device: str | torch.device | None = None, bf16: bool = False):
    """(model, processor, config) from a ``best/`` (or merged) folder: the base model from ``config.model``
    plus the saved adapter, or the merged weights themselves."""
    path = Path(path)
    config = _read_config(path)
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_base_model(config, bf16=bf16), str(path))
    else:
        model = _model_class(bool(config.vision)).from_pretrained(
            str(path),
            trust_remote_code=config.trust_remote_code,
            **({"dtype": torch.bfloat16} if bf16 else {}),
        )
    processor = load_processor(config, str(path))
    if device is None:
        device = "cuda" if torch.cuda.is_available() and config.quantization == "none" else None
    if device is not None:
        model = model.to(device)
    return model.eval(), processor, config


def merge_student(path: str | Path, out_dir: str | Path) -> Path:
    """Fold the LoRA adapter into the base weights and save a plain model (plus processor and config) that
    loads without peft, e.g. for ``vllm serve``."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise PathExistsError(f"{out} is not empty; choose a new folder for the merged model")
    model, processor, config = load_generative_student(path, device="cpu")
    if config.quantization != "none":
        raise GenerativeConfigError(
            "merge a QLoRA adapter into a bf16 copy of the base model, not the 4-bit one"
        )
    if not hasattr(model, "merge_and_unload"):
        raise GenerativeConfigError(f"{path} holds no adapter to merge")
    merged = model.merge_and_unload()
    merged.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    config.model = str(out)
    save_config(config, out)
    return out


__all__ = [
    "GenerativeConfig",
    "GenerativeConfigError",
    "GenerativeTrainingConfig",
    "add_lora",
    "collate",
    "distill_loss",
    "load_generative_student",
    "lora_target_modules",
    "merge_student",
    "pack",
    "predict_generative",
    "quantization_config",
    "train_generative",
    "unquantized_modules",
]
