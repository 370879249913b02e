"""Training the encoder student with a thin subclass of the Hugging Face Trainer.

The Trainer runs the loop (optimizer, schedule, bf16, gradient accumulation, checkpoints, resume,
``accelerate launch`` / torchrun); the subclass only computes the student's loss and scores the dev split
with the task metric after each epoch, so the best checkpoint is chosen by dev F1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import ProgressCallback

from cotdistill.errors import Interrupted
from cotdistill.files import write_atomic
from cotdistill.labelled import without_gold
from cotdistill.models import from_pretrained
from cotdistill.records import Answer, Example
from cotdistill.student import StudentConfigError
from cotdistill.student.card import write_model_card
from cotdistill.student.config import EncoderTrainingConfig, TrainingLoopConfig
from cotdistill.student.encoder import (
    EncoderConfig,
    EncoderDataset,
    EncoderFeaturizer,
    EncoderTagger,
    collate,
    decode_predictions,
    save_config,
)
from cotdistill.student.teacher_free import FrozenTeacher, entity_substitution
from cotdistill.tasks import get_task, score_answers

logger = logging.getLogger(__name__)


def training_arguments(training: TrainingLoopConfig) -> TrainingArguments:
    """TrainingArguments shared by both students: a dev evaluation and a checkpoint every epoch, the best
    epoch by dev F1 kept."""
    return TrainingArguments(
        output_dir=training.output_dir,
        # without a GPU, torchrun/accelerate launch still run data-parallel: several CPU processes over gloo
        use_cpu=not torch.cuda.is_available(),
        num_train_epochs=training.epochs,
        max_steps=training.max_steps if training.max_steps > 0 else -1,
        learning_rate=training.learning_rate,
        per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=training.eval_batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        warmup_steps=training.warmup_ratio,  # a float below 1 is a share of the training steps
        weight_decay=training.weight_decay,
        seed=training.seed,
        bf16=training.bf16,
        eval_strategy="steps" if training.eval_steps > 0 else "epoch",
        save_strategy="steps" if training.eval_steps > 0 else "epoch",
        eval_steps=training.eval_steps or None,
        save_steps=training.eval_steps or None,
        save_total_limit=training.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        greater_is_better=True,
        logging_steps=training.logging_steps,
        report_to=list(training.report_to) or "none",
        dataloader_num_workers=training.dataloader_num_workers,
        train_sampling_strategy=training.train_sampling,
        remove_unused_columns=False,
    )


class TrainingStopped(Interrupted):
    """Training stopped on SIGINT or SIGTERM after a checkpoint was saved; the message says where."""


class StopOnSignal(TrainerCallback):
    """Ends training at the next step boundary once a stop signal came, with a checkpoint saved there; with
    ``save_steps`` > 0 also saves a checkpoint every that many steps (what a kill -9 can lose)."""

    def __init__(self, save_steps: int = 0) -> None:
        self.signal: str | None = None
        self.save_steps = save_steps

    def on_step_end(self, args, state, control, **kwargs):
        if self.save_steps > 0 and state.global_step % self.save_steps == 0:
            control.should_save = True
        if self.signal is not None:
            control.should_save = True
            control.should_training_stop = True
        return control


@contextlib.contextmanager
def stop_on_signals(trainer: Trainer, save_steps: int = 0):
    """While the block runs, SIGINT (Ctrl-C) and SIGTERM (what a scheduler sends) let the current step end,
    save a resumable checkpoint and stop training; a second signal stops at once. Afterwards raises
    ``TrainingStopped`` naming the checkpoint. (Signals are only caught in the main thread.)"""
    stop = StopOnSignal(save_steps)
    trainer.add_callback(stop)

    def handler(signum, frame):
        if stop.signal is not None:
            raise KeyboardInterrupt
        stop.signal = signal.Signals(signum).name
        logger.warning(
            "%s: stopping after this step, with a checkpoint (send it again to stop at once)", stop.signal
        )

    caught = (signal.SIGINT, signal.SIGTERM)
    main = threading.current_thread() is threading.main_thread()
    before = {s: signal.signal(s, handler) for s in caught} if main else {}
    try:
        yield stop
    finally:
        for s, h in before.items():
            signal.signal(s, h)
        trainer.remove_callback(stop)
    if stop.signal is not None:
        state = trainer.state
        saved = Path(trainer.args.output_dir) / f"checkpoint-{state.global_step}"
        raise TrainingStopped(
            f"training stopped by {stop.signal} at step {state.global_step} of {state.max_steps}; "
            f"the checkpoint is {saved}; training resumes from it when run again with --resume "
            "(cotdistill run resumes it by itself)"
        )


def save_best(
    trainer: Trainer,
    training: TrainingLoopConfig,
    processor,
    config,
    write_config: Callable[[Any, Path], None],
) -> Path:
    """Save a trained student to ``<output_dir>/best``: the best model by dev F1 (the Trainer reloaded it at
    the end), its tokenizer or processor, the student's config (``write_config``, the student's own
    ``save_config``) and the training config, so that the folder loads on its own and says how it was made.
    Returns the folder."""
    out = Path(training.output_dir) / "best"
    trainer.save_model(str(out))
    processor.save_pretrained(str(out))
    write_config(config, out)
    write_atomic(out / "training_config.json", json.dumps(asdict(training), indent=2) + "\n")
    kind = "encoder" if isinstance(config, EncoderConfig) else "generative"
    write_model_card(out, kind, config, training, trainer.state.best_metric)
    return out


class QuietProgress(ProgressCallback):
    """The training bar, with one short line per evaluation under it ("epoch 2: dev F1 71.20 (P 70.10, R
    72.30)") instead of the Trainer's dicts; every logged dict still goes to the log (and to the trackers)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        logger.info("step %d: %s", state.global_step, {k: v for k, v in logs.items() if k != "total_flos"})
        if state.is_world_process_zero and self.training_bar is not None and "eval_f1" in logs:
            self.training_bar.write(
                f"epoch {state.epoch:g}: dev F1 {100 * logs['eval_f1']:.2f} "
                f"(P {100 * logs['eval_precision']:.2f}, R {100 * logs['eval_recall']:.2f})"
            )


