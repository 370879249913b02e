"""What each student is and how it trains, as plain dataclasses (no torch here): one place for every default.

Each student has its settings (what a user chooses: ``EncoderSettings``, ``GenerativeSettings`` and the
training loop's ``*TrainingSettings``) and its config (the settings plus what the run fills in from the data:
the model, the task, the labels, the output folder). The run config's ``student`` section is the chosen kind's
two settings classes together (``cotdistill.run.config``), so every default is declared here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cotdistill.records import EntityAnswer
from cotdistill.student import StudentConfigError
from cotdistill.tasks import TASK_PLUGINS, get_task

QUANTIZATION = ("none", "4bit")
TRAIN_SAMPLING = ("group_by_length", "random", "sequential", "batch_rebalance")


@dataclass
class TrainingLoopSettings:
    """The training loop's settings, shared by both students (passed on to ``transformers.TrainingArguments``
    by ``training_arguments``)."""

    epochs: float = 4.0
    max_steps: int = 0  # > 0: train this many optimiser steps whatever the epochs (matched budgets)
    eval_steps: int = 0  # > 0: score dev and save a checkpoint every this many steps; 0: every epoch
    save_steps: int = (
        0  # > 0: also save a resumable checkpoint every this many steps (bounds what a kill loses)
    )
    learning_rate: float = 1e-4
    batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42
    bf16: bool = False
    save_total_limit: int = 1
    logging_steps: int = 50
    dataloader_num_workers: int = 0
    # the order of the training posts, as TrainingArguments.train_sampling_strategy takes it: group_by_length
    # batches posts of similar length together (less padding: faster, the same posts each epoch), random,
    # sequential or batch_rebalance
    train_sampling: str = "group_by_length"
    # experiment tracking, as TrainingArguments.report_to takes it: [] (none), [tensorboard], [wandb],
    # [mlflow], [trackio], ... (the integration's package must be installed)
    report_to: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.train_sampling not in TRAIN_SAMPLING:
            raise StudentConfigError(
                f"train_sampling={self.train_sampling!r}: expected one of {', '.join(TRAIN_SAMPLING)}"
            )


@dataclass
class TrainingLoopConfig(TrainingLoopSettings):
    """The training loop's settings and what the run sets: where checkpoints go, which one to resume from."""

    output_dir: str = field(kw_only=True)
    resume_from_checkpoint: str | bool | None = field(default=None, kw_only=True)


@dataclass
class EncoderTrainingSettings(TrainingLoopSettings):
    """The encoder student's training loop (the defaults of ``TrainingLoopSettings``)."""


@dataclass
class EncoderTrainingConfig(EncoderTrainingSettings, TrainingLoopConfig):
    """The encoder student's training loop, with its output folder."""


@dataclass
class EncoderSettings:
    """What a user chooses of an encoder student. Training-loop settings live in ``EncoderTrainingSettings``."""

    use_caption: bool = False
    teacher_tags: bool = False  # the teacher's answer as a tag embedding on the post's words (taggers only)
    max_length: int = 256
    crf: bool = False
    conditional_distillation: bool = False
    prompt_length: int = 4
    conditional_prompt: bool = False  # prompt vectors shifted by a meta-network of the post (CoCoOp-style)
    kd_temperature: float = 2.0
    kd_weight: float = 1.0
    distill_from: str = ""  # a saved student that reads the teacher: its label distribution is a soft target
    augment_copies: int = 0  # entity-substituted copies of each training post (MNER)
    augment_check: bool = False  # the train stage keeps only the copies the teacher judges plausible
    aux_teacher_tags: bool = False  # the teacher's tags as a second target of a second head (train only)
    aux_weight: float = 0.5
    dropout: float = 0.1
    lora_r: int = 0  # 0: fine-tune the whole encoder; > 0: LoRA on the encoder, the head always trains
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    trust_remote_code: bool = False


