"""The stages of a run and ``cotdistill run``, the one piece of code that knows every stage.

generate → knowledge → train → predict → evaluate → compare, all into one run directory (DESIGN.md):

    RUN/config.yaml      the resolved config, written first
    RUN/teacher/         generation shards per split (resumable on its own)
    RUN/knowledge/       filtered knowledge per split
    RUN/student/         checkpoints and best/ (training resumes from the last checkpoint)
    RUN/predictions/     teacher-<split>.jsonl, student-<split>.jsonl
    RUN/report/scores/   one metrics file per system (evaluate)
    RUN/report/          metrics.json, report.md, report.html, plots (compare)
    RUN/stages.json      which stages finished, when, with which config

A finished stage is never redone unless asked (``redo``); what a redone or half-finished stage had written
is moved to ``RUN/previous/<n>/``, never deleted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import yaml

from cotdistill.config import RunConfig, to_dict, write_resolved
from cotdistill.errors import InputError, MissingPathError, PathExistsError, RunError
from cotdistill.locking import exclusive
from cotdistill.paths import plain_name
from cotdistill.readers import DatasetSplit, canonical_split, load_split
from cotdistill.readers.common import DataFormatError
from cotdistill.records import Prediction, Usage

logger = logging.getLogger(__name__)

STAGES = ("generate", "knowledge", "train", "predict", "evaluate", "compare")

# What each stage writes (relative to the run directory), for moving aside on a redo.
STAGE_OUTPUTS = {
    "generate": ["teacher"],
    "knowledge": ["knowledge"],
    "train": ["student"],
    "predict": ["predictions"],
    "evaluate": ["report/scores"],
    "compare": ["report/metrics.json", "report/report.md", "report/report.html", "report/*.png"],
}

# The config sections a stage's result depends on (a change there makes the stored result stale).
STAGE_INPUTS = {
    "generate": ("data", "teacher"),
    "knowledge": ("data", "teacher", "knowledge"),
    "train": ("data", "teacher", "knowledge", "student"),
    "predict": ("data", "teacher", "knowledge", "student", "evaluation"),
    "evaluate": ("data", "teacher", "knowledge", "student", "evaluation"),
    "compare": ("data", "teacher", "knowledge", "student", "evaluation"),
}


class TeacherFailedError(RunError):
    """Every request of a split failed: the teacher is misconfigured or down, not the data."""


class StageError(RunError):
    """A stage of ``cotdistill run`` failed; the message names the stage, the cause and how to resume."""


# ---------------------------------------------------------------------------------------------- data


def load_splits(config: RunConfig, splits: Sequence[str] | None = None) -> dict[str, DatasetSplit]:
    return {canonical_split(split): load_one(config, split) for split in splits or config.data.splits}


def load_one(config: RunConfig, split: str) -> DatasetSplit:
    d = config.data
    ds = load_split(d.dataset, d.data_dir, split, image_dir=d.image_dir)
    limits = {canonical_split(k): v for k, v in d.max_examples.items()}
    if ds.split in limits and limits[ds.split] < len(ds.examples):
        logger.info("data.max_examples: the first %d of %d %s examples", limits[ds.split], len(ds), ds.split)
        ds = dataclasses.replace(ds, examples=ds.examples[: limits[ds.split]])
    return ds


def task_spec(splits: dict[str, DatasetSplit]):
    from cotdistill.tasks import TaskSpec

    first = next(iter(splits.values()))
    return TaskSpec.from_examples(first.task, [ex for ds in splits.values() for ex in ds.examples])


def samples_per_template(config: RunConfig, library) -> dict[str, int]:
    """How many samples each teacher template gets: ``teacher.samples``, or ``teacher.rationale_samples`` for
    the CoT grains when it is set."""
    t = config.teacher
    return {
        name: t.samples
        if t.rationale_samples is None or library.get(name).kind == "answer"
        else t.rationale_samples
        for name in t.templates
    }


def prompt_library(config: RunConfig):
    from cotdistill.prompts import PromptLibrary

    library = PromptLibrary(config.teacher.template_dirs)
    for name in config.teacher.templates:
        library.get(name)  # an unknown template name fails here, before any model loads
    return library


# ------------------------------------------------------------------------------------------ stages


def generate(
    config: RunConfig,
    splits: dict[str, DatasetSplit] | None = None,
    *,
    limit: int | None = None,
    retry_failed: bool = False,
    backend=None,
) -> dict:
    """The teacher over every split into ``RUN/teacher/<split>/``; returns per-split run statistics."""
    from cotdistill.distill.backends import Sampling, make_backend
    from cotdistill.distill.runner import run_generation, write_manifest

    splits = splits or load_splits(config)
    library = prompt_library(config)
    spec = task_spec(splits)
    t = config.teacher
    sampling = Sampling(t.temperature, t.top_p, t.max_tokens, t.seed)
    if t.ray_replicas <= 0:
        backend = backend or make_backend(t.backend, t.model, **t.options)
    common = {
        "samples": samples_per_template(config, library),
        "sampling": sampling,
        "batch_size": t.batch_size,
        "limit": limit,
        "retry_failed": retry_failed,
        "sees_images": t.sees_images,
        "structured": t.structured_output,
    }
    summary = {}
    for split, ds in splits.items():
        out = config.path / "teacher" / split
        if t.ray_replicas > 0:
            from cotdistill.distill.scale import run_generation_ray

            stats = run_generation_ray(
                ds.examples,
                t.templates,
                library,
                spec,
                t.backend,
                t.model,
                t.options,
                out,
                replicas=t.ray_replicas,
                gpus_per_replica=t.ray_gpus_per_replica,
                address=t.ray_address,
                **common,
            )
        else:
            stats = run_generation(ds.examples, t.templates, library, spec, backend, out, **common)
        manifest = json.loads(write_manifest(out, stats, to_dict(config)).read_text(encoding="utf-8"))
        summary[split] = stats.to_dict()
        if manifest["generations"] and not manifest["succeeded"]:
            # A teacher that answers nothing is not a finished stage: the knowledge would be empty.
            raise TeacherFailedError(
                f"the teacher failed every one of the {manifest['generations']:,} {split} requests "
                f"(failures by reason: {manifest['failures_by_reason']}); fix the teacher, then redo the "
                f"failures: cotdistill generate CONFIG --retry-failed"
            )
    return summary


def knowledge(config: RunConfig, splits: dict[str, DatasetSplit] | None = None) -> dict:
    """Parse, vote, filter and export each split's generations into ``RUN/knowledge/``."""
    from cotdistill.distill.knowledge import build_knowledge, export_knowledge
    from cotdistill.distill.runner import ShardStore

    splits = splits or load_splits(config)
    library = prompt_library(config)
    spec = task_spec(splits)
    k = config.knowledge
    summary = {}
    for split, ds in splits.items():
        store = ShardStore(config.path / "teacher" / split)
        generations = list(store.load().values())
        if not generations:
            raise MissingPathError(
                f"no generations in {store.folder}; run 'cotdistill generate' (or the generate stage) first"
            )
        report = build_knowledge(
            ds.examples,
            generations,
            spec,
            library,
            answer_template=k.answer_template,
            use_gold=split in k.filter_splits,
            min_f1=k.min_f1,
            min_agreement=k.min_agreement,
        )
        paths = export_knowledge(report, config.path / "knowledge", name=split)
        summary[split] = {"examples": len(ds.examples), **dict(report.counts), "jsonl": str(paths["jsonl"])}
    return summary


