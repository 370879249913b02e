"""What every stage reads: the config's splits (``data.max_examples`` applied), the task spec, the
teacher's templates."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from cotdistill.config import RunConfig
from cotdistill.readers import DatasetSplit, canonical_split, load_split

logger = logging.getLogger(__name__)


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
