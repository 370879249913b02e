"""What every stage of one run shares, built once per run: the config, the run folder, the read splits,
the prompt library, the teacher backend, and the summaries of the stages that finished."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cotdistill.distill.backends import make_backend
from cotdistill.errors import InputError
from cotdistill.labelled import pick_labelled
from cotdistill.prompts import PromptLibrary
from cotdistill.readers import DATASETS, DatasetSplit, canonical_split, load_split
from cotdistill.readers.unlabelled import UNLABELLED, read_unlabelled, unlabelled_report
from cotdistill.run.config import RunConfig
from cotdistill.tasks import TaskSpec

logger = logging.getLogger(__name__)


@dataclass
class RunContext:
    """One run's shared state. ``backend`` is a teacher backend given in code (tests, the demo; default: the
    one the config names, made on first use); ``judge`` the teacher of ``student.augment_check``."""

    config: RunConfig
    backend: object | None = None
    judge: object | None = None
    summaries: dict[str, dict] = field(default_factory=dict)  # stage → what it returned (or the log's)
    labelled_ids: frozenset[str] | None = None  # with data.labelled: the training posts that keep gold
    _splits: dict[str, DatasetSplit] = field(default_factory=dict, repr=False)

    @property
    def path(self) -> Path:
        return self.config.path

    def split(self, name: str) -> DatasetSplit:
        """One split as the config reads it, read once per run: ``data.max_examples`` applied; with few
        gold labels (``data.labelled``), the training posts outside the labelled ones without their gold;
        ``unlabelled``: the posts of ``data.unlabelled``."""
        key = UNLABELLED if name == UNLABELLED else canonical_split(name)
        if key not in self._splits:
            self._splits[key] = self._read(key)
        return self._splits[key]

    def _read(self, key: str) -> DatasetSplit:
        d = self.config.data
        if key == UNLABELLED:
            if not d.unlabelled:
                raise InputError("this run has no unlabelled posts: set data.unlabelled=PATH")
            task = DATASETS[d.dataset].task
            examples = read_unlabelled(d.unlabelled, task, d.image_dir)
            clash = sorted({ex.id for ex in examples} & {ex.id for ex in self.split("train").examples})
            if clash:
                raise InputError(
                    f"{len(clash)} posts of data.unlabelled share an id with training posts (first: {clash[0]!r}); "
                    "give them ids of their own"
                )
            return DatasetSplit(
                d.dataset, UNLABELLED, task, examples, unlabelled_report(d.unlabelled, examples)
            )
        ds = load_split(d.dataset, d.data_dir, key, image_dir=d.image_dir)
        limits = {canonical_split(k): v for k, v in d.max_examples.items()}
        if ds.split in limits and limits[ds.split] < len(ds.examples):
            logger.info(
                "data.max_examples: the first %d of %d %s examples", limits[ds.split], len(ds), ds.split
            )
            ds = dataclasses.replace(ds, examples=ds.examples[: limits[ds.split]])
        if key == "train" and d.labelled != "all":
            labelled, unlabelled = pick_labelled(ds.examples, d.labelled, d.labelled_seed)
            self.labelled_ids = frozenset(ex.id for ex in labelled)
            by_id = {ex.id: ex for ex in [*labelled, *unlabelled]}
            ds = dataclasses.replace(ds, examples=[by_id[ex.id] for ex in ds.examples])
        return ds

    @property
    def few_labels(self) -> bool:
        """Whether some training posts are read without gold (``data.labelled``) or come without it
        (``data.unlabelled``)."""
        return self.config.data.labelled != "all" or bool(self.config.data.unlabelled)

    def gold_ids(self) -> frozenset[str] | None:
        """The training posts whose gold the run may read (None: every one of them)."""
        self.split("train")
        return self.labelled_ids

    def splits(self, names: Sequence[str] | None = None) -> dict[str, DatasetSplit]:
        """The named splits (default: ``data.splits``, and ``unlabelled`` with ``data.unlabelled``)."""
        if names is None:
            names = [*self.config.data.splits, *([UNLABELLED] if self.config.data.unlabelled else [])]
        return {(UNLABELLED if n == UNLABELLED else canonical_split(n)): self.split(n) for n in names}

    def spec(self, names: Sequence[str] | None = None) -> TaskSpec:
        """The task over the label set of the named splits' gold (default: ``data.splits``)."""
        splits = self.splits(names)
        first = next(iter(splits.values()))
        spec = TaskSpec.from_examples(first.task, [ex for ds in splits.values() for ex in ds.examples])
        k = self.config.knowledge
        return dataclasses.replace(spec, type_map=self.type_map(), unmapped=k.unmapped_types)

    def type_map(self) -> dict[str, str]:
        """The teacher's free-text types → labels, as the knowledge stage learned them (empty before it, or
        without ``knowledge.learn_types``)."""
        path = self.path / "knowledge" / "type_map.json"
        if not self.config.knowledge.learn_types or not path.is_file():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))

    @cached_property
    def library(self) -> PromptLibrary:
        """The prompt library, built once; an unknown template name fails here, before any model loads."""
        library = PromptLibrary(self.config.teacher.template_dirs)
        for name in self.config.teacher.templates:
            library.get(name)
        return library

    @cached_property
    def samples(self) -> dict[str, int]:
        """How many samples each teacher template gets: ``teacher.samples``, or ``teacher.rationale_samples``
        for the CoT grains when it is set."""
        t = self.config.teacher
        return {
            name: t.samples
            if t.rationale_samples is None or self.library.get(name).kind == "answer"
            else t.rationale_samples
            for name in t.templates
        }

    def teacher(self):
        """The teacher backend: the one given, else the config's, made once."""
        if self.backend is None:
            t = self.config.teacher
            self.backend = make_backend(t.backend, t.model, **t.options)
        return self.backend