class DevF1Trainer(Trainer):
    """The Trainer both students use: ``evaluate()`` predicts the dev examples with the student's own
    ``dev_predictions()`` and logs the task metric (so the best checkpoint is the best dev F1)."""

    task: str
    dev_examples: list

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.args.disable_tqdm:
            self.remove_callback(ProgressCallback)
            self.add_callback(QuietProgress)

    def dev_predictions(self, model) -> list:
        """Prediction records for ``self.dev_examples``, in order."""
        raise NotImplementedError

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict:
        model = self.accelerator.unwrap_model(self.model)
        preds = self.dev_predictions(model)
        by_id = {p.id: p.answer for p in preds}
        scores = score_answers(
            self.task, [ex.gold for ex in self.dev_examples], [by_id.get(ex.id) for ex in self.dev_examples]
        )
        metrics = {f"{metric_key_prefix}_{k}": scores[k] for k in ("precision", "recall", "f1")}
        metrics[f"{metric_key_prefix}_parse_failures"] = sum(p.answer is None for p in preds)
        metrics["epoch"] = self.state.epoch
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        model.train()
        return metrics


class EncoderTrainer(DevF1Trainer):
    """Trainer whose loss is the student's own and whose evaluation is the task metric on dev examples."""

    def __init__(
        self,
        *args,
        dev_examples: Sequence[Example] = (),
        dev_knowledge: dict[str, str] | None = None,
        dev_teacher_answers: dict[str, Answer] | None = None,
        featurizer: EncoderFeaturizer | None = None,
        frozen_teacher=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.frozen_teacher = frozen_teacher
        self.dev_examples = list(dev_examples)
        self.dev_knowledge = dev_knowledge
        self.dev_teacher_answers = dev_teacher_answers
        self.featurizer = featurizer
        self.task = featurizer.config.task if featurizer is not None else "mner"

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.frozen_teacher is not None and "kd_input_ids" in inputs:
            inputs = dict(inputs)
            inputs["soft_targets"] = self.frozen_teacher.soft_targets(inputs)
        out = model(**inputs)
        return (out["loss"], out) if return_outputs else out["loss"]

    def dev_predictions(self, model) -> list:
        return decode_predictions(
            model,
            self.featurizer,
            self.dev_examples,
            self.dev_knowledge,
            batch_size=self.args.per_device_eval_batch_size,
            teacher_answers=self.dev_teacher_answers,
        )


def train_encoder(
    config: EncoderConfig,
    training: EncoderTrainingConfig,
    train_examples: Sequence[Example],
    dev_examples: Sequence[Example],
    knowledge: dict[str, str] | None = None,
    tokenizer=None,
    encoder: torch.nn.Module | None = None,
    teacher_answers: dict[str, Answer] | None = None,
    augment_check: Callable[[list[Example]], list[Example]] | None = None,
    unlabeled_examples: Sequence[Example] = (),
) -> tuple[EncoderTagger, EncoderFeaturizer, list[dict]]:
    """Train an encoder student; returns the best model by dev F1, its featurizer and the log history.

    ``knowledge`` (example id → knowledge text) and ``teacher_answers`` (example id → the teacher's parsed
    answer, read when ``config.teacher_tags``) cover the training and dev examples. ``config.labels`` is
    filled from the training data when empty. ``augment_check`` takes the entity-substituted copies
    (``config.augment_copies``) and returns those to keep (the train stage asks the teacher whether each is
    plausible). ``unlabeled_examples`` are posts without gold labels (any gold they carry is dropped): they
    train through the soft targets of ``config.distill_from`` alone, read with their entries in ``knowledge``
    and ``teacher_answers``. ``tokenizer``/``encoder`` may be given directly (tests build tiny ones); otherwise both load
    from ``config.model``.
    """
    if not config.labels:
        plugin = get_task(config.task)
        config.labels = sorted({lab for ex in train_examples for lab in plugin.labels_of(ex.gold) if lab})
    set_seed(training.seed)
    tokenizer = tokenizer or from_pretrained(
        AutoTokenizer, config.model, trust_remote_code=config.trust_remote_code
    )
    featurizer = EncoderFeaturizer(config, tokenizer)
    model = EncoderTagger(config, encoder=encoder)
    if config.teacher_tags and not teacher_answers:
        raise StudentConfigError(
            "teacher_tags=True but no teacher answers were given: pass teacher_answers (example id → the "
            "teacher's parsed answer), or set teacher_tags=False"
        )
    frozen = None
    train_examples = list(train_examples)
    unlabeled = _unlabeled_posts(config, train_examples, unlabeled_examples, teacher_answers)
    if config.augment_copies:
        extra, moved = _entity_copies(
            train_examples, config.augment_copies, training.seed, teacher_answers, augment_check
        )
        train_examples += extra
        teacher_answers = {**(teacher_answers or {}), **moved}
    if config.distill_from:
        frozen = FrozenTeacher(config.distill_from, config.labels)
    if config.aux_teacher_tags and not teacher_answers:
        raise StudentConfigError(
            "aux_teacher_tags=True but no teacher answers were given: pass teacher_answers"
        )
    train_ds = EncoderDataset(
        featurizer,
        train_examples,
        knowledge,
        train=True,
        teacher_answers=teacher_answers,
        frozen_teacher=frozen,
        unlabeled=unlabeled,
    )
    args = training_arguments(training)
    pad = tokenizer.pad_token_id or 0
    trainer = EncoderTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=list(dev_examples),  # scored by EncoderTrainer.evaluate with the task metric
        data_collator=lambda feats: collate(feats, pad),
        dev_examples=dev_examples,
        dev_knowledge=knowledge,
        dev_teacher_answers=teacher_answers,
        featurizer=featurizer,
        frozen_teacher=frozen,
    )
    with stop_on_signals(trainer, training.save_steps):
        trainer.train(resume_from_checkpoint=training.resume_from_checkpoint)
    save_best(trainer, training, tokenizer, config, save_config)
    return model, featurizer, trainer.state.log_history