def _knowledge_rows(config: RunConfig, splits: Sequence[str]):
    """``(path, line, record)`` of each knowledge record the student reads, per ``student.knowledge`` (all,
    kept or none)."""
    mode = config.student.knowledge
    if mode not in ("all", "kept", "none"):
        raise InputError(f"student.knowledge={mode!r}; expected all, kept or none")
    if mode == "none":
        return
    for split in splits:
        path = config.path / "knowledge" / f"{split}.jsonl"
        if not path.is_file():
            raise MissingPathError(
                f"{path} does not exist; run 'cotdistill knowledge' first, or set student.knowledge=none"
            )
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict) or not {"id", "kept", "knowledge", "answer"} <= row.keys():
                        raise KeyError("id, kept, knowledge, answer")
                except (ValueError, KeyError) as err:
                    raise DataFormatError(
                        path, lineno, f"not a knowledge record with id, kept, knowledge, answer ({err})"
                    ) from None
                if mode == "all" or row["kept"]:
                    yield path, lineno, row


def student_knowledge(config: RunConfig, splits: Sequence[str]) -> dict[str, str]:
    """The teacher text each example is conditioned on, per ``student.knowledge`` (all, kept or none)."""
    return {row["id"]: row["knowledge"] for _, _, row in _knowledge_rows(config, splits) if row["knowledge"]}