@dataclass
class EncoderConfig(EncoderSettings):
    """What an encoder student is and reads: its settings and what the run fills in from the data."""

    model: str = field(kw_only=True)
    labels: list[str] = field(
        default_factory=list, kw_only=True
    )  # entity types (MNER) or relation labels (MRE)
    task: str = field(default="mner", kw_only=True)  # mner: a BIO tagger; mre: a pair classifier over markers
    # set when markers were added to the tokenizer, so a saved student reloads
    vocab_size: int | None = field(default=None, kw_only=True)
    use_knowledge: bool = field(default=True, kw_only=True)

    def __post_init__(self) -> None:
        if self.task not in TASK_PLUGINS:
            raise StudentConfigError(
                f"task={self.task!r}: the encoder student handles mner and mae (tagging) and mre (pair classification)"
            )
        if not self.tagger and self.crf:
            raise StudentConfigError("a CRF tags sequences; set crf=False for the mre pair classifier")
        if self.conditional_distillation and not self.reads_teacher:
            raise StudentConfigError(
                "conditional_distillation matches a view with knowledge: set use_knowledge=True or teacher_tags=True"
            )
        if self.conditional_prompt and not self.conditional_distillation:
            raise StudentConfigError(
                "conditional_prompt shapes the prompt of conditional distillation: set conditional_distillation=True"
            )
        if self.teacher_tags and not self.tagger:
            raise StudentConfigError(
                "teacher_tags marks the teacher's entities or values on the post's words; the mre pair "
                "classifier has none: set teacher_tags=False"
            )
        teacher_free = bool(self.distill_from) or self.aux_teacher_tags
        if teacher_free and (self.reads_teacher or self.conditional_distillation):
            raise StudentConfigError(
                "distill_from and aux_teacher_tags train a student that reads the post alone: set "
                "use_knowledge=False, teacher_tags=False and conditional_distillation=False"
            )
        if self.aux_teacher_tags and not self.tagger:
            raise StudentConfigError("aux_teacher_tags tags the post's words: it needs a tagging task")
        if self.augment_copies and get_task(self.task).answer_type is not EntityAnswer:
            raise StudentConfigError("augment_copies swaps entities: it needs MNER data")
        if self.augment_copies < 0:
            raise StudentConfigError(f"augment_copies={self.augment_copies}: expected 0 or more")
        if self.augment_check and not self.augment_copies:
            raise StudentConfigError(
                "augment_check judges the entity-substituted copies: set augment_copies to 1 or more"
            )
        if self.max_length < 16:
            raise StudentConfigError(
                f"max_length={self.max_length} is too small for any post; use 128 or more"
            )

    @property
    def tagger(self) -> bool:
        """A BIO tagger over the post's units (MNER, MAE), or a pair classifier (MRE)."""
        return get_task(self.task).tagger

    @property
    def bio_labels(self) -> list[str]:
        """The output classes: BIO tags over the entity types (MNER), or the relation labels (MRE)."""
        if not self.tagger:
            return list(self.labels)
        return ["O"] + [f"{p}-{t}" for t in self.labels for p in ("B", "I")]

    @property
    def reads_teacher(self) -> bool:
        """Whether the knowledge view holds anything of the teacher's: its knowledge text or its tags."""
        return self.use_knowledge or self.teacher_tags

    @property
    def eval_view(self) -> str:
        """The view used at test time: text-only unless the student is trained to read knowledge."""
        return "knowledge" if self.reads_teacher and not self.conditional_distillation else "plain"


class GenerativeConfigError(StudentConfigError):
    """A generative-student setting or input that cannot work; the message names it and the fix."""


@dataclass
class GenerativeSettings:
    """What a user chooses of a generative student. Training-loop settings: ``GenerativeTrainingSettings``."""

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


@dataclass
class GenerativeConfig(GenerativeSettings):
    """What a generative student is and reads: its settings and what the run fills in from the data."""

    model: str = field(kw_only=True)
    task: str = field(default="mner", kw_only=True)
    labels: list[str] = field(default_factory=list, kw_only=True)

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
class GenerativeTrainingSettings(TrainingLoopSettings):
    """The generative student's training loop: ``TrainingLoopSettings`` with LLM fine-tuning defaults, plus
    activation checkpointing and how many dev examples to generate after each epoch."""

    epochs: float = 3.0
    learning_rate: float = 2e-4
    batch_size: int = 8
    eval_batch_size: int = 16
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    logging_steps: int = 10
    # random, sequential, group_by_length or batch_rebalance: the examples (and their images) are encoded as
    # they are read, and group_by_length would encode each of them once more before training to learn its length
    train_sampling: str = "random"
    gradient_checkpointing: bool = False
    eval_examples: int = 0  # dev examples generated each epoch (0: all)


@dataclass
class GenerativeTrainingConfig(GenerativeTrainingSettings, TrainingLoopConfig):
    """The generative student's training loop, with its output folder."""
