"""The ``cotdistill`` command line.

Every error that comes from bad input (a file, a name, a flag) is printed as one line and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from pathlib import Path

from cotdistill.errors import CotdistillError, InputError
from cotdistill.eval.scoring import label_counts
from cotdistill.locking import exclusive
from cotdistill.pipeline import STAGES
from cotdistill.readers import DATASETS, SPLITS, DatasetSplit, canonical_split, load_split, to_hf_dataset
from cotdistill.readers.common import DataFormatError
from cotdistill.tasks import TaskSpec, get_task

logger = logging.getLogger("cotdistill")


class UsageError(InputError):
    """A command line that cannot be carried out as given."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


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
    labels = label_counts(ds.task, [ex.gold for ex in ds.examples])
    tokens = sum(len(ex.tokens) if ex.tokens is not None else len(ex.text) for ex in ds.examples)
    return {
        "split": ds.split,
        "examples": len(ds.examples),
        get_task(ds.task).unit: tokens,
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


def _add_gold_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", choices=list(DATASETS), metavar="NAME", help=f"gold dataset: {', '.join(DATASETS)}"
    )
    p.add_argument("--data-dir", type=Path, help="folder holding the dataset's files as distributed")
    p.add_argument(
        "--image-dir", type=Path, default=None, help="folder of the images (default: DATA_DIR/images)"
    )
    p.add_argument("--split", default="test", help="gold split (default: test)")
    p.add_argument(
        "--gold",
        type=Path,
        default=None,
        help="instead of --dataset/--data-dir: an Example JSONL file (cotdistill data export)",
    )


