"""The scoring stages: both systems' predictions, ``evaluate`` (metrics per system) and ``compare``
(intervals, significance, the report)."""

from __future__ import annotations

import json
import logging

from cotdistill.config import RunConfig
from cotdistill.stages.common import load_one, prompt_library, samples_per_template
from cotdistill.stages.student import predict_student
from cotdistill.stages.teacher import predict_teacher

logger = logging.getLogger(__name__)


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
        + (", as teacher tags" if getattr(st, "teacher_tags", False) else "")
        + ("" if getattr(st, "knowledge_text", True) else ", no knowledge text")
        + (f"; alpha {st.alpha}" if st.kind == "generative" else "")
        + (f"; LoRA r {st.lora_r}" if st.lora_r else "")
        + f"; {st.epochs:g} epochs"
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
