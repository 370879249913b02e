"""Run configs: one dataclass per section, each default declared once.

YAML files set values, command-line overrides (``teacher.model=Qwen/Qwen2.5-VL-7B-Instruct``, one per
argument, values read as YAML scalars) win over the YAML, and an unknown key is an error naming the nearest
valid key. The resolved config (every default filled in) is written next to the artifacts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cotdistill.errors import InputError


class ConfigError(InputError):
    """A config that cannot be used; the message names the key and the fix."""


@dataclass
class DataConfig:
    dataset: str = "twitter2015"
    data_dir: str = "../shared/datasets/twitter2015"
    image_dir: str | None = None
    splits: list[str] = field(default_factory=lambda: ["train", "valid", "test"])
    # split -> read only its first N examples (e.g. {train: 600, test: 300} for a budgeted run); empty: all
    max_examples: dict = field(default_factory=dict)


@dataclass
class TeacherConfig:
    backend: str = "vllm"
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    templates: list[str] = field(
        default_factory=lambda: ["mner.noun", "mner.sentence", "mner.multimodal", "mner.answer"]
    )
    template_dirs: list[str] = field(default_factory=list)
    samples: int = 1
    # samples of each CoT grain (non-answer template); null: teacher.samples. The knowledge stage votes over
    # answer samples but reads one sample of each grain, so 1 saves the requests it would not read.
    rationale_samples: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    batch_size: int = 64
    structured_output: bool = False
    sees_images: bool = True
    price_per_million_prompt_tokens: float | None = None
    price_per_million_completion_tokens: float | None = None
    options: dict = field(
        default_factory=dict
    )  # passed to the backend (tensor_parallel_size, base_url, path, ...)
    # scale-out with Ray Data: 0 runs the backend in this process; N > 0 runs N replicas as Ray actors
    ray_replicas: int = 0
    ray_gpus_per_replica: float = 0.0  # e.g. 1 (or tensor_parallel_size) for one vLLM engine per replica
    ray_address: str | None = None  # "auto" or ray://HOST:10001 for a cluster; none: start Ray locally


@dataclass
class KnowledgeConfig:
    answer_template: str | None = None
    min_f1: float = 1.0
    min_agreement: float = 0.0
    filter_splits: list[str] = field(default_factory=lambda: ["train"])  # gold is never used on other splits


@dataclass
class StudentConfig:
    """Both students' settings (``kind``: encoder or generative). A field left empty (null) takes the chosen
    student's own default: ``EncoderConfig``/``EncoderTrainingConfig`` or ``GenerativeConfig``/
    ``GenerativeTrainingConfig``; an empty ``lora_target_modules`` means the student's default targets."""

    kind: str = "encoder"
    model: str = "FacebookAI/xlm-roberta-large"
    knowledge: str = "all"  # all: every example's teacher text; kept: only what passed the filter; none
    use_caption: bool | None = None
    max_length: int | None = None
    # encoder student
    crf: bool = False
    knowledge_text: bool = True  # read the knowledge text as a second segment (false: teacher tags alone)
    teacher_tags: bool = False  # the teacher's voted answer as tag embeddings on the post's words
    conditional_distillation: bool = False
    prompt_length: int = 4
    kd_temperature: float = 2.0
    kd_weight: float = 1.0
    # generative student
    vision: bool | None = None  # null: from the model's config
    alpha: float = 0.5  # distilling step by step: alpha * answer + (1 - alpha) * rationale
    max_pixels: int | None = None
    max_new_tokens: int | None = None
    packing: bool = False
    quantization: str = "none"  # none or 4bit (QLoRA)
    # LoRA (encoder: lora_r 0 fine-tunes the whole encoder)
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    lora_target_modules: list[str] = field(default_factory=list)
    # the training loop
    epochs: float | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    eval_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    seed: int = 42
    bf16: bool = False
    gradient_checkpointing: bool = False
    eval_examples: int = 0  # generative: dev examples generated after each epoch (0: all)
    dataloader_num_workers: int = 0
    trust_remote_code: bool = False


@dataclass
class EvaluationConfig:
    split: str = "test"  # the split teacher and student are predicted on and compared
    resamples: int = 1000  # bootstrap resamples for CIs and the paired test
    seed: int = 0
    note: str = ""  # shown at the top of the report (e.g. what the data is)


@dataclass
class RunConfig:
    name: str = "run"
    run_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / self.name


def _nearest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown key {where + key!r}{_nearest(key, list(fields))}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value or {}, f"{where}{key}.")
        else:
            kwargs[key] = _coerce(value, hint, where + key)
    return cls(**kwargs)


def build_section(cls, values: dict, where: str):
    """A config dataclass from a mapping, checked as every config section is (``where``: the key prefix
    used in errors, e.g. ``"teacher.options."``)."""
    return _build(cls, values, where)


def _coerce(value, hint, key: str):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{key} must not be empty")
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key) if len(inner) == 1 else value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[]") if args else v for v in value]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is float and isinstance(value, str):
        # YAML 1.1 reads 5e-4 (no dot) as a string; a number is what was meant
        with contextlib.suppress(ValueError):
            value = float(value)
    if hint in (int, float):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (hint is int and not isinstance(value, int))
        ):
            raise ConfigError(f"{key} must be {'an integer' if hint is int else 'a number'}, got {value!r}")
        return hint(value)
    if hint is str:
        return str(value)
    return value


def _set_path(tree: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {p} is not a section")
    node[parts[-1]] = value


def load_config(
    path: str | os.PathLike | None, overrides: list[str] = (), *, validate: bool = True
) -> RunConfig:
    """Read a YAML config, apply ``key.sub=value`` overrides, fill every default and validate the whole of
    it (``pipeline.validate``: every stage command checks the same things ``run`` does)."""
    tree: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            tree = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{p}:{mark.line + 1}" if mark else str(p)
            raise ConfigError(f"{where}: invalid YAML ({getattr(err, 'problem', err)})") from None
        if not isinstance(tree, dict):
            raise ConfigError(
                f"{p}: expected a mapping of sections (name, data, teacher, student, ...), got {type(tree).__name__}"
            )
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(
                f"override {item!r}: the value is not valid YAML ({getattr(err, 'problem', err)})"
            ) from None
        _set_path(tree, key.strip(), value)
    config = _build(RunConfig, tree, "")
    if validate:
        from cotdistill.pipeline import validate as check

        check(config)
    return config


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def write_resolved(config: RunConfig) -> Path:
    """Write ``config.yaml`` (resolved) into the run directory first thing. An earlier, different config is
    kept beside it as ``config.previous-N.yaml``, never overwritten."""
    folder = config.path
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "config.yaml"
    text = yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)
    if target.exists() and target.read_text(encoding="utf-8") != text:
        n = 1
        while (folder / f"config.previous-{n}.yaml").exists():
            n += 1
        target.rename(folder / f"config.previous-{n}.yaml")
    target.write_text(text, encoding="utf-8")
    return target