def _load_gold(args) -> tuple[str, list, str]:
    """(task, gold examples, description) from --gold or --dataset/--data-dir/--split."""
    from cotdistill.records import Example

    if args.gold is not None:
        if not args.gold.is_file():
            raise UsageError(f"--gold {args.gold} does not exist")
        examples = []
        with open(args.gold, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        examples.append(Example.from_dict(json.loads(line)))
                    except (ValueError, TypeError) as err:
                        raise DataFormatError(args.gold, lineno, f"not an Example record ({err})") from None
        if not examples:
            raise UsageError(f"--gold {args.gold} holds no examples")
        return examples[0].task, examples, str(args.gold)
    if not args.dataset or not args.data_dir:
        raise UsageError(
            "name the gold data: --dataset NAME --data-dir DIR [--split test], or --gold FILE.jsonl"
        )
    ds = load_split(args.dataset, args.data_dir, args.split, image_dir=args.image_dir)
    return ds.task, ds.examples, f"{args.dataset} {ds.split}"


def _refuse_overwrite(out: Path, names: list[str], overwrite: bool) -> None:
    existing = [str(out / n) for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise UsageError(f"{', '.join(existing)} already exist; choose another --out or pass --overwrite")


def cmd_evaluate(args) -> int:
    from cotdistill.eval.predictions import align, read_predictions, system_metrics

    task, gold, desc = _load_gold(args)
    preds = read_predictions(args.predictions, task, gold)
    system = align(gold, preds)
    if system.unknown_ids:
        logger.warning(
            "%d predictions are for ids not in the gold data (e.g. %s); they are ignored",
            len(system.unknown_ids),
            system.unknown_ids[0],
        )
    metrics = system_metrics(task, gold, system)
    metrics.update(
        gold=desc, predictions=str(args.predictions), command="cotdistill " + " ".join(sys.argv[1:])
    )
    scores = metrics
    print(
        f"{system.source} on {desc} ({len(gold):,} examples, coverage {100 * system.coverage:.1f}%, parse failures {system.parse_failures})"
    )
    print(f"  {'':<22}{'P':>8}{'R':>8}{'F1':>8}{'support':>9}")
    print(
        f"  {'overall':<22}{100 * scores['precision']:>8.2f}{100 * scores['recall']:>8.2f}{100 * scores['f1']:>8.2f}{scores['tp'] + scores['fn']:>9,}"
    )
    for label, v in scores.get("per_type", {}).items():
        print(
            f"  {str(label)[:22]:<22}{100 * v['precision']:>8.2f}{100 * v['recall']:>8.2f}{100 * v['f1']:>8.2f}{v['support']:>9,}"
        )
    if args.out is not None:
        _refuse_overwrite(args.out, ["metrics.json"], args.overwrite)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "metrics.json").write_text(
            json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"wrote {args.out / 'metrics.json'}")
    return 0


def _named(values: list[str] | None, kind, flag: str) -> dict:
    out = {}
    for v in values or []:
        name, sep, num = v.partition("=")
        if not sep:
            raise UsageError(f"{flag} {v!r}: expected NAME=VALUE")
        try:
            out[name] = kind(num)
        except ValueError:
            raise UsageError(f"{flag} {v!r}: {num!r} is not a {kind.__name__}") from None
    return out


def cmd_compare(args) -> int:
    from cotdistill.eval.compare import compare_systems
    from cotdistill.eval.predictions import align, read_predictions
    from cotdistill.eval.report import write_report

    task, gold, desc = _load_gold(args)
    systems = []
    for spec in args.predictions:
        name, sep, path = spec.partition("=")
        if not sep or not name or Path(spec).exists():
            name, path = None, spec
        preds = read_predictions(path, task, gold, source=name)
        systems.append(align(gold, preds, source=name or (preds[0].source if preds else Path(path).stem)))
    if len(systems) < 2:
        raise UsageError("compare needs at least two prediction files (e.g. teacher=FILE student=FILE)")
    _refuse_overwrite(args.out, ["metrics.json", "report.md", "report.html"], args.overwrite)
    result = compare_systems(
        task,
        gold,
        systems,
        TaskSpec.from_examples(task, gold).scored_labels,
        resamples=args.resamples,
        seed=args.seed,
        params=_named(args.params, int, "--params"),
        fractions=_named(args.fraction, float, "--fraction"),
    )
    provenance = {
        "command": "cotdistill " + " ".join(sys.argv[1:]),
        "gold": desc,
        "predictions": {s.source: spec for s, spec in zip(systems, args.predictions, strict=True)},
    }
    files = write_report(result, args.out, provenance)
    for name, s in result["systems"].items():
        print(
            f"  {name:<24} F1 {100 * s['f1']:6.2f}  95% CI [{100 * s['f1_ci'][0]:.2f}, {100 * s['f1_ci'][1]:.2f}]"
        )
    for p in result["pairs"]:
        print(f"  {p['a']} − {p['b']}: {100 * p['f1_difference']:+.2f} F1, p = {p['p_value']:.4f}")
    print(f"report: {files['html']}")
    return 0


def cmd_prompts_list(args) -> int:
    from cotdistill.prompts import PromptLibrary

    lib = PromptLibrary(args.template_dir or ())
    for name in lib.names(task=args.task):
        t = lib.templates[name]
        print(f"{name:<28} v{t.version:<3} {t.kind:<8} {t.description}")
    return 0


def cmd_prompts_show(args) -> int:
    from cotdistill.prompts import BM25, PromptLibrary, select_demos
    from cotdistill.tasks import TaskSpec

    lib = PromptLibrary(args.template_dir or ())
    ds = load_split(args.dataset, args.data_dir, args.split, image_dir=args.image_dir)
    if not 0 <= args.index < len(ds.examples):
        raise UsageError(f"--index {args.index} is outside the {len(ds.examples)} {ds.split} examples")
    example = ds.examples[args.index]
    demos = []
    if args.shots:
        pool = load_split(args.dataset, args.data_dir, "train", image_dir=args.image_dir).examples
        demos = select_demos(
            example,
            pool,
            args.shots,
            method=args.demo_selection,
            index=BM25([p.text for p in pool]) if args.demo_selection == "bm25" else None,
        )
    spec = TaskSpec.from_examples(ds.task, ds.examples)
    messages = lib.render(args.name, example, spec, sees_images=not args.text_only, demos=demos)
    info = lib.get(args.name)
    print(
        f"# {info.name} v{info.version} ({info.kind}) on {args.dataset} {ds.split}[{args.index}] id={example.id}"
    )
    for m in messages:
        print(f"\n--- {m['role']} ---")
        parts = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        for part in parts:
            print(f"[image: {part['image']}]" if part["type"] == "image" else part["text"])
    return 0


def _run_setup(args):
    from cotdistill import pipeline
    from cotdistill.config import load_config, write_resolved

    config = load_config(args.config, args.overrides)
    write_resolved(config)
    library = pipeline.prompt_library(config)
    splits = pipeline.load_splits(config, args.split)
    return config, library, splits, pipeline.task_spec(splits)


def _dry_run(config, library, splits, spec, retry_failed: bool) -> int:
    from cotdistill.distill.backends import Sampling
    from cotdistill.distill.runner import ShardStore, plan
    from cotdistill.pipeline import samples_per_template

    t = config.teacher
    sampling = Sampling(t.temperature, t.top_p, t.max_tokens, t.seed)
    templates = [library.get(n) for n in t.templates]
    total = pending = chars = 0
    for split, ds in splits.items():
        done = ShardStore(config.path / "teacher" / split).finished()
        for key, ex, tpl, _ in plan(
            ds.examples, templates, t.model, sampling, samples_per_template(config, library)
        ):
            total += 1
            if key in done and (done[key] or not retry_failed):
                continue
            pending += 1
            messages = library.render(tpl.name, ex, spec, sees_images=t.sees_images)
            chars += sum(
                len(p["text"])
                for m in messages
                for p in (m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}])
                if "text" in p
            )
    tokens = chars / 4  # about four characters a token for English BPE vocabularies; images not counted
    print(f"{total:,} requests, {total - pending:,} already done, {pending:,} to make")
    print(
        f"prompt text: {chars:,} characters, about {tokens:,.0f} tokens (estimated at 4 characters a token; image tokens not included)"
    )
    print(f"completion: at most {pending * t.max_tokens:,} tokens (max_tokens {t.max_tokens})")
    if t.price_per_million_prompt_tokens is not None:
        cost = tokens / 1e6 * t.price_per_million_prompt_tokens + pending * t.max_tokens / 1e6 * (
            t.price_per_million_completion_tokens or 0.0
        )
        print(f"estimated cost: at most {cost:,.2f} (prompt + maximal completions at the configured prices)")
    return 0


