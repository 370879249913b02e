"""The ``cotdistill`` command line.

Every error that comes from bad input (a file, a name, a flag) is printed as one line and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path

from cotdistill.readers import DATASETS, SPLITS, DatasetSplit, canonical_split, load_split, to_hf_dataset
from cotdistill.readers.common import DataFormatError

logger = logging.getLogger("cotdistill")


class UsageError(ValueError):
    """A command line that cannot be carried out as given."""


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=list(DATASETS), metavar="NAME", help=f"one of: {', '.join(DATASETS)}")
    p.add_argument(
        "--data-dir", required=True, type=Path, help="folder holding the dataset's files as distributed"
    )
    p.add_argument(
        "--image-dir", type=Path, default=None, help="folder of the images (default: DATA_DIR/images)"
    )
    p.add_argument(
        "--split",
        action="append",
        choices=[*SPLITS, "val", "dev"],
        help="split(s) to read (default: all present)",
    )


def _load_splits(args) -> list[DatasetSplit]:
    info = DATASETS[args.name]
    if not args.data_dir.is_dir():
        raise UsageError(
            f"--data-dir {args.data_dir} is not a directory; pass the folder holding the {args.name} files"
        )
    wanted = [canonical_split(s) for s in args.split] if args.split else list(SPLITS)
    out = []
    for split in dict.fromkeys(wanted):
        present = any((args.data_dir / c).is_file() for c in info.files[split])
        if args.split is None and not present:
            continue  # "all present": a dataset may ship without one split
        out.append(load_split(args.name, args.data_dir, split, image_dir=args.image_dir))
    if not out:
        names = sorted({c for files in info.files.values() for c in files})
        raise UsageError(
            f"no {args.name} split files in {args.data_dir}; expected some of: {', '.join(names)}"
        )
    return out


def split_stats(ds: DatasetSplit) -> dict:
    """Counts of one split: posts, tokens, labels (entities per type, records per relation, values per
    attribute) and images found/missing."""
    labels: Counter = Counter()
    tokens = 0
    for ex in ds.examples:
        tokens += len(ex.tokens) if ex.tokens is not None else len(ex.text)
        gold = ex.gold
        if ds.task == "mner":
            labels.update(e.type for e in gold.entities)  # type: ignore[union-attr]
        elif ds.task == "mre":
            labels.update(r.label for r in gold.relations)  # type: ignore[union-attr]
        else:
            labels.update(v.attribute for v in gold.values)  # type: ignore[union-attr]
    return {
        "split": ds.split,
        "examples": len(ds.examples),
        "tokens" if ds.task != "mae" else "characters": tokens,
        "labels": dict(sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))),
        "label_total": sum(labels.values()),
        "images_found": ds.report.images_found,
        "images_missing": ds.report.images_missing,
        "notes": ds.report.notes,
    }


def cmd_data_stats(args) -> int:
    splits = _load_splits(args)
    stats = [split_stats(s) for s in splits]
    if args.json:
        print(
            json.dumps(
                {"dataset": args.name, "task": splits[0].task, "splits": stats}, ensure_ascii=False, indent=2
            )
        )
        return 0
    unit = {"mner": "entities", "mre": "records", "mae": "values"}[splits[0].task]
    print(f"{args.name} ({splits[0].task}) in {args.data_dir}")
    for s in stats:
        size = s.get("tokens", s.get("characters"))
        size_name = "tokens" if "tokens" in s else "characters"
        print(
            f"  {s['split']:<6} {s['examples']:>7,} examples  {size:>9,} {size_name}  {s['label_total']:>7,} {unit}"
            f"  images {s['images_found']:,} found / {s['images_missing']:,} missing"
        )
        per = ", ".join(f"{k} {v:,}" for k, v in s["labels"].items())
        print(f"         {unit} by label ({len(s['labels'])}): {per}")
    return 0


def cmd_data_export(args) -> int:
    import datasets

    splits = _load_splits(args)
    out: Path = args.out
    arrow_dir = out / "arrow"
    targets = [arrow_dir] + [out / f"{s.split}.jsonl" for s in splits]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise UsageError(
            f"{', '.join(existing)} already exist; cotdistill never overwrites results: choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    dd = datasets.DatasetDict({s.split: to_hf_dataset(s.examples) for s in splits})
    dd.save_to_disk(str(arrow_dir))
    for s in splits:
        with open(out / f"{s.split}.jsonl", "w", encoding="utf-8") as f:
            for ex in s.examples:
                f.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")
    print(
        f"wrote {sum(len(s) for s in splits):,} examples of {args.name} to {arrow_dir} and {out}/<split>.jsonl"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cotdistill", description="Chain-of-thought distillation for multimodal IE."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and notes")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="read, count and export the standard datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    stats = data_sub.add_parser("stats", help="per split: examples, tokens, labels, images found/missing")
    _add_dataset_args(stats)
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(func=cmd_data_stats)
    export = data_sub.add_parser("export", help="write the Arrow dataset and JSONL files")
    _add_dataset_args(export)
    export.add_argument(
        "--out", required=True, type=Path, help="output folder (must not hold an earlier export)"
    )
    export.set_defaults(func=cmd_data_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except (DataFormatError, UsageError, ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"cotdistill: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
