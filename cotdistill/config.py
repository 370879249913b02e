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
from cotdistill.student.config import (
    EncoderConfig,
    EncoderTrainingConfig,
    GenerativeConfig,
    GenerativeTrainingConfig,
)


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


# What the run sets on a student itself (from the data and the knowledge stage), never the config.
SET_BY_THE_RUN = {"task", "labels", "vocab_size", "use_knowledge", "output_dir", "resume_from_checkpoint"}
# Run-level student settings, with the kinds that have them: (default, comment).
STUDENT_RUN_FIELDS = {
    "encoder": [
        ("kind", str, "encoder"),
        (
            "knowledge",
            str,
            "all",
        ),  # all: every example's teacher text; kept: only what passed the filter; none
        (
            "knowledge_text",
            bool,
            True,
        ),  # read the knowledge text as a second segment (false: teacher tags alone)
    ],
    "generative": [("kind", str, "generative"), ("knowledge", str, "all")],
}
# A section field that reads differently from the student's own: vision is "auto" (from the model's config),
# "true" or "false" in a config, None/True/False in GenerativeConfig.
SECTION_FIELDS = {"vision": (str, "auto")}
STUDENT_DEFAULT_MODEL = {"encoder": "FacebookAI/xlm-roberta-large", "generative": "Qwen/Qwen2-VL-2B-Instruct"}


def _student_section(kind: str, model_cls, training_cls) -> type:
    """The ``student`` section of one kind: its run-level settings, then every field of the student's own
    config and training-loop dataclasses, with their defaults (declared once, there)."""
    fields_ = [(name, hint, field(default=default)) for name, hint, default in STUDENT_RUN_FIELDS[kind]]
    fields_.append(("model", str, field(default=STUDENT_DEFAULT_MODEL[kind])))
    seen = {name for name, _, _ in fields_}
    for cls in (model_cls, training_cls):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in SET_BY_THE_RUN or f.name in seen:
                continue
            seen.add(f.name)
            if f.name in SECTION_FIELDS:
                hint, value = SECTION_FIELDS[f.name]
                fields_.append((f.name, hint, field(default=value)))
                continue
            default = (
                field(default_factory=f.default_factory)
                if f.default_factory is not dataclasses.MISSING
                else field(default=f.default)
            )
            fields_.append((f.name, hints[f.name], default))
    name = f"{kind.capitalize()}StudentConfig"
    section = dataclasses.make_dataclass(name, fields_)
    section.__module__ = __name__  # picklable by name (Ray ships configs to its workers)
    section.__doc__ = (
        f"The ``student`` section for ``kind: {kind}``: the run-level settings and every field of "
        f"``{model_cls.__name__}`` and ``{training_cls.__name__}`` with their defaults."
    )
    return section


EncoderStudentConfig = _student_section("encoder", EncoderConfig, EncoderTrainingConfig)
GenerativeStudentConfig = _student_section("generative", GenerativeConfig, GenerativeTrainingConfig)
STUDENT_SECTIONS = {"encoder": EncoderStudentConfig, "generative": GenerativeStudentConfig}
StudentConfig = EncoderStudentConfig | GenerativeStudentConfig


def build_student(values: dict):
    """The ``student`` section of the kind it names: a setting of the other kind is an error."""
    if not isinstance(values, dict):
        raise ConfigError(f"student: expected a mapping, got {type(values).__name__}")
    kind = values.get("kind", "encoder")
    if kind not in STUDENT_SECTIONS:
        raise ConfigError(f"student.kind={kind!r}; expected one of {', '.join(STUDENT_SECTIONS)}")
    cls = STUDENT_SECTIONS[kind]
    own = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key in own:
            continue
        other = [
            k
            for k, c in STUDENT_SECTIONS.items()
            if k != kind and key in {f.name for f in dataclasses.fields(c)}
        ]
        if other:
            raise ConfigError(
                f"student.{key} is a setting of the {other[0]} student, and student.kind is {kind}: "
                f"remove it (or set student.kind={other[0]})"
            )
    return _build(cls, values, "student.")


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
    student: StudentConfig = field(default_factory=EncoderStudentConfig)
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
        if cls is RunConfig and key == "student":
            kwargs[key] = build_student(value or {})
        elif dataclasses.is_dataclass(hint):
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
    _resolve(config)
    if validate:
        from cotdistill.pipeline import validate as check

        check(config)
    return config


def _resolve(config: RunConfig) -> None:
    """Fill the settings whose default follows from others, so the resolved config says what runs:
    the answer template and the student's instruction from the dataset's task, the samples of each CoT
    grain from ``teacher.samples``."""
    from cotdistill.readers import DATASETS

    info = DATASETS.get(config.data.dataset)
    if info is not None:
        if not config.knowledge.answer_template:
            config.knowledge.answer_template = f"{info.task}.answer"
        if config.student.kind == "generative" and not config.student.instruction_template:
            config.student.instruction_template = f"{info.task}.student"
    if config.teacher.rationale_samples is None:
        config.teacher.rationale_samples = config.teacher.samples


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