def cmd_generate(args) -> int:
    from cotdistill import pipeline

    config, library, splits, spec = _run_setup(args)
    if args.dry_run:
        return _dry_run(config, library, splits, spec, args.retry_failed)
    summary = pipeline.generate(config, splits, limit=args.limit, retry_failed=args.retry_failed)
    for split, stats in summary.items():
        out = config.path / "teacher" / split
        print(
            f"{split}: {stats['requests']:,} requests, {stats['already_done']:,} already done, {stats['generated']:,} made, {stats['failures']:,} failed -> {out}"
        )
        if stats["failures"]:
            print(
                f"  failures by reason: {stats['failures_by_reason']}; rerun with --retry-failed to redo only those"
            )
    return 0


def cmd_knowledge(args) -> int:
    from cotdistill import pipeline

    config, _, splits, _ = _run_setup(args)
    for split, counts in pipeline.knowledge(config, splits).items():
        print(
            f"{split}: {counts.get('kept', 0):,} of {counts['examples']:,} examples kept -> {counts['jsonl']}"
        )
        for reason, n in sorted(counts.items()):
            if reason not in ("kept", "examples", "jsonl"):
                print(f"  {reason}: {n:,}")
    return 0


def cmd_train(args) -> int:
    from cotdistill import pipeline
    from cotdistill.config import load_config, write_resolved

    config = load_config(args.config, args.overrides)
    write_resolved(config)
    summary = pipeline.train(config, resume=args.resume or None)
    best = summary["best_dev_f1"]
    print(
        f"{summary['kind']} student saved to {summary['best']}"
        + (f" (best dev F1 {100 * best:.2f})" if best is not None else "")
        + f"; {summary['trainable_parameters']:,} of {summary['parameters']:,} parameters trained"
    )
    return 0


