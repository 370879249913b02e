"""Training the generative student with a thin subclass of the Hugging Face Trainer."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from torch import nn

from cotdistill.records import Example
from cotdistill.student.generative.config import (
    GenerativeConfig,
    GenerativeTrainingConfig,
)
from cotdistill.student.generative.data import (
    GenerativeDataset,
    GenerativeFeaturizer,
    PackedDataset,
    chat_items,
    collate,
)
from cotdistill.student.generative.loss import _unwrapped, distill_loss
from cotdistill.student.generative.model import (
    _resolve_vision,
    add_lora,
    load_base_model,
    load_processor,
    save_config,
    tokenizer_of,
)
from cotdistill.student.generative.predict import predict_generative
from cotdistill.student.train import DevF1Trainer, save_best, stop_on_signals, training_arguments
from cotdistill.tasks import TaskSpec

logger = logging.getLogger(__name__)


class GenerativeTrainer(DevF1Trainer):
    """Trainer whose loss is distilling step by step and whose evaluation generates dev answers and
    scores them with the task metric."""

    def __init__(self, *args, gen_config=None, processor=None, dev_examples=(), eval_examples=0, **kw):
        super().__init__(*args, **kw)
        # distill_loss is a mean, not a sum over num_items_in_batch: let the Trainer divide it by the
        # gradient accumulation steps
        self.model_accepts_loss_kwargs = False
        if hasattr(self, "loss_is_scaled_for_ga"):
            self.loss_is_scaled_for_ga = False
        self.gen_config = gen_config
        self.processor = processor
        self.dev_examples = list(dev_examples)[: eval_examples or None]
        self.task = gen_config.task if gen_config is not None else "mner"

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, parts = distill_loss(model, inputs, self.gen_config.alpha)
        return (loss, parts) if return_outputs else loss

    def dev_predictions(self, model) -> list:
        return predict_generative(
            model,
            self.processor,
            self.gen_config,
            self.dev_examples,
            batch_size=self.args.per_device_eval_batch_size,
            progress=False,
        )


def _labels_from(task: str, examples: Sequence[Example]) -> list[str]:
    return list(TaskSpec.from_examples(task, list(examples)).labels)


def train_generative(
    config: GenerativeConfig,
    training: GenerativeTrainingConfig,
    train_examples: Sequence[Example],
    dev_examples: Sequence[Example],
    rationales: dict[str, str] | None = None,
    model: nn.Module | None = None,
    processor=None,
    callbacks: Sequence | None = None,
):
    """Train a generative student; returns (best model by dev F1, processor, log history). The adapter,
    processor and ``cotdistill_student.json`` go to ``<output_dir>/best``."""
    from transformers import set_seed

    if not config.labels:
        config.labels = _labels_from(config.task, train_examples)
    config = _resolve_vision(config)
    set_seed(training.seed)
    processor = processor if processor is not None else load_processor(config)
    if model is None:
        model = load_base_model(config, bf16=training.bf16)
    if config.lora_r > 0 and not hasattr(model, "peft_config"):
        model = add_lora(model, config)
    if training.gradient_checkpointing:
        _unwrapped(model).gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
        model.enable_input_require_grads()  # LoRA inputs need grads through checkpointed blocks
    featurizer = GenerativeFeaturizer(config, processor)
    dataset = GenerativeDataset(featurizer, chat_items(train_examples, rationales, config.alpha))
    train_ds = PackedDataset(dataset, config.max_length) if config.packing else dataset
    pad = tokenizer_of(processor).pad_token_id
    args = training_arguments(training)
    trainer = GenerativeTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=list(dev_examples),  # scored by GenerativeTrainer.evaluate with the task metric
        data_collator=lambda feats: collate(feats, pad),
        gen_config=config,
        processor=processor,
        dev_examples=dev_examples,
        eval_examples=training.eval_examples,
        callbacks=list(callbacks or ()),
    )
    with stop_on_signals(trainer, training.save_steps):
        trainer.train(resume_from_checkpoint=training.resume_from_checkpoint)
    save_best(trainer, training, processor, config, save_config)
    return trainer.model, processor, trainer.state.log_history
