"""Checking a run's config before anything loads: every setting (``validate``, run by every command) and
the paths of the data and models the coming stages need (``check_paths``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from cotdistill.config import RunConfig
from cotdistill.paths import plain_name
from cotdistill.readers import canonical_split
from cotdistill.stages.student import encoder_config, generative_config, training_config

logger = logging.getLogger(__name__)


def validate(config: RunConfig) -> None:
    """Check a config without loading any model or data file: the dataset name, that every template exists
    and belongs to the dataset's task, the backend name, the knowledge settings, and that the student section
    builds the chosen student's own config (QLoRA included). Raises ``ConfigError`` naming the key."""
    from cotdistill.config import ConfigError
    from cotdistill.distill.backends import BACKENDS
    from cotdistill.prompts import PromptLibrary
    from cotdistill.readers import DATASETS, SPLITS

    d, t, k, e = config.data, config.teacher, config.knowledge, config.evaluation
    if not plain_name(config.name):
        raise ConfigError(
            f"name={config.name!r}: the run's folder name under run_dir, one plain name (no '/', '..'); "
            "to put runs elsewhere set run_dir"
        )
    if d.dataset not in DATASETS:
        raise ConfigError(f"data.dataset={d.dataset!r}; expected one of {', '.join(DATASETS)}")
    task = DATASETS[d.dataset].task
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
    if t.backend not in BACKENDS:
        raise ConfigError(f"teacher.backend={t.backend!r}; expected one of {', '.join(BACKENDS)}")
    library = PromptLibrary(t.template_dirs)
    for name in [*t.templates, *([k.answer_template] if k.answer_template else [])]:
        try:
            info = library.get(name)
        except ValueError as err:
            raise ConfigError(f"teacher.templates: {err}") from None
        if not info.name.startswith(f"{task}."):
            raise ConfigError(f"template {name!r} is not for {task}, the task of {d.dataset}")
        if info.kind == "student":
            raise ConfigError(
                f"template {name!r} is the generative student's instruction, not a teacher prompt; "
                "`cotdistill prompts list` shows the cot, augment and answer templates"
            )
    if not t.templates:
        raise ConfigError("teacher.templates is empty; name at least the answer template")
    if t.samples < 1 or t.max_tokens < 1 or t.batch_size < 1:
        raise ConfigError("teacher.samples, teacher.max_tokens and teacher.batch_size must be at least 1")
    if t.rationale_samples is not None and t.rationale_samples < 1:
        raise ConfigError("teacher.rationale_samples must be at least 1")
    if not 0.0 <= k.min_f1 <= 1.0 or not 0.0 <= k.min_agreement <= 1.0:
        raise ConfigError("knowledge.min_f1 and knowledge.min_agreement must lie in [0, 1]")
    st = config.student
    if st.knowledge not in ("all", "kept", "none"):
        raise ConfigError(f"student.knowledge={st.knowledge!r}; expected all, kept or none")
    if st.kind == "encoder" and st.teacher_tags and st.knowledge == "none":
        raise ConfigError(
            "student.teacher_tags reads the teacher's answers: it needs student.knowledge all or kept "
            "(or set student.teacher_tags=false)"
        )
    try:
        if st.kind == "encoder":
            encoder_config(config, [], task)
        else:
            generative_config(config, [], task)
        training_config(config, output_dir="-")
    except ValueError as err:
        raise ConfigError(f"student: {err}") from None
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
    if e.resamples < 0:
        raise ConfigError(f"evaluation.resamples={e.resamples}: it must be 0 or more")


def check_paths(config: RunConfig, stages: Sequence[str]) -> None:
    """Before anything runs: the data folder and the models the coming stages load exist, said with absolute
    paths and the override that fixes them (so a bad student path fails now, not after the teacher ran)."""
    from cotdistill.config import ConfigError
    from cotdistill.models import check_model_path

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
