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

from cotdistill.student.generative.config import (
    KINDS,
    PREFIX,
    QUANTIZATION,
    GenerativeConfig,
    GenerativeConfigError,
    GenerativeTrainingConfig,
)
from cotdistill.student.generative.data import (
    ChatItem,
    GenerativeDataset,
    GenerativeFeaturizer,
    PackedDataset,
    answer_target,
    chat_items,
    collate,
    instruction,
    load_image,
    pack,
)
from cotdistill.student.generative.loss import distill_loss, response_logits
from cotdistill.student.generative.model import (
    add_lora,
    check_quantization_runtime,
    is_vision_model,
    language_model,
    load_base_model,
    load_generative_student,
    load_processor,
    lora_target_modules,
    merge_student,
    quantization_config,
    save_config,
    tokenizer_of,
    unquantized_modules,
)
from cotdistill.student.generative.predict import predict_generative
from cotdistill.student.generative.train import GenerativeTrainer, train_generative

__all__ = [
    "KINDS",
    "PREFIX",
    "QUANTIZATION",
    "ChatItem",
    "GenerativeConfig",
    "GenerativeConfigError",
    "GenerativeDataset",
    "GenerativeFeaturizer",
    "GenerativeTrainer",
    "GenerativeTrainingConfig",
    "PackedDataset",
    "add_lora",
    "answer_target",
    "chat_items",
    "check_quantization_runtime",
    "collate",
    "distill_loss",
    "instruction",
    "is_vision_model",
    "language_model",
    "load_base_model",
    "load_generative_student",
    "load_image",
    "load_processor",
    "lora_target_modules",
    "merge_student",
    "pack",
    "predict_generative",
    "quantization_config",
    "response_logits",
    "save_config",
    "tokenizer_of",
    "train_generative",
    "unquantized_modules",
]