def _unlabeled_posts(
    config: EncoderConfig,
    train_examples: list[Example],
    unlabeled_examples: Sequence[Example],
    teacher_answers: dict[str, Answer] | None,
) -> list[Example]:
    """The posts without gold labels, their gold dropped, checked: they need a frozen tagger to learn from,
    and ids of their own (an id is how knowledge and teacher answers find their post)."""
    unlabeled = [without_gold(ex) for ex in unlabeled_examples]
    if not unlabeled:
        return unlabeled
    if not config.distill_from or not config.tagger:
        raise StudentConfigError(
            f"{len(unlabeled)} posts without gold labels: they train only through a frozen student's soft "
            "targets over the post's words, so set distill_from (a tagging task)"
        )
    clash = sorted({ex.id for ex in train_examples} & {ex.id for ex in unlabeled})
    if clash:
        raise StudentConfigError(
            f"{len(clash)} posts without gold labels share an id with training posts (first: {clash[0]!r}); "
            "give them ids of their own"
        )
    read = sum(ex.id in (teacher_answers or {}) for ex in unlabeled)
    logger.info("%d posts without gold labels, %d with a teacher answer", len(unlabeled), read)
    return unlabeled


def _entity_copies(
    train_examples: list[Example],
    copies: int,
    seed: int,
    teacher_answers: dict[str, Answer] | None,
    augment_check: Callable[[list[Example]], list[Example]] | None,
) -> tuple[list[Example], dict[str, Answer]]:
    """Entity-substituted copies of the training posts, and the teacher answers moved onto them; with
    ``augment_check``, only the copies it keeps (and their answers)."""
    extra, moved = entity_substitution(train_examples, copies, seed, teacher_answers)
    logger.info("entity substitution: %d copies of %d posts", len(extra), len(train_examples))
    if augment_check is not None:
        made = len(extra)
        extra = augment_check(extra)
        kept_ids = {ex.id for ex in extra}
        moved = {i: a for i, a in moved.items() if i in kept_ids}
        logger.info("plausibility check: %d of %d copies kept", len(extra), made)
    return extra, moved