def student_teacher_answers(config: RunConfig, splits: Sequence[str]) -> dict:
    """The teacher's voted answer of each example (what ``student.teacher_tags`` reads), per
    ``student.knowledge``."""
    from cotdistill.records import answer_from_dict

    answers = {}
    for path, lineno, row in _knowledge_rows(config, splits):
        if row["answer"] is None:
            continue
        try:
            answers[row["id"]] = answer_from_dict(row["answer"])
        except (ValueError, KeyError, TypeError) as err:
            raise DataFormatError(path, lineno, f"not an answer record ({err})") from None
    return answers


def _same_named(source, target_cls, **extra):
    """Build ``target_cls`` from the fields of ``source`` that it shares by name (the config section and the
    student's own dataclasses use the same names), plus ``extra``. A null or an empty list in the config
    means "the student's own default"."""
    names = {f.name for f in dataclasses.fields(target_cls)}
    values = {
        k: v
        for k, v in dataclasses.asdict(source).items()
        if k in names and k not in extra and v is not None and not (isinstance(v, list) and not v)
    }
    return target_cls(**values, **extra)


def encoder_config(config: RunConfig, labels: Sequence[str], task: str):
    from cotdistill.student.encoder import EncoderConfig

    s = config.student
    use = s.knowledge != "none" and s.knowledge_text
    return _same_named(s, EncoderConfig, task=task, labels=list(labels), use_knowledge=use)


def generative_config(config: RunConfig, labels: Sequence[str], task: str):
    from cotdistill.student.generative import GenerativeConfig

    return _same_named(config.student, GenerativeConfig, task=task, labels=list(labels))


def _check_kind(config: RunConfig) -> str:
    kind = config.student.kind
    if kind not in ("encoder", "generative"):
        raise InputError(f"student.kind={kind!r}; expected encoder or generative")
    return kind


def _complete_checkpoint(path: Path) -> bool:
    """Whether the Trainer finished writing this checkpoint: its state parses, and weights, optimizer and
    scheduler are there and not empty (a kill while saving leaves some of them missing or cut short)."""
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    weights = [
        p
        for name in (
            "model.safetensors",
            "adapter_model.safetensors",
            "pytorch_model.bin",
            "adapter_model.bin",
        )
        if (p := path / name).is_file()
    ] + sorted(path.glob("model-*.safetensors"))
    needed = [path / "optimizer.pt", path / "scheduler.pt"]
    return (
        isinstance(state, dict)
        and "global_step" in state
        and bool(weights)
        and all(p.is_file() and p.stat().st_size > 0 for p in [*weights, *needed])
        and all(_safetensors_whole(p) for p in weights if p.suffix == ".safetensors")
    )


def _safetensors_whole(path: Path) -> bool:
    """The file is as long as its header says (a cut-short write is not)."""
    import struct

    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size >= 8 + n + end
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return False