def cmd_predict(args) -> int:
    from cotdistill import pipeline
    from cotdistill.config import load_config

    config = load_config(args.config, args.overrides)
    out = pipeline.predict_student(config, args.split, overwrite=args.overwrite)
    print(f"{out['predictions']:,} student predictions ({out['view']}) -> {out['path']}")
    if args.teacher:
        t = pipeline.predict_teacher(config, args.split, overwrite=args.overwrite)
        print(f"{t['predictions']:,} teacher predictions -> {t['path']}")
    return 0


def cmd_merge(args) -> int:
    from cotdistill.config import load_config
    from cotdistill.student.generative import merge_student

    config = load_config(args.config, args.overrides)
    out = args.out or (config.path / "student" / "merged")
    merge_student(config.path / "student" / "best", out)
    print(f"merged model -> {out}")
    return 0


def cmd_convert_gguf(args) -> int:
    from cotdistill.models import convert_gguf

    out = convert_gguf(args.gguf, args.out, dtype=args.dtype)
    print(f"converted {args.gguf} -> {out.resolve()} ({args.dtype}); name this folder as the model")
    return 0


def cmd_run(args) -> int:
    from cotdistill import pipeline
    from cotdistill.config import load_config

    config = load_config(args.config, args.overrides)
    try:
        stages = pipeline.run(config, redo=args.redo or (), stop_after=args.stop_after)
    except pipeline.StageError as err:
        logger.debug("stage failure", exc_info=err.__cause__)
        print(f"cotdistill: error: {err}", file=sys.stderr)
        if args.verbose and err.__cause__ is not None:
            import traceback

            traceback.print_exception(err.__cause__)
        return 1
    print_result(config, stages)
    return 0


def print_result(config, stages: dict) -> None:
    """The end of a run on screen: scores, knowledge counts, the report, and a loud note when finished
    stages are older than the config."""
    from cotdistill import pipeline

    print()
    for line in pipeline.result_lines(config, stages):
        print(line)
    if "compare" in stages:
        print(f"report: {stages['compare']['summary']['report']}")
    stale = pipeline.stale_stages(config, stages)
    if stale:
        print(
            f"\nNOTE: {', '.join(stale)} finished with an earlier config, so these results are from that "
            f"config, not this one. To redo them: add --redo {stale[0]} (earlier outputs are moved to "
            f"{config.path / 'previous'}/, never deleted).",
            file=sys.stderr,
        )


def cmd_demo(args) -> int:
    from cotdistill.demo import run_demo

    return run_demo(args.out, config=args.config, overrides=args.overrides, redo=args.redo)


