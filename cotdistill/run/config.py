"""Run configs: one dataclass per section, each default declared once.

YAML files set values, command-line overrides (``teacher.model=Qwen/Qwen2.5-VL-7B-Instruct``, one per
argument, values read as YAML scalars) win over the YAML, and an unknown key is an error naming the nearest
valid key. The resolved config (every default filled in) is written next to the artifacts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from cotdistill.readers.common import DataFormatError, decode_text
from cotdistill.settings import ConfigError, bounded, build_section
from cotdistill.student.config import (
    EncoderSettings,
    EncoderTrainingSettings,
    GenerativeSettings,
    GenerativeTrainingSettings,
)


@dataclass
class DataConfig:
    dataset: str = "twitter2015"
    name: str | None = None  # what reports call the data (default: the dataset's name)
    data_dir: str = "../shared/datasets/twitter2015"
    image_dir: str | None = None
    splits: list[str] = field(default_factory=lambda: ["train", "valid", "test"])
    # split -> read only its first N examples (e.g. {train: 600, test: 300} for a budgeted run); empty: all
    max_examples: dict = field(default_factory=dict)
    # few gold labels: the training posts whose gold the run reads (a number picked with labelled_seed, or
    # all); every other training post is read without its gold, as a post the teacher labels
    labelled: int | str = "all"
    labelled_seed: int = 0
    # a file of posts that never had gold (JSONL with text, or CoNLL without the tag column): the teacher
    # reads them like a split ("unlabelled") and the student learns from its answers
    unlabelled: str | None = None


@dataclass
class TeacherConfig:
    backend: str = "vllm"
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    templates: list[str] = field(
        default_factory=lambda: ["mner.noun", "mner.sentence", "mner.multimodal", "mner.answer"]
    )
    template_dirs: list[str] = field(default_factory=list)
    samples: int = bounded(1, ge=1)  # answers sampled per post and template (n)
    # samples of each CoT grain (non-answer template); null: teacher.samples. The knowledge stage votes over
    # answer samples but reads one sample of each grain, so 1 saves the requests it would not read.
    rationale_samples: int | None = bounded(None, ge=1)
    temperature: float = bounded(0.0, ge=0)
    top_p: float = bounded(1.0, gt=0, le=1)
    max_tokens: int = bounded(512, ge=1)
    seed: int = 0
    batch_size: int = bounded(64, ge=1)
    structured_output: bool = False
    sees_images: bool = True
    price_per_million_prompt_tokens: float | None = bounded(None, ge=0)
    price_per_million_completion_tokens: float | None = bounded(None, ge=0)
    options: dict = field(
        default_factory=dict
    )  # passed to the backend (tensor_parallel_size, base_url, path, ...)
    # scale-out with Ray Data: 0 runs the backend in this process; N > 0 runs N replicas as Ray actors
    ray_replicas: int = bounded(0, ge=0)
    ray_gpus_per_replica: float = bounded(
        0.0, ge=0
    )  # e.g. 1 (or tensor_parallel_size) for one vLLM engine per replica
    ray_address: str | None = None  # "auto" or ray://HOST:10001 for a cluster; none: start Ray locally


@dataclass
class KnowledgeConfig:
    answer_template: str | None = None
    min_f1: float = bounded(1.0, ge=0, le=1)
    min_agreement: float = bounded(0.0, ge=0, le=1)
    filter_splits: list[str] = field(default_factory=lambda: ["train"])  # gold is never used on other splits
    # a teacher's free-text type that maps to no label (MNER): the misc label, or drop the mention
    unmapped_types: Literal["misc", "drop"] = "misc"
    # learn how the teacher's free-text types map to labels from the labelled training posts (MNER)
    learn_types: bool = False


@dataclass
class _EncoderRunFields:
    kind: str = "encoder"
    model: str = "FacebookAI/xlm-roberta-large"
    knowledge: str = "all"  # all: every example's teacher text; kept: only what passed the filter; none
    knowledge_text: bool = True  # read the knowledge text as a second segment (false: teacher tags alone)
    # few gold labels (data.labelled): how the posts without gold get their labels — "labeller": a student
    # that reads the teacher's answer, trained on the labelled posts; "teacher": the teacher's answers;
    # "auto": whichever of the two scores the higher F1 on the dev split; "agree": only the posts where the
    # labeller and the teacher give the same answer
    pseudo_labels: Literal["auto", "labeller", "teacher", "agree"] = "auto"


@dataclass
class EncoderStudentConfig(EncoderTrainingSettings, EncoderSettings, _EncoderRunFields):
    """The ``student`` section for ``kind: encoder``: the run-level settings, then every field of
    ``EncoderSettings`` and ``EncoderTrainingSettings`` with their defaults (declared there, once)."""


@dataclass
class _GenerativeRunFields:
    kind: str = "generative"
    model: str = "Qwen/Qwen2-VL-2B-Instruct"
    knowledge: str = "all"


@dataclass
class GenerativeStudentConfig(GenerativeTrainingSettings, GenerativeSettings, _GenerativeRunFields):
    """The ``student`` section for ``kind: generative``: the run-level settings, then every field of
    ``GenerativeSettings`` and ``GenerativeTrainingSettings`` with their defaults (declared there, once)."""

    # "auto" (from the model's config: a vision_config means a VLM), "true" or "false"; GenerativeConfig's
    # vision is None, True or False
    vision: str = "auto"


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
    return build_section(cls, values, "student.")


@dataclass
class EvaluationConfig:
    split: str = "test"  # the split teacher and student are predicted on and compared
    resamples: int = bounded(1000, ge=0)  # bootstrap resamples for CIs and the paired test
    seed: int = 0
    note: str = ""  # shown at the top of the report (e.g. what the data is)


@dataclass
class RunConfig:
    name: str = "run"
    run_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    student: StudentConfig = field(default_factory=EncoderStudentConfig, metadata={"builder": build_student})
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / self.name


def _set_path(tree: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {p} is not a section")
    node[parts[-1]] = value


MAX_INCLUDES = 8  # how deep ``include:`` may nest
# A config is a page of settings: a bigger file is a mistake (a dataset passed as the config) or an attack.
MAX_CONFIG_BYTES = 1 << 20
# Values that aliases (``*name``) may add to a config once expanded. Aliases that nest ("billion laughs":
# nine aliases of nine aliases of ...) would otherwise make a tree of billions of values that every
# later check walks: gigabytes and minutes before the first error.
MAX_ALIAS_VALUES = 10_000
MAX_YAML_DEPTH = 64  # how deep mappings and lists may nest (the composer recurses once per level)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing (as a ``yaml.YAMLError`` with the line) an alias that refers to
    itself, aliases that expand past ``MAX_ALIAS_VALUES`` values, and nesting past ``MAX_YAML_DEPTH``."""

    def __init__(self, stream):
        super().__init__(stream)
        self._values = 0  # values composed so far, each alias counted as the values it stands for
        self._aliased = 0  # of which added by aliases
        self._depth = 0
        self._sizes: dict[str, int] = {}  # anchor -> values under it, aliases expanded

    def _refuse(self, problem: str, mark) -> None:
        raise yaml.composer.ComposerError(None, None, problem, mark)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            size = self._sizes.get(event.anchor)
            if size is None and event.anchor in self.anchors:
                self._refuse(f"alias *{event.anchor} refers to the value that holds it", event.start_mark)
            self._values += size or 0
            self._aliased += size or 0
            if self._aliased > MAX_ALIAS_VALUES:
                self._refuse(
                    f"aliases expand to more than {MAX_ALIAS_VALUES:,} values; write the values out",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            self._refuse(f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
        before = self._values
        self._values += 1
        node = super().compose_node(parent, index)
        self._depth -= 1
        if event.anchor is not None:
            self._sizes[event.anchor] = self._values - before
        return node


def _load_yaml(text: str):
    """One YAML document read with ``_BoundedLoader``."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _yaml_problem(err: yaml.YAMLError, text: str) -> tuple[int | None, str]:
    """The line (when known) and a one-line description of a YAML error."""
    if isinstance(err, yaml.reader.ReaderError):  # a control character: PyYAML gives its code and position
        code = err.character if isinstance(err.character, int) else ord(err.character)
        return text.count("\n", 0, err.position) + 1, f"character U+{code:04X} is not allowed in YAML"
    mark = getattr(err, "problem_mark", None)
    problem = str(getattr(err, "problem", None) or err).splitlines()[0]
    return (mark.line + 1 if mark is not None else None), problem


def _read_text(p: Path) -> str:
    """A config file's text: UTF-8, at most ``MAX_CONFIG_BYTES``."""
    with open(p, "rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{p}: more than {MAX_CONFIG_BYTES:,} bytes, too big for a config; is it the right file?"
        )
    try:
        return decode_text(data, p)
    except DataFormatError as err:
        raise ConfigError(str(err)) from None


def _merge(base: dict, own: dict) -> dict:
    """``own`` over ``base``, section by section (a mapping merges into a mapping; anything else replaces)."""
    out = dict(base)
    for key, value in own.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _read_yaml(p: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A config file as a mapping, with the files it names under ``include:`` (one path or a list, relative
    to the including file) merged beneath it, in order."""
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist" + (f" (included by {seen[-1]})" if seen else ""))
    if p.resolve() in seen or len(seen) >= MAX_INCLUDES:
        raise ConfigError(f"{seen[-1]}: include: {p} makes a loop or nests deeper than {MAX_INCLUDES} files")
    text = _read_text(p)
    try:
        tree = _load_yaml(text) or {}
    except yaml.YAMLError as err:
        line, problem = _yaml_problem(err, text)
        raise ConfigError(f"{p}{f':{line}' if line else ''}: invalid YAML ({problem})") from None
    if not isinstance(tree, dict):
        raise ConfigError(
            f"{p}: expected a mapping of sections (name, data, teacher, student, ...), got {type(tree).__name__}"
        )
    includes = tree.pop("include", None) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(x, str) for x in includes):
        raise ConfigError(f"{p}: include: expected a file name or a list of file names")
    base: dict = {}
    for name in includes:
        base = _merge(base, _read_yaml(p.parent / name, (*seen, p.resolve())))
    return _merge(base, tree)


def read_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML config (and what it includes), apply ``key.sub=value`` overrides and fill every default;
    every key, type and range is checked, and an error names the file. ``cotdistill.run.validation``'s
    ``load_config`` adds the checks that span sections."""
    tree: dict = _read_yaml(Path(path)) if path is not None else {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        try:
            value = _load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(
                f"override {item!r}: the value is not valid YAML ({_yaml_problem(err, raw)[1]})"
            ) from None
        _set_path(tree, key.strip(), value)
    try:
        config = build_section(RunConfig, tree, "")
    except ConfigError as err:
        where = f"{path}{' with the overrides' if overrides else ''}: " if path is not None else ""
        raise ConfigError(f"{where}{err}") from None
    _resolve(config)
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
