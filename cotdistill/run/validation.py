"""Checking a run's config before anything loads or is written: every setting (``validate``, run by every
command), and before the stages start, the paths of the data and models and the packages the coming
stages need (``check_before_stages``). ``load_config`` reads a config and checks it whole."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from cotdistill.distill.backends import BACKENDS
from cotdistill.distill.backends.base import backend_options
from cotdistill.labelled import LabelledCountError, labelled_count
from cotdistill.models import check_model_path
from cotdistill.optional import check_installed
from cotdistill.paths import plain_name
from cotdistill.prompts import PromptLibrary
from cotdistill.readers import DATASETS, SPLITS, canonical_split, load_split
from cotdistill.run.config import RunConfig, read_config
from cotdistill.run.stages.student import encoder_config, generative_config, training_config
from cotdistill.settings import ConfigError
from cotdistill.tasks import get_task

logger = logging.getLogger(__name__)

# student.report_to: the trackers transformers' Trainer reports to, and the package each needs
TRACKERS = {
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "trackio": "trackio",
    "comet_ml": "comet_ml",
    "clearml": "clearml",
    "dvclive": "dvclive",
    "swanlab": "swanlab",
}


def load_config(path, overrides: Sequence[str] = (), *, checked: bool = True) -> RunConfig:
    """Read a YAML config (``read_config``: keys, types, ranges) and check it whole (``validate``); every
    error names the file."""
    config = read_config(path, overrides)
    if checked:
        try:
            validate(config)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}" if path is not None else str(err)) from None
    return config


def _check_splits(config: RunConfig) -> None:
    d, k, e = config.data, config.knowledge, config.evaluation
    for split in [*d.splits, *k.filter_splits, e.split]:
        try:
            canonical_split(split)
        except ValueError:
            raise ConfigError(f"split {split!r} in the config; expected one of {', '.join(SPLITS)}") from None
    for split, n in d.max_examples.items():
        try:
            canonical_split(split)
        except ValueError:
            raise ConfigError(
                f"data.max_examples: {split!r} is not a split; expected some of {', '.join(SPLITS)}"
            ) from None
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"data.max_examples.{split} must be a whole number ≥ 1, got {n!r}")


def _check_teacher(config: RunConfig, task: str) -> PromptLibrary:
    """The backend, its options (against the backend's own options dataclass) and the templates."""
    t, k = config.teacher, config.knowledge
    if t.backend not in BACKENDS:
        raise ConfigError(f"teacher.backend={t.backend!r}; expected one of {', '.join(BACKENDS)}")
    if BACKENDS[t.backend].Options is not None:
        backend_options(BACKENDS[t.backend].Options, t.options)
    if not t.templates:
        raise ConfigError("teacher.templates is empty; name at least the answer template")
    library = PromptLibrary(t.template_dirs)
    for name in [*t.templates, *([k.answer_template] if k.answer_template else [])]:
        try:
            info = library.get(name)
        except ValueError as err:
            raise ConfigError(f"teacher.templates: {err}") from None
        if not info.name.startswith(f"{task}."):
            raise ConfigError(f"template {name!r} is not for {task}, the task of {config.data.dataset}")
        if info.kind == "student":
            raise ConfigError(
                f"template {name!r} is the generative student's instruction, not a teacher prompt; "
                "`cotdistill prompts list` shows the cot, augment and answer templates"
            )
    return library


def _check_student(config: RunConfig, task: str, library: PromptLibrary) -> None:
    """The student section builds the chosen student's own configs, and its settings fit the teacher."""
    st, t = config.student, config.teacher
    if st.knowledge not in ("all", "kept", "none"):
        raise ConfigError(f"student.knowledge={st.knowledge!r}; expected all, kept or none")
    if st.kind == "encoder" and st.teacher_tags and st.knowledge == "none":
        raise ConfigError(
            "student.teacher_tags reads the teacher's answers: it needs student.knowledge all or kept "
            "(or set student.teacher_tags=false)"
        )
    try:
        (encoder_config if st.kind == "encoder" else generative_config)(config, [], task)
        training_config(config, output_dir="-")
    except ValueError as err:
        raise ConfigError(f"student: {err}") from None
    unknown = [name for name in st.report_to if name not in TRACKERS]
    if unknown:
        raise ConfigError(
            f"student.report_to: {unknown[0]!r}; expected some of {', '.join(TRACKERS)} (or [])"
        )
    for key in ("epochs", "learning_rate", "batch_size", "eval_batch_size", "gradient_accumulation_steps"):
        value = getattr(st, key)
        if value <= 0:
            raise ConfigError(f"student.{key}={value}: it must be positive")
    for key in ("warmup_ratio", "weight_decay", "lora_dropout"):
        value = getattr(st, key)
        if not 0 <= value < 1:
            raise ConfigError(f"student.{key}={value}: it must lie in [0, 1)")
    if st.kind == "encoder" and st.augment_check:
        if t.backend == "replay":
            raise ConfigError(
                "student.augment_check asks the teacher whether each entity-substituted post is plausible; "
                "the replay backend only gives back saved generations: set teacher.backend to one that runs "
                "a model (vllm, transformers, openai), or student.augment_check=false"
            )
        try:
            library.get(f"{task}.plausibility")
        except ValueError as err:
            raise ConfigError(f"student.augment_check: {err}") from None


def _check_few_labels(config: RunConfig, task: str) -> None:
    """``data.labelled`` and ``data.unlabelled``: a number of posts (or all), a student that reads the post
    alone, and a way to label the posts without gold."""
    d, st = config.data, config.student
    try:
        labelled_count(d.labelled, 1 << 62)
    except LabelledCountError as err:
        raise ConfigError(str(err)) from None
    if d.labelled == "all" and not d.unlabelled:
        return
    if st.kind != "encoder" or not get_task(task).tagger:
        raise ConfigError(
            "data.labelled and data.unlabelled train the encoder tagger (MNER, MAE) from labels made without "
            f"gold; this run has a {st.kind} student on {task}: set student.kind=encoder, or data.labelled=all"
        )
    if st.teacher_tags or st.knowledge_text:
        raise ConfigError(
            "with few gold labels the student reads the post alone (the teacher labels the other posts): "
            "set student.teacher_tags=false and student.knowledge_text=false"
        )
    if st.knowledge == "none":
        raise ConfigError(
            "the posts without gold are labelled from the teacher's answers: set student.knowledge=all"
        )


def validate(config: RunConfig) -> None:
    """Check a config without loading any model or data file: the run's name, the dataset and splits, the
    backend and its options, that every template exists and belongs to the dataset's task, and that the
    student section builds the chosen student's own config (QLoRA included). Raises ``ConfigError`` naming
    the key. (Types and ranges were checked when the config was read.)"""
    if not plain_name(config.name):
        raise ConfigError(
            f"name={config.name!r}: the run's folder name under run_dir, one plain name (no '/', '..'); "
            "to put runs elsewhere set run_dir"
        )
    if config.data.dataset not in DATASETS:
        raise ConfigError(f"data.dataset={config.data.dataset!r}; expected one of {', '.join(DATASETS)}")
    task = DATASETS[config.data.dataset].task
    _check_splits(config)
    library = _check_teacher(config, task)
    _check_student(config, task, library)
    _check_few_labels(config, task)


def check_before_stages(config: RunConfig, stages: Sequence[str], *, backend_given: bool = False) -> None:
    """Before a run touches its folder: the paths (``check_paths``) and the packages the coming stages
    import — the teacher backend's (unless a backend was given in code) and Ray's for scale-out."""
    check_paths(config, stages)
    d = config.data
    if d.labelled != "all" and {"knowledge", "train"} & set(stages):
        available = len(load_split(d.dataset, d.data_dir, "train", image_dir=d.image_dir))
        kept = min(
            available, {canonical_split(k): v for k, v in d.max_examples.items()}.get("train", available)
        )
        if kept < available and isinstance(d.labelled, int) and d.labelled > kept:
            raise ConfigError(  # the run reads only the first max_examples training posts
                f"data.labelled={d.labelled}, but data.max_examples keeps {kept} of the {available} training "
                f"posts: use at most {kept}, 'all', or raise data.max_examples.train"
            )
        try:
            labelled_count(d.labelled, available)
        except LabelledCountError as err:
            raise ConfigError(str(err)) from None
    if d.unlabelled and stages and not Path(d.unlabelled).is_file():
        raise ConfigError(
            f"data.unlabelled: {Path(d.unlabelled).resolve()} is not a file: set data.unlabelled=PATH"
        )
    if "train" in stages:
        for name in config.student.report_to:
            check_installed(TRACKERS[name], f"experiment tracking (student.report_to=[{name}])")
    if "train" in stages and config.student.kind == "encoder":
        check_student_lengths(config)
    t = config.teacher
    asks_teacher = "generate" in stages or (
        "train" in stages and config.student.kind == "encoder" and config.student.augment_check
    )
    if asks_teacher and not backend_given:
        for module in BACKENDS[t.backend].requires:
            check_installed(module, f"the {t.backend} teacher backend (teacher.backend={t.backend})")
    if "generate" in stages and t.ray_replicas > 0:
        check_installed("ray", f"scale-out over Ray (teacher.ray_replicas={t.ray_replicas})")


def _position_limit(model_config) -> int | None:
    """The longest input the model's position embeddings allow (RoBERTa-style models keep two positions
    for the padding offset)."""
    limit = getattr(model_config, "max_position_embeddings", None)
    if not limit:
        return None
    offset = 2 if getattr(model_config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
    return int(limit) - offset


def check_student_lengths(config: RunConfig) -> None:
    """Before training, what would otherwise fail only at predict, after training: ``student.max_length``
    above the model's position limit, and a post (of any split the student reads) that does not fit
    ``student.max_length`` even without its knowledge. A post too long for its knowledge beside it is read
    alone (counted and logged at training). Skipped for a model that is not on this machine."""
    from transformers import AutoConfig, AutoTokenizer

    from cotdistill.models import from_pretrained

    st, d = config.student, config.data
    try:
        model_config = from_pretrained(
            AutoConfig, st.model, local_files_only=True, trust_remote_code=st.trust_remote_code
        )
        tokenizer = from_pretrained(
            AutoTokenizer, st.model, local_files_only=True, trust_remote_code=st.trust_remote_code
        )
    except (OSError, ValueError) as err:
        logger.info(
            "student.model=%s not read before training (%s): lengths checked at training", st.model, err
        )
        return
    limit = _position_limit(model_config)
    if limit and st.max_length > limit:
        raise ConfigError(
            f"student.max_length={st.max_length} is more than {st.model} can read ({limit} positions): "
            f"set student.max_length={limit} or less"
        )
    # the special tokens, and the four entity markers a relation pair's post carries
    count = tokenizer.num_special_tokens_to_add(pair=False) + (4 if DATASETS[d.dataset].task == "mre" else 0)
    longest, too_long = (0, ""), []
    for split in d.splits:
        examples = load_split(d.dataset, d.data_dir, split, image_dir=d.image_dir).examples
        for ex in examples[: d.max_examples.get(split)]:
            words = list(ex.tokens or ex.text.split())
            n = len(tokenizer(words, is_split_into_words=True, add_special_tokens=False)["input_ids"]) + count
            longest = max(longest, (n, f"{split} post {ex.id}"))
            if n > st.max_length:
                too_long.append(ex.id)
    if too_long:
        raise ConfigError(
            f"{len(too_long)} posts do not fit student.max_length={st.max_length} even without knowledge "
            f"(longest: {longest[1]}, {longest[0]} tokens): set student.max_length={min(longest[0], limit or longest[0])}"
            + (f" (the model reads at most {limit})" if limit and longest[0] > limit else "")
        )


def check_paths(config: RunConfig, stages: Sequence[str]) -> None:
    """Before anything runs: the data folder and the models the coming stages load exist, said with absolute
    paths and the override that fixes them (so a bad student path fails now, not after the teacher ran)."""
    from cotdistill.run.config import ConfigError

    d = config.data
    if stages and not Path(d.data_dir).is_dir():
        raise ConfigError(
            f"data.data_dir: {Path(d.data_dir).resolve()} is not a folder (paths in a config are relative "
            f"to the working directory, {Path.cwd()}): set data.data_dir=PATH"
        )
    models = []
    if "generate" in stages and config.teacher.backend in ("vllm", "transformers"):
        models.append(("teacher.model", config.teacher.model))
    if "train" in stages:
        models.append(("student.model", config.student.model))
        judge = config.student.kind == "encoder" and config.student.augment_check
        if judge and "generate" not in stages and config.teacher.backend in ("vllm", "transformers"):
            models.append(("teacher.model", config.teacher.model))
    for key, name in models:
        if not check_model_path(name, key):
            continue
        if os.environ.get("HF_HUB_OFFLINE") == "1" and not _in_hub_cache(name):
            raise ConfigError(
                f"{key}={name!r} is neither a local folder nor in the Hugging Face cache, and "
                "HF_HUB_OFFLINE=1: download it first or set the path of a local copy"
            )
        logger.info(
            "%s=%s is not a local folder: it is loaded from the Hugging Face hub (or its cache)", key, name
        )


def _in_hub_cache(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo, "config.json"), str)
    except Exception:
        return False