EXAMPLES = {
    "data stats": "cotdistill data stats twitter2017 --data-dir ../shared/datasets/twitter2017\n"
    "  cotdistill data stats mnre --data-dir ../shared/datasets/mnre --split test --json",
    "data export": "cotdistill data export mnre --data-dir ../shared/datasets/mnre --out exports/mnre",
    "prompts list": "cotdistill prompts list --task mner",
    "prompts show": "cotdistill prompts show mner.answer --dataset twitter2017 "
    "--data-dir ../shared/datasets/twitter2017 --index 3 --shots 2",
    "generate": "cotdistill generate configs/twitter2017.yaml --dry-run\n"
    "  cotdistill generate configs/twitter2017.yaml teacher.samples=3 --limit 100\n"
    "  cotdistill generate configs/twitter2017.yaml --retry-failed",
    "knowledge": "cotdistill knowledge configs/twitter2017.yaml knowledge.min_f1=0.5",
    "train": "cotdistill train configs/twitter2017-pgim-replay.yaml student.model=PATH/TO/MiniLM student.epochs=2",
    "predict": "cotdistill predict configs/twitter2017-pgim-replay.yaml --split test --teacher",
    "merge": "cotdistill merge configs/twitter2017-generative.yaml --out models/merged",
    "convert-gguf": "cotdistill convert-gguf SmolLM2-135M-Instruct.Q4_1.gguf models/smollm2-135m-instruct",
    "run": "cotdistill run configs/twitter2017-pgim-replay.yaml student.model=PATH/TO/MiniLM student.epochs=2\n"
    "  cotdistill run configs/twitter2017-pgim-replay.yaml --redo train student.epochs=4",
    "demo": "cotdistill demo\n  cotdistill demo --out /tmp/demo --redo",
    "evaluate": "cotdistill evaluate --predictions runs/x/predictions/student-test.jsonl --dataset twitter2017 "
    "--data-dir ../shared/datasets/twitter2017 --split test --out runs/x/scores",
    "compare": "cotdistill compare teacher=runs/x/predictions/teacher-test.jsonl "
    "student=runs/x/predictions/student-test.jsonl \\\n"
    "      --dataset twitter2017 --data-dir ../shared/datasets/twitter2017 --split test --out runs/x/report",
}