def _last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint; incomplete ones (a kill while saving) are passed over and named."""
    ckpts = sorted(
        (p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    for path in reversed(ckpts):
        if _complete_checkpoint(path):
            return str(path)
        logger.warning("%s is incomplete (a run stopped while saving it); resuming from an earlier one", path)
    return None


def train(config: RunConfig, resume: str | bool | None = None) -> dict:
    """Train the student named by ``student.kind`` on ``RUN/knowledge``; the best model by dev F1 goes to
    ``RUN/student/best``. ``resume=True`` continues from the last checkpoint in ``RUN/student`` (if any)."""
    from cotdistill.tasks import TaskSpec

    kind = _check_kind(config)
    train_split, valid_split = load_one(config, "train"), load_one(config, "valid")
    labels = TaskSpec.from_examples(train_split.task, train_split.examples).labels
    out = config.path / "student"
    if resume is True:
        resume = _last_checkpoint(out)
    extra = {}
    if kind == "encoder":
        from cotdistill.student.train import EncoderTrainingConfig as Training
        from cotdistill.student.train import train_encoder as train_student

        student = encoder_config(config, labels, train_split.task)
        texts = student_knowledge(config, ["train", "valid"])  # the context it reads
        if student.teacher_tags:
            extra["teacher_answers"] = student_teacher_answers(config, ["train", "valid"])
    else:
        from cotdistill.student.generative import GenerativeTrainingConfig as Training
        from cotdistill.student.generative import train_generative as train_student

        student = generative_config(config, labels, train_split.task)
        texts = student_knowledge(config, ["train"])  # the rationale task's targets
    training = _same_named(
        config.student, Training, output_dir=str(out), resume_from_checkpoint=resume or None
    )
    model, _, history = train_student(
        student, training, train_split.examples, valid_split.examples, texts, **extra
    )
    best = max((h["eval_f1"] for h in history if "eval_f1" in h), default=None)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "kind": kind,
        "best": str(out / "best"),
        "best_dev_f1": best,
        "resumed_from": resume or None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": trainable,
    }


def _write_predictions(path: Path, preds: Sequence[Prediction], overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise PathExistsError(f"{path} already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in preds)
    os.replace(tmp, path)


def predict_student(config: RunConfig, split: str = "test", *, overwrite: bool = False) -> dict:
    """The trained student on one split → ``RUN/predictions/student-<split>.jsonl``."""
    from cotdistill.student import read_student_config

    ds = load_one(config, split)

    best = config.path / "student" / "best"
    kind, _ = read_student_config(best)
    source = f"student:{Path(config.student.model).name}"
    if kind == "generative":
        from cotdistill.student.generative import load_generative_student, predict_generative

        model, processor, gconfig = load_generative_student(best)
        preds = predict_generative(
            model,
            processor,
            gconfig,
            ds.examples,
            source=source,
            batch_size=config.student.eval_batch_size or 16,
        )
        view = "answer"
    else:
        from cotdistill.student.encoder import decode_predictions, load_encoder_student

        model, featurizer = load_encoder_student(best)
        view = model.config.eval_view
        texts = student_knowledge(config, [ds.split]) if view == "knowledge" else {}
        answers = (
            student_teacher_answers(config, [ds.split])
            if view == "knowledge" and model.config.teacher_tags
            else None
        )
        preds = decode_predictions(
            model, featurizer, ds.examples, texts, source=source, teacher_answers=answers
        )
    path = config.path / "predictions" / f"student-{ds.split}.jsonl"
    _write_predictions(path, preds, overwrite)
    return {"path": str(path), "predictions": len(preds), "view": view}


def predict_teacher(config: RunConfig, split: str = "test", *, overwrite: bool = False) -> dict:
    """The teacher's voted answers on one split (from ``RUN/knowledge/<split>.jsonl``) as Prediction records
    → ``RUN/predictions/teacher-<split>.jsonl``, with the split's generation usage per example."""
    from cotdistill.distill.runner import ShardStore
    from cotdistill.records import answer_from_dict

    ds = load_one(config, split)
    path = config.path / "knowledge" / f"{ds.split}.jsonl"
    if not path.is_file():
        raise MissingPathError(
            f"{path} does not exist; run the knowledge stage on the {ds.split} split first"
        )
    answer_template = config.knowledge.answer_template or f"{ds.task}.answer"
    totals: dict[str, list] = {}
    first_answer: dict[str, tuple[int, str]] = {}  # the raw text of an answer that could not be parsed
    for g in ShardStore(config.path / "teacher" / ds.split).load().values():
        earlier = first_answer.get(g.example_id)
        if (
            g.template == answer_template
            and g.text is not None
            and (earlier is None or g.sample < earlier[0])
        ):
            first_answer[g.example_id] = (g.sample, g.text)
        t = totals.setdefault(g.example_id, [0, 0, 0.0])
        t[0] += g.usage.prompt_tokens
        t[1] += g.usage.completion_tokens
        t[2] += g.usage.seconds
    usage = {i: Usage(p, c, sec) for i, (p, c, sec) in totals.items()}
    preds = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
                answer = answer_from_dict(row["answer"]) if row["answer"] is not None else None
            except (ValueError, KeyError, TypeError) as err:
                raise DataFormatError(path, lineno, f"not a knowledge record ({err})") from None
            preds.append(
                Prediction(
                    row["id"],
                    f"teacher:{config.teacher.model}",
                    answer,
                    raw=row["grains"].get(answer_template) or first_answer.get(row["id"], (0, ""))[1],
                    rationale=row["knowledge"] or None,
                    parse_error=None if answer is not None else (row["reason"] or "no answer"),
                    usage=usage.get(row["id"]),
                )
            )
    out = config.path / "predictions" / f"teacher-{ds.split}.jsonl"
    _write_predictions(out, preds, overwrite)
    return {"path": str(out), "predictions": len(preds)}


