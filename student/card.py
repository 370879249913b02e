"""The model card (``README.md``) saved beside every trained student, as the Hub expects one: YAML metadata
(base model, task, tags, the dev score as model-index results) and a body that says what the student reads
at test time, how to load it and how it was trained."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from cotdistill.files import write_atomic

_TASKS = {"mner": "token-classification", "mre": "text-classification", "mae": "token-classification"}
_NAMES = {
    "mner": "multimodal named entity recognition",
    "mre": "multimodal relation extraction",
    "mae": "multimodal attribute extraction",
}


def reads_at_test_time(kind: str, config) -> str:
    """What the student needs to answer a post: the post alone, or the teacher's output as well."""
    if kind == "encoder" and getattr(config, "teacher_tags", False):
        return "the post and the teacher's answer (the teacher must run at test time too)"
    if kind == "encoder" and getattr(config, "use_knowledge", False):
        return "the post and the teacher's knowledge text (the teacher must run at test time too)"
    return "the post alone" + (" and its image" if getattr(config, "vision", False) else "")


def _load_snippet(kind: str) -> str:
    if kind == "encoder":
        return (
            "from cotdistill.student.encoder import decode_predictions, load_encoder_student\n"
            'model, featurizer = load_encoder_student("PATH/TO/THIS/FOLDER")\n'
            "predictions = decode_predictions(model, featurizer, examples, None)  # cotdistill Example records"
        )
    return (
        "from cotdistill.student.generative.model import load_generative_student\n"
        'model, processor, config = load_generative_student("PATH/TO/THIS/FOLDER")'
    )


def model_card(kind: str, config, training, best_dev_f1: float | None, dataset: str | None = None):
    """A ``huggingface_hub.ModelCard`` for a student saved with ``config`` and ``training``."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    task = getattr(config, "task", "mner")
    results = (
        [
            EvalResult(
                task_type=_TASKS.get(task, "token-classification"),
                dataset_type=dataset or "custom",
                dataset_name=dataset or "dev split",
                dataset_split="validation",
                metric_type="f1",
                metric_value=round(100 * best_dev_f1, 2),
            )
        ]
        if best_dev_f1 is not None
        else None
    )
    data = ModelCardData(
        base_model=str(config.model)
        if "/" in str(config.model) and not Path(str(config.model)).exists()
        else None,
        library_name="cotdistill",
        pipeline_tag=_TASKS.get(task),
        tags=["cotdistill", "knowledge-distillation", "chain-of-thought", task, f"{kind}-student"],
        model_name=f"cotdistill {kind} student ({task})",
        eval_results=results,
    )
    settings = json.dumps({"student": asdict(config), "training": asdict(training)}, indent=2, default=str)
    body = f"""
# cotdistill {kind} student: {_NAMES.get(task, task)}

Distilled with [cotdistill](https://pypi.org/project/cotdistill/) from a teacher's chain-of-thought knowledge
into `{config.model}`.

- **Reads at test time:** {reads_at_test_time(kind, config)}.
- **Labels:** {", ".join(getattr(config, "labels", []) or []) or "see cotdistill_student.json"}.
- **Best dev F1:** {"–" if best_dev_f1 is None else f"{100 * best_dev_f1:.2f}"} (the checkpoint kept).

## Use

```python
{_load_snippet(kind)}
```

or from the command line: `cotdistill predict CONFIG --split test` with `student.model` set to this folder.

## Training

```json
{settings}
```
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_model_card(out: str | Path, kind: str, config, training, best_dev_f1: float | None) -> Path:
    """``README.md`` in the student's folder (written whole)."""
    card = model_card(kind, config, training, best_dev_f1)
    return write_atomic(Path(out) / "README.md", str(card))