def _sub(sub, name: str, help: str, **kw) -> argparse.ArgumentParser:
    """A subcommand parser whose --help ends with examples."""
    return sub.add_parser(
        name.split()[-1],
        help=help,
        description=kw.pop("description", help[0].upper() + help[1:] + "."),
        epilog="examples:\n  " + EXAMPLES[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kw,
    )


def _config_args(p: argparse.ArgumentParser, name: str) -> None:
    """CONFIG and its KEY=VALUE overrides. The overrides are collected by ``main`` (they may stand anywhere
    on the line), so argparse never calls them required."""
    p.usage = f"cotdistill {name} CONFIG [KEY=VALUE ...] [options]"
    p.add_argument(
        "config",
        type=Path,
        help="a YAML config (e.g. configs/twitter2017.yaml); paths inside it "
        "are relative to the working directory",
    )
    p.set_defaults(overrides=[])
    p.description = (p.description or "") + (
        "\n\nKEY=VALUE ... : config overrides, which beat the YAML (e.g. student.epochs=2 "
        "teacher.options={base_url: http://127.0.0.1:8000/v1}); an unknown key names the nearest valid one."
    )


def build_parser() -> argparse.ArgumentParser:
    from cotdistill import __version__

    parser = argparse.ArgumentParser(
        prog="cotdistill",
        description="Chain-of-thought distillation for multimodal information extraction: a teacher's CoT "
        "knowledge, a LoRA-tuned student, teacher and student scored side by side.",
        epilog="start with: cotdistill demo   (the whole pipeline on CPU in seconds)\n"
        "every command: cotdistill COMMAND --help (with examples); -v anywhere on the line shows progress "
        "notes and the traceback of an unexpected error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and notes")
    parser.add_argument("--version", action="version", version=f"cotdistill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="read, count and export the standard datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="stats|export")
    stats = _sub(data_sub, "data stats", "per split: examples, tokens, labels, images found/missing")
    _add_dataset_args(stats)
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(func=cmd_data_stats)
    export = _sub(data_sub, "data export", "write the Arrow dataset and JSONL files")
    _add_dataset_args(export)
    export.add_argument(
        "--out", required=True, type=Path, help="output folder (must not hold an earlier export)"
    )
    export.set_defaults(func=cmd_data_export)

    prompts = sub.add_parser("prompts", help="list the prompt templates or show one rendered on an example")
    prompts_sub = prompts.add_subparsers(dest="prompts_command", required=True, metavar="list|show")
    plist = _sub(prompts_sub, "prompts list", "every template: name, version, kind, what it does")
    plist.add_argument("--task", choices=["mner", "mre", "mae"], help="only this task's templates")
    plist.add_argument(
        "--template-dir", action="append", type=Path, help="extra template folder (overrides by name)"
    )
    plist.set_defaults(func=cmd_prompts_list)
    show = _sub(prompts_sub, "prompts show", "print the chat messages of one template on one example")
    show.add_argument("name", help="a template name from 'cotdistill prompts list', e.g. mner.answer")
    show.add_argument(
        "--dataset",
        required=True,
        choices=list(DATASETS),
        metavar="NAME",
        help=f"one of: {', '.join(DATASETS)}",
    )
    show.add_argument("--data-dir", required=True, type=Path, help="folder holding the dataset's files")
    show.add_argument(
        "--image-dir", type=Path, default=None, help="folder of the images (default: DATA_DIR/images)"
    )
    show.add_argument("--split", default="train", help="split to take the example from (default: train)")
    show.add_argument("--index", type=int, default=0, help="which example of the split (default: 0)")
    show.add_argument(
        "--shots", type=int, default=0, help="few-shot demonstrations from the train split (answer templates)"
    )
    show.add_argument(
        "--demo-selection", choices=["bm25", "random"], default="bm25", help="how demonstrations are chosen"
    )
    show.add_argument(
        "--text-only", action="store_true", help="render for a teacher that does not see images"
    )
    show.add_argument(
        "--template-dir", action="append", type=Path, help="extra template folder (overrides by name)"
    )
    show.set_defaults(func=cmd_prompts_show)

    gen = _sub(sub, "generate", "run the teacher over the data into RUN/teacher/<split>/ (resumable)")
    _config_args(gen, "generate")
    gen.add_argument("--split", action="append", help="only these splits (default: data.splits)")
    gen.add_argument(
        "--limit",
        type=_positive,
        default=None,
        metavar="N",
        help="make at most N new requests per split (N ≥ 1)",
    )
    gen.add_argument("--retry-failed", action="store_true", help="redo only the requests that failed")
    gen.add_argument(
        "--dry-run", action="store_true", help="render every prompt, count tokens and estimate cost; no model"
    )
    gen.set_defaults(func=cmd_generate)
    kn = _sub(sub, "knowledge", "parse, vote, filter and export the teacher's knowledge")
    _config_args(kn, "knowledge")
    kn.add_argument("--split", action="append", help="only these splits (default: data.splits)")
    kn.set_defaults(func=cmd_knowledge)

    tr = _sub(sub, "train", "train the student on RUN's knowledge; best dev-F1 model in RUN/student/best")
    _config_args(tr, "train")
    tr.add_argument("--resume", default=None, help="a checkpoint folder under RUN/student to continue from")
    tr.set_defaults(func=cmd_train)
    pr = _sub(sub, "predict", "student predictions for a split into RUN/predictions/student-<split>.jsonl")
    _config_args(pr, "predict")
    pr.add_argument("--split", default="test", help="split to predict (default: test)")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing predictions file")
    pr.add_argument(
        "--teacher",
        action="store_true",
        help="also write the teacher's voted answers (from RUN/knowledge) as RUN/predictions/teacher-<split>.jsonl",
    )
    pr.set_defaults(func=cmd_predict)
    mg = _sub(sub, "merge", "fold a generative student's LoRA adapter into its base weights")
    _config_args(mg, "merge")
    mg.add_argument("--out", type=Path, default=None, help="output folder (default: RUN/student/merged)")
    mg.set_defaults(func=cmd_merge)

    cv = _sub(
        sub,
        "convert-gguf",
        "write a .gguf model as a standard Hugging Face folder (for vLLM, or to skip dequantizing per load)",
        description="Dequantize a GGUF file (llama.cpp's format) into a Hugging Face model folder: safetensors, "
        "config, tokenizer and chat template.",
    )
    cv.add_argument("gguf", type=Path, help="the .gguf file")
    cv.add_argument("out", type=Path, help="a new (or empty) folder to write")
    cv.add_argument(
        "--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"], help="weight type written"
    )
    cv.set_defaults(func=cmd_convert_gguf)

    rn = _sub(
        sub,
        "run",
        "every stage from one config: generate, knowledge, train, predict, evaluate, compare (resumes)",
    )
    _config_args(rn, "run")
    rn.add_argument(
        "--redo",
        action="append",
        choices=list(STAGES),
        help="run this finished stage again, and every stage after it (earlier outputs are moved to RUN/previous/)",
    )
    rn.add_argument("--stop-after", choices=list(STAGES), default=None, help="end the run after this stage")
    rn.set_defaults(func=cmd_run)

    dm = _sub(
        sub,
        "demo",
        "the whole pipeline on a small synthetic dataset with tiny random models, on CPU, in seconds",
    )
    dm.usage = "cotdistill demo [--out OUT] [--config CONFIG] [--redo] [KEY=VALUE ...]"
    dm.add_argument(
        "--out", type=Path, default=Path("cotdistill-demo"), help="folder for data, models and the run"
    )
    dm.add_argument(
        "--config",
        type=Path,
        default=None,
        help="run this config instead (a GPU machine with model weights: e.g. configs/twitter2015.yaml)",
    )
    dm.add_argument(
        "--redo",
        action="store_true",
        help="start the demo run afresh (earlier outputs are moved to RUN/previous/)",
    )
    dm.set_defaults(func=cmd_demo, overrides=[])

    ev = _sub(sub, "evaluate", "score one prediction file against gold")
    ev.add_argument(
        "--predictions",
        required=True,
        type=Path,
        help="Prediction JSONL, or the dataset's native format with predicted labels",
    )
    _add_gold_args(ev)
    ev.add_argument("--out", type=Path, default=None, help="folder for metrics.json")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing metrics.json")
    ev.set_defaults(func=cmd_evaluate)

    cmp = _sub(sub, "compare", "teacher vs students vs baselines: CIs, significance, agreement, report")
    cmp.add_argument(
        "predictions",
        nargs="+",
        metavar="[NAME=]FILE",
        help="prediction files; the first is the reference (the teacher)",
    )
    _add_gold_args(cmp)
    cmp.add_argument(
        "--out",
        required=True,
        type=Path,
        help="folder for metrics.json, report.md, report.html and the plots",
    )
    cmp.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    cmp.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (default: 0)")
    cmp.add_argument(
        "--params", action="append", metavar="NAME=N", help="parameter count of a system, for the cost table"
    )
    cmp.add_argument(
        "--fraction",
        action="append",
        metavar="NAME=F",
        help="share of the knowledge a student was trained on (learning curve)",
    )
    cmp.add_argument("--overwrite", action="store_true", help="replace an existing report")
    cmp.set_defaults(func=cmd_compare)
    return parser