def predict(config: RunConfig, split: str = "test", *, overwrite: bool = False) -> dict:
    return {
        "teacher": predict_teacher(config, split, overwrite=overwrite),
        "student": predict_student(config, split, overwrite=overwrite),
    }


def _systems(config: RunConfig, split: str):
    """The test split and the teacher's and the student's predictions on it, lined up with gold."""
    from cotdistill.eval.predictions import align, read_predictions

    ds = load_one(config, split)
    folder = config.path / "predictions"
    systems = []
    for name in ("teacher", "student"):
        path = folder / f"{name}-{ds.split}.jsonl"
        preds = read_predictions(path, ds.task, ds.examples, source=name)
        systems.append((path, align(ds.examples, preds, source=name)))
    return ds, systems


def evaluate(config: RunConfig, split: str = "test") -> dict:
    """Each system's metrics against gold → ``RUN/report/scores/<system>-<split>.json``."""
    from cotdistill.eval.predictions import system_metrics

    ds, systems = _systems(config, split)
    out = config.path / "report" / "scores"
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for path, system in systems:
        metrics = system_metrics(ds.task, ds.examples, system)
        metrics.update(gold=f"{config.data.dataset} {ds.split}", predictions=str(path))
        (out / f"{system.source}-{ds.split}.json").write_text(
            json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        summary[system.source] = {"f1": metrics["f1"], "coverage": metrics["coverage"]}
    return summary


def compare(config: RunConfig, split: str = "test", params: dict[str, int] | None = None) -> dict:
    """Teacher against student with CIs and significance → ``RUN/report/report.{md,html}`` and metrics.json."""
    from cotdistill.eval.compare import compare_systems
    from cotdistill.eval.report import write_report
    from cotdistill.tasks import TaskSpec

    ds, systems = _systems(config, split)
    e = config.evaluation
    result = compare_systems(
        ds.task,
        ds.examples,
        [system for _, system in systems],
        TaskSpec.from_examples(ds.task, ds.examples).scored_labels,
        resamples=e.resamples,
        seed=e.seed,
        params=params,
    )
    t, st = config.teacher, config.student
    samples = samples_per_template(config, prompt_library(config))
    described = {
        "teacher": f"{t.model} on the {t.backend} backend; templates "
        + ", ".join(f"{n} ×{samples[n]}" for n in t.templates)
        + f"; temperature {t.temperature}"
        + ("; structured JSON answers" if t.structured_output else ""),
        "student": f"{st.kind} student {st.model}; knowledge: {st.knowledge}"
        + (", as teacher tags" if st.teacher_tags else "")
        + ("" if st.knowledge_text or st.kind != "encoder" else ", no knowledge text")
        + (f"; alpha {st.alpha}" if st.kind == "generative" else "")
        + (f"; LoRA r {st.lora_r}" if st.lora_r else "")
        + (f"; {st.epochs:g} epochs" if st.epochs else "")
        + f"; seed {st.seed}",
    }
    provenance = {
        "command": f"cotdistill run {config.path / 'config.yaml'}",
        "gold": f"{config.data.dataset} {ds.split}",
        "systems": {system.source: described.get(system.source, "") for _, system in systems},
        "predictions": {system.source: str(path) for path, system in systems},
        **({"note": config.evaluation.note} if config.evaluation.note else {}),
    }
    files = write_report(result, config.path / "report", provenance)
    return {
        "report": str(files["html"]),
        "markdown": str(files["markdown"]),
        "metrics": str(files["metrics"]),
        "f1": {name: s["f1"] for name, s in result["systems"].items()},
        "pairs": [{k: p[k] for k in ("a", "b", "f1_difference", "p_value")} for p in result["pairs"]],
    }


# ------------------------------------------------------------------------------------ the whole run


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
        raise ConfigError("teacher.rationale_samples must be at least 1 (or null: teacher.samples)")
    if not 0.0 <= k.min_f1 <= 1.0 or not 0.0 <= k.min_agreement <= 1.0:
        raise ConfigError("knowledge.min_f1 and knowledge.min_agreement must lie in [0, 1]")
    if config.student.knowledge not in ("all", "kept", "none"):
        raise ConfigError(f"student.knowledge={config.student.knowledge!r}; expected all, kept or none")
    try:
        kind = _check_kind(config)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if kind != "encoder" and not config.student.knowledge_text:
        raise ConfigError(
            "student.knowledge_text=false is for the encoder student; the generative student's rationale "
            "task is the knowledge text (use student.knowledge=none to train on answers alone)"
        )
    if config.student.teacher_tags and (kind != "encoder" or config.student.knowledge == "none"):
        raise ConfigError(
            "student.teacher_tags reads the teacher's answers into the encoder student: it needs "
            "student.kind=encoder and student.knowledge all or kept (or set student.teacher_tags=false)"
        )
    if config.student.quantization not in ("none", "4bit"):
        raise ConfigError(f"student.quantization={config.student.quantization!r}; expected none or 4bit")
    if kind == "encoder" and config.student.quantization != "none":
        raise ConfigError(
            "student.quantization=4bit (QLoRA) is for the generative student; set kind=generative"
        )
    try:
        if kind == "encoder":
            from cotdistill.student.train import EncoderTrainingConfig

            encoder_config(config, [], task)
            _same_named(config.student, EncoderTrainingConfig, output_dir="-")
        else:
            from cotdistill.student.generative import GenerativeTrainingConfig

            generative_config(config, [], task)
            _same_named(config.student, GenerativeTrainingConfig, output_dir="-")
    except ValueError as err:
        raise ConfigError(f"student: {err}") from None
    st = config.student
    for key in ("epochs", "learning_rate", "batch_size", "eval_batch_size", "gradient_accumulation_steps"):
        value = getattr(st, key)
        if value is not None and value <= 0:
            raise ConfigError(
                f"student.{key}={value}: it must be positive (or null for the student's default)"
            )
    for key in ("warmup_ratio", "weight_decay", "lora_dropout"):
        value = getattr(st, key)
        if value is not None and not 0 <= value < 1:
            raise ConfigError(f"student.{key}={value}: it must lie in [0, 1)")
    if e.resamples < 0:
        raise ConfigError(f"evaluation.resamples={e.resamples}: it must be 0 or more")


def _digest(config: RunConfig, stage: str) -> str:
    tree = to_dict(config)
    part = {k: tree[k] for k in STAGE_INPUTS[stage]}
    return hashlib.sha256(yaml.safe_dump(part, sort_keys=True).encode()).hexdigest()[:16]


class StageLog:
    """``RUN/stages.json``: stage → when it finished, how long it took, what it returned, config digest."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "stages.json"
        self.stages: dict[str, dict] = {}
        if self.path.is_file():
            try:
                self.stages = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError:
                raise DataFormatError(self.path, 1, "not JSON; it records the finished stages") from None

    def done(self, stage: str) -> bool:
        return stage in self.stages

    def mark(self, stage: str, summary: dict, seconds: float, digest: str) -> None:
        self.stages[stage] = {
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 2),
            "config_digest": digest,
            "summary": summary,
        }
        self._save()

    def forget(self, stage: str) -> None:
        self.stages.pop(stage, None)
        self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.stages, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


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


def stale_stages(config: RunConfig, stages: dict) -> list[str]:
    """Finished stages whose inputs in the config have changed since they ran (their outputs are old)."""
    return [name for name, entry in stages.items() if entry.get("config_digest") != _digest(config, name)]


def result_lines(config: RunConfig, stages: dict) -> list[str]:
    """What a finished run found, for the screen: each system's F1 with its interval, the differences with
    their p-values, and the knowledge kept and dropped."""
    lines = []
    metrics_path = config.path / "report" / "metrics.json"
    if metrics_path.is_file():
        m = json.loads(metrics_path.read_text(encoding="utf-8"))
        split = config.evaluation.split
        lines.append(f"{split} F1 ({m.get('examples', '?')} examples, 95% bootstrap intervals):")
        for name, sysm in m["systems"].items():
            lo, hi = sysm["f1_ci"]
            lines.append(f"  {name:<10} {100 * sysm['f1']:6.2f}  [{100 * lo:.2f}, {100 * hi:.2f}]")
        for pair in m.get("pairs", []):
            lo, hi = pair["difference_ci"]
            # b − a is the negated difference; 0.0 - x rather than -x so that a zero prints as +0.00
            lines.append(
                f"  {pair['b']} − {pair['a']}: {0.0 - 100 * pair['f1_difference']:+.2f} F1 "
                f"[{0.0 - 100 * hi:+.2f}, {0.0 - 100 * lo:+.2f}], paired bootstrap p = {pair['p_value']:.3f}"
            )
    counts = (stages.get("knowledge") or {}).get("summary") or {}
    for split, c in counts.items():
        dropped = {k.removeprefix("dropped: "): v for k, v in c.items() if k.startswith("dropped: ")}
        lines.append(
            f"knowledge {split}: {c.get('kept', 0):,} of {c.get('examples', 0):,} kept"
            + (f"; dropped: {', '.join(f'{k} {v:,}' for k, v in dropped.items())}" if dropped else "")
        )
    return lines


def move_aside(run_dir: Path, stages: Sequence[str]) -> Path | None:
    """Move what ``stages`` wrote into one new ``RUN/previous/<n>/`` (same relative paths); returns it."""
    found = [p for stage in stages for pattern in STAGE_OUTPUTS[stage] for p in sorted(run_dir.glob(pattern))]
    if not found:
        return None
    n = 1
    while (run_dir / "previous" / str(n)).exists():
        n += 1
    target = run_dir / "previous" / str(n)
    for p in found:
        dest = target / p.relative_to(run_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(p), str(dest))
    return target


def run(
    config: RunConfig,
    *,
    redo: Sequence[str] = (),
    stop_after: str | None = None,
    say: Callable[[str], None] = print,
    backend=None,
) -> dict:
    """Run every unfinished stage in order (see the module docstring). ``redo`` names stages to run again,
    with every stage after them; ``stop_after`` ends the run after that stage. Returns the stage log."""
    for name in (*redo, *([stop_after] if stop_after else [])):
        if name not in STAGES:
            raise InputError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    validate(config)
    with exclusive(config.path, "this run"):
        write_resolved(config)
        run_dir = config.path
        log = StageLog(run_dir)
        first_redo = min((STAGES.index(s) for s in redo), default=len(STAGES))
        again = [stage for stage in STAGES[first_redo:] if log.done(stage) or stage in redo]
        if again:
            moved = move_aside(run_dir, again)
            for stage in again:
                log.forget(stage)
            if moved:
                say(f"[{', '.join(again)}] to be redone; earlier outputs moved to {moved}")
        check_paths(config, [s for s in STAGES if not log.done(s)])
        splits = None
        params = None
        for stage in STAGES:
            if log.done(stage):
                entry = log.stages[stage]
                stale = stage in stale_stages(config, {stage: entry})
                say(
                    f"[{stage}] finished {entry['finished']}, skipped"
                    + (f" (the config changed since; pass --redo {stage} to run it again)" if stale else "")
                )
                if stage == "train":
                    params = {"student": entry["summary"].get("parameters")}
            else:
                if stage in ("knowledge", "predict", "evaluate", "compare"):
                    moved = move_aside(run_dir, [stage])  # a half-finished earlier attempt
                    if moved:
                        say(f"[{stage}] outputs of an unfinished attempt moved to {moved}")
                say(f"[{stage}] running")
                start = time.perf_counter()
                try:
                    if stage in ("generate", "knowledge") and splits is None:
                        splits = load_splits(config)
                    if stage == "generate":
                        summary = generate(config, splits, backend=backend)
                    elif stage == "knowledge":
                        summary = knowledge(config, splits)
                    elif stage == "train":
                        summary = train(config, resume=True)
                        params = {"student": summary["parameters"]}
                    elif stage == "predict":
                        summary = predict(config, config.evaluation.split)
                    elif stage == "evaluate":
                        summary = evaluate(config, config.evaluation.split)
                    else:
                        summary = compare(config, config.evaluation.split, params=params)
                except Exception as err:
                    raise StageError(
                        f"stage {stage!r} failed: {err.__class__.__name__}: {err}\n"
                        f"  finished stages are kept in {run_dir}; fix the cause and rerun the same command to resume at {stage!r}"
                        f" (or add --redo {stage} to start that stage afresh)"
                    ) from err
                seconds = time.perf_counter() - start
                log.mark(stage, summary, seconds, _digest(config, stage))
                say(f"[{stage}] done in {seconds:.1f} s")
            if stage == stop_after:
                break
        return log.stages
