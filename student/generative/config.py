"""The generative student's settings: what it is (``GenerativeConfig``) and how it trains."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cotdistill.student import StudentConfigError
from cotdistill.student.train import TrainingLoopConfig
from cotdistill.tasks import TASK_PLUGINS

logger = logging.getLogger(__name__)

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