def _locked(args) -> int:
    """A stage command on its own holds its run directory, as ``run`` does (``generate`` holds the teacher
    folder inside the runner)."""
    from cotdistill.config import load_config

    with exclusive(load_config(args.config, args.overrides).path, "this run"):
        return args.func(args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # -v may stand anywhere on the line, after the subcommand too
    verbose = any(a in ("-v", "--verbose") for a in argv)
    argv = [a for a in argv if a not in ("-v", "--verbose")]
    # Overrides (key=value) may stand anywhere on the line, before or after the flags.
    args, extra = parser.parse_known_args(argv)
    args.verbose = verbose
    if extra:
        stray = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
        if stray:
            parser.error(f"unrecognized arguments: {' '.join(stray)}")
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command in ("knowledge", "train", "predict", "merge") and hasattr(args, "config"):
            return _locked(args)
        return args.func(args)
    except CotdistillError as err:
        print(f"cotdistill: error: {err}", file=sys.stderr)
        if args.verbose and err.__cause__ is not None:
            traceback.print_exception(err.__cause__)
        return err.exit_code
    except KeyboardInterrupt:
        print("cotdistill: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, or the machine's trouble (a full disk, a permission)
        if args.verbose:
            traceback.print_exc()
        print(
            f"cotdistill: error: {type(err).__name__}: {err}"
            + ("" if args.verbose else " (run again with -v for the traceback)"),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
