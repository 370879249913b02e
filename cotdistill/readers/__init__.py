"""Readers for the standard multimodal IE datasets, in their native, as-distributed formats.

``load_split(name, data_dir, split)`` reads one split of a named dataset into Examples;
``to_hf_dataset`` turns them into a ``datasets.Dataset`` with a lazy ``Image`` feature.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cotdistill.errors import InputError
from cotdistill.readers.common import DataFormatError, ImageResolver, ReadReport, read_lines
from cotdistill.readers.conll import read_conll, write_conll
from cotdistill.readers.jsonfiles import read_mae, read_wikidiverse
from cotdistill.readers.mepave import read_label_vocab, read_mepave
from cotdistill.readers.mnre import read_mnre
from cotdistill.readers.pgim import align_knowledge, read_captions, read_pgim_knowledge
from cotdistill.records import Example

__all__ = [
    "DATASETS",
    "SPLITS",
    "DataFormatError",
    "DatasetInfo",
    "DatasetSplit",
    "ImageResolver",
    "ReadReport",
    "align_knowledge",
    "canonical_split",
    "load_split",
    "read_captions",
    "read_conll",
    "read_lines",
    "read_pgim_knowledge",
    "to_hf_dataset",
    "write_conll",
]

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "valid": "valid",
    "val": "valid",
    "dev": "valid",
    "validation": "valid",
    "test": "test",
}


class DatasetError(InputError):
    """A dataset name, split or directory cannot be used; the message says what would work."""


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """Where a dataset's files are and how to read them.

    ``files`` maps each split to the candidate file names, relative to the data directory, first found wins.
    """

    name: str
    task: str
    reader: Callable[..., list[Example]]
    files: dict[str, tuple[str, ...]]
    captions: tuple[str, ...] = ()
    label_vocab: tuple[str, ...] = ()


def _conll_files() -> dict[str, tuple[str, ...]]:
    return {"train": ("train.txt",), "valid": ("valid.txt", "dev.txt", "val.txt"), "test": ("test.txt",)}


def _json_files() -> dict[str, tuple[str, ...]]:
    return {
        split: tuple(f"{stem}{ext}" for stem in names for ext in (".json", ".jsonl"))
        for split, names in {"train": ("train",), "valid": ("valid", "val", "dev"), "test": ("test",)}.items()
    }


DATASETS: dict[str, DatasetInfo] = {
    "twitter2015": DatasetInfo(
        "twitter2015", "mner", read_conll, _conll_files(), captions=("pgim/BLIP2_15.txt",)
    ),
    "twitter2017": DatasetInfo(
        "twitter2017", "mner", read_conll, _conll_files(), captions=("pgim/BLIP2_17.txt",)
    ),
    "snap": DatasetInfo("snap", "mner", read_conll, _conll_files()),
    "wikidiverse": DatasetInfo("wikidiverse", "mner", read_wikidiverse, _json_files()),
    "mnre": DatasetInfo(
        "mnre",
        "mre",
        read_mnre,
        {
            "train": ("mnre_train.txt",),
            "valid": ("mnre_val .txt", "mnre_val.txt"),
            "test": ("mnre_test.txt",),
        },
    ),
    "mnre-v1": DatasetInfo(
        "mnre-v1",
        "mre",
        read_mnre,
        {
            split: (f"ours_{stem}.txt", f"txt/ours_{stem}.txt", f"v1/txt/ours_{stem}.txt")
            for split, stem in {"train": "train", "valid": "val", "test": "test"}.items()
        },
    ),
    "mepave": DatasetInfo(
        "mepave",
        "mae",
        read_mepave,
        {
            split: (f"jdai.jave.fashion.{split}", f"jdai.jave.fashion.{split}.sample")
            for split in ("train", "valid", "test")
        },
        label_vocab=("vocab.label",),
    ),
    "mae": DatasetInfo("mae", "mae", read_mae, _json_files()),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def canonical_split(split: str) -> str:
    if split not in _SPLIT_ALIASES:
        raise DatasetError(f"unknown split {split!r}; expected one of: {', '.join(SPLITS)} (or val/dev)")
    return _SPLIT_ALIASES[split]


def _first_existing(data_dir: Path, candidates: tuple[str, ...]) -> Path | None:
    return next((data_dir / c for c in candidates if (data_dir / c).is_file()), None)


@dataclass(slots=True)
class DatasetSplit:
    """One split of one dataset, with what was noticed while reading it."""

    name: str
    split: str
    task: str
    examples: list[Example]
    report: ReadReport = field(default_factory=ReadReport)

    def __len__(self) -> int:
        return len(self.examples)


def load_split(
    name: str,
    data_dir: str | os.PathLike,
    split: str,
    image_dir: str | os.PathLike | None = None,
) -> DatasetSplit:
    """Read one split of a standard dataset from its native files.

    Args:
        name: a key of ``DATASETS`` (``twitter2015``, ``mnre``, ...).
        data_dir: the folder holding the dataset's files as distributed.
        split: ``train``, ``valid`` (or ``val``/``dev``) or ``test``.
        image_dir: where the images are; ``<data_dir>/images`` by default. Missing images are counted,
            not errors.
    """
    info = dataset_info(name)
    split = canonical_split(split)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(
            f"data directory {data_dir} does not exist; pass the folder holding the {name} files"
        )
    path = _first_existing(data_dir, info.files[split])
    if path is None:
        tried = ", ".join(repr(c) for c in info.files[split])
        raise DatasetError(f"no {split} file for {name} in {data_dir}; looked for {tried}")
    image_dir = Path(image_dir) if image_dir is not None else data_dir / "images"
    images = ImageResolver(image_dir)
    report = ReadReport(files=[str(path)], image_dir=str(image_dir))
    kwargs: dict = {}
    if info.label_vocab:
        vocab = _first_existing(data_dir, info.label_vocab)
        if vocab is not None:
            kwargs["labels"] = read_label_vocab(vocab)
            report.files.append(str(vocab))
    examples = info.reader(path, split=split, images=images, report=report, **kwargs)
    if not examples:
        raise DataFormatError(
            path, None, f"no {name} examples in the file; expected {split} records in the {name} format"
        )
    first: dict[str, Example] = {}
    for ex in examples:
        if ex.id in first:
            seen = first[ex.id].meta.get("line")
            raise DataFormatError(
                path,
                ex.meta.get("line"),
                f"example id {ex.id!r} appears twice"
                + (f" (first at line {seen})" if seen else "")
                + "; ids must be unique, or the example would be scored twice",
            )
        first[ex.id] = ex
    captions_path = _first_existing(data_dir, info.captions) if info.captions else None
    if captions_path is not None:
        captions = read_captions(captions_path)
        report.files.append(str(captions_path))
        with_caption = 0
        for ex in examples:
            caption = captions.get(str(ex.meta.get("image_id")))
            if caption is not None:
                ex.meta["caption"] = caption
                with_caption += 1
        report.note(f"{with_caption}/{len(examples)} {split} posts have a caption from {captions_path.name}")
    report.images_found, report.images_missing = images.found, images.missing
    report.images_refused = images.refused
    if images.refused:
        report.note(
            f"{images.refused} images refused in {image_dir} (not a regular file, or over the size cap); "
            "those posts are read without their image"
        )
    if images.missing:
        where = image_dir if image_dir.is_dir() else f"{image_dir} (not a directory)"
        report.note(f"{images.missing} of {images.found + images.missing} images missing in {where}")
    return DatasetSplit(name=name, split=split, task=info.task, examples=examples, report=report)


def to_hf_dataset(examples: list[Example]):
    """A ``datasets.Dataset`` of the examples: plain columns, the gold answer and meta as JSON, and an
    ``Image`` feature that opens each file only when a row is read (None where the image is missing)."""
    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "task": datasets.Value("string"),
            "text": datasets.Value("string"),
            "tokens": datasets.List(datasets.Value("string")),
            "image": datasets.Image(),
            "image_path": datasets.Value("string"),
            "gold": datasets.Value("string"),
            "meta": datasets.Value("string"),
        }
    )
    columns: dict[str, list] = {k: [] for k in features}
    for ex in examples:
        columns["id"].append(ex.id)
        columns["task"].append(ex.task)
        columns["text"].append(ex.text)
        columns["tokens"].append(list(ex.tokens) if ex.tokens is not None else None)
        columns["image"].append({"path": ex.image, "bytes": None} if ex.image else None)
        columns["image_path"].append(ex.image)
        columns["gold"].append(json.dumps(ex.gold.to_dict(), ensure_ascii=False))
        columns["meta"].append(json.dumps(ex.meta, ensure_ascii=False))
    return datasets.Dataset.from_dict(columns, features=features)


def examples_from_hf_dataset(ds) -> list[Example]:
    """The inverse of ``to_hf_dataset``."""
    out = []
    for row in ds.select_columns(["id", "task", "text", "tokens", "image_path", "gold", "meta"]):
        out.append(
            Example.from_dict(
                {
                    "id": row["id"],
                    "task": row["task"],
                    "text": row["text"],
                    "tokens": row["tokens"],
                    "image": row["image_path"],
                    "gold": json.loads(row["gold"]),
                    "meta": json.loads(row["meta"]),
                }
            )
        )
    return out
