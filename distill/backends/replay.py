"""A backend that calls no model: replayed teacher outputs (PGIM's knowledge files, a JSONL file)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cotdistill.errors import InputError
from cotdistill.records import Usage

from .base import Backend, Generation, TeacherRequest

logger = logging.getLogger(__name__)


@dataclass
class ReplayOptions:
    texts: dict | None = None  # {example_id: text}, given in code
    pgim_dir: str | None = None  # a Twitter dataset folder with PGIM's pgim/*.txt
    dataset: str = "twitter2015"  # the dataset pgim_dir holds
    path: str | None = None  # JSONL with id and text fields


class ReplayBackend(Backend):
    """Existing teacher outputs keyed by example id: PGIM's knowledge files or a plain JSONL file.

    ``model`` names the source; options: ``texts`` (a ``{example_id: text}`` mapping), ``pgim_dir`` (a
    Twitter dataset folder with PGIM's ``pgim/*.txt``; ``dataset`` names it), or ``path`` (JSONL with ``id``
    and ``text`` fields, one per line).
    """

    name = "replay"
    Options = ReplayOptions

    def load(self) -> None:
        o: ReplayOptions = self.opts
        texts = o.texts
        if texts is None and o.pgim_dir:
            texts = self._pgim_texts(o.pgim_dir, o.dataset)
        if texts is None:
            path = o.path
            if not path:
                raise InputError("the replay backend needs texts= or path= (a JSONL file of {id, text})")
            texts = {}
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            obj = json.loads(line)
                            texts[str(obj["id"])] = str(obj["text"])
                        except (ValueError, KeyError) as err:
                            raise InputError(
                                f"{path}:{lineno}: expected a JSON object with 'id' and 'text' ({err})"
                            ) from None
        self.texts: dict[str, str] = dict(texts)

    @staticmethod
    def _pgim_texts(data_dir: str, dataset: str) -> dict[str, str]:
        """PGIM's knowledge for every split of a Twitter dataset, matched to posts by order and content."""
        from cotdistill.readers import align_knowledge, load_split, read_pgim_knowledge

        texts: dict[str, str] = {}
        for split in ("train", "valid", "test"):
            path = Path(data_dir) / "pgim" / f"{split}.txt"
            if not path.is_file():
                continue
            alignment = align_knowledge(
                load_split(dataset, data_dir, split).examples, read_pgim_knowledge(path)
            )
            if alignment.missing_examples or alignment.unmatched_blocks:
                logger.warning("PGIM %s %s: %s", dataset, split, alignment.summary())
            texts.update(alignment.knowledge)
        if not texts:
            raise InputError(f"no PGIM knowledge files (pgim/train.txt, ...) under {data_dir}")
        return texts

    def generate(self, requests: Sequence[TeacherRequest]) -> list[Generation]:
        return [
            self.made(r, self.texts[r.example_id], Usage())
            if r.example_id in self.texts
            else self.failed(r, f"no replayed text for example {r.example_id}")
            for r in requests
        ]
