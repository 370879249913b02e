"""The command functions behind ``cotdistill``: each takes the parsed arguments and returns an exit code."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from cotdistill.distill.runner import ShardStore, plan
from cotdistill.errors import CotdistillError, InputError, MissingPathError, RunError
from cotdistill.eval.compare import compare_systems
from cotdistill.eval.predictions import align, read_predictions, system_metrics
from cotdistill.eval.report import write_report
from cotdistill.files import is_empty_leftover, write_atomic
from cotdistill.locking import exclusive
from cotdistill.models import convert_gguf
from cotdistill.prompts import BM25, PromptLibrary, select_demos
from cotdistill.readers import DATASETS, SPLITS, DatasetSplit, canonical_split, load_split, to_hf_dataset
from cotdistill.readers.common import DataFormatError
from cotdistill.records import Example
from cotdistill.run import pipeline
from cotdistill.run.config import write_resolved
from cotdistill.run.context import RunContext
from cotdistill.run.demo import run_demo
from cotdistill.run.logs import run_log
from cotdistill.run.stages.student import predict_student, train
from cotdistill.run.stages.teacher import generate, knowledge, predict_teacher, sampling
from cotdistill.run.validation import check_before_stages, load_config
from cotdistill.tasks import TaskSpec, get_task, label_counts

logger = logging.getLogger("cotdistill")


class UsageError(InputError):
    """A command line that cannot be carried out as given."""


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


def _load_gold(args) -> tuple[str, list, str]:
    """(task, gold examples, description) from --gold or --dataset/--data-dir/--split."""

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
    # an empty file is what a write cut short used to leave: nothing to keep, so it does not block
    existing = [str(out / n) for n in names if (out / n).exists() and not is_empty_leftover(out / n)]
    if existing and not overwrite:
        raise UsageError(f"{', '.join(existing)} already exist; choose another --out or pass --overwrite")


def cmd_evaluate(args) -> int:

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
        write_atomic(args.out / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
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
        print(f"  {p['b']} − {p['a']}: {100 * p['f1_difference']:+.2f} F1, p = {p['p_value']:.4f}")
    print(f"report: {files['html']}")
    return 0


def cmd_prompts_list(args) -> int:

    lib = PromptLibrary(args.template_dir or ())
    for name in lib.names(task=args.task):
        t = lib.templates[name]
        print(f"{name:<28} v{t.version:<3} {t.kind:<8} {t.description}")
    return 0


def cmd_prompts_show(args) -> int:

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


def _checked(args, stages: list[str]) -> RunContext:
    """A stage command's run: its config read and checked whole, and the paths and packages of ``stages``,
    all before anything is written."""
    config = load_config(args.config, args.overrides)
    check_before_stages(config, stages)
    return RunContext(config)


def _dry_run(ctx: RunContext, splits, retry_failed: bool) -> int:
    t = ctx.config.teacher
    spec = ctx.spec(list(splits))
    templates = [ctx.library.get(n) for n in t.templates]
    total = pending = chars = 0
    for split, ds in splits.items():
        folder = ctx.path / "teacher" / split
        done = ShardStore(folder).finished() if folder.is_dir() else {}  # a dry run makes no folder
        for key, ex, tpl, _ in plan(ds.examples, templates, t.model, sampling(ctx), ctx.samples):
            total += 1
            if key in done and (done[key] or not retry_failed):
                continue
            pending += 1
            messages = ctx.library.render(tpl.name, ex, spec, sees_images=t.sees_images)
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
    ctx = _checked(args, [] if args.dry_run else ["generate"])
    splits = ctx.splits(args.split)
    if args.dry_run:  # reads and renders everything, writes nothing
        return _dry_run(ctx, splits, args.retry_failed)
    write_resolved(ctx.config)
    with run_log(ctx.path):
        summary = generate(ctx, splits, limit=args.limit, retry_failed=args.retry_failed)
    for split, stats in summary.items():
        out = ctx.path / "teacher" / split
        print(
            f"{split}: {stats['requests']:,} requests, {stats['already_done']:,} already done, {stats['generated']:,} made, {stats['failures']:,} failed -> {out}"
        )
        if stats["failures"]:
            print(
                f"  failures by reason: {stats['failures_by_reason']}; rerun with --retry-failed to redo only those"
            )
    return 0


def cmd_knowledge(args) -> int:
    ctx = _checked(args, ["knowledge"])
    with exclusive(ctx.path, "this run"), run_log(ctx.path):
        write_resolved(ctx.config)
        summary = knowledge(ctx, ctx.splits(args.split))
    for split, counts in summary.items():
        print(
            f"{split}: {counts.get('kept', 0):,} of {counts['examples']:,} examples kept -> {counts['jsonl']}"
        )
        for reason, n in sorted(counts.items()):
            if reason not in ("kept", "examples", "jsonl"):
                print(f"  {reason}: {n:,}")
    return 0


def cmd_train(args) -> int:
    ctx = _checked(args, ["train"])
    with exclusive(ctx.path, "this run"), run_log(ctx.path):
        write_resolved(ctx.config)
        summary = train(ctx, resume=args.resume or None)
    best = summary["best_dev_f1"]
    print(
        f"{summary['kind']} student saved to {summary['best']}"
        + (f" (best dev F1 {100 * best:.2f})" if best is not None else "")
        + f"; {summary['trainable_parameters']:,} of {summary['parameters']:,} parameters trained"
    )
    return 0


def cmd_predict(args) -> int:
    ctx = _checked(args, ["predict"])
    with exclusive(ctx.path, "this run"), run_log(ctx.path):
        out = predict_student(ctx, args.split, overwrite=args.overwrite)
        print(f"{out['predictions']:,} student predictions ({out['view']}) -> {out['path']}")
        if args.teacher:
            t = predict_teacher(ctx, args.split, overwrite=args.overwrite)
            print(f"{t['predictions']:,} teacher predictions -> {t['path']}")
    return 0


def cmd_merge(args) -> int:
    from cotdistill.student.generative import merge_student  # torch loads only for this command

    config = load_config(args.config, args.overrides)
    out = args.out or (config.path / "student" / "merged")
    with exclusive(config.path, "this run"):
        merge_student(config.path / "student" / "best", out)
    print(f"merged model -> {out}")
    return 0


def cmd_convert_gguf(args) -> int:

    out = convert_gguf(args.gguf, args.out, dtype=args.dtype)
    print(f"converted {args.gguf} -> {out.resolve()} ({args.dtype}); name this folder as the model")
    return 0


def cmd_run(args) -> int:
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
    pipeline.print_result(config, stages)
    return 0


def cmd_demo(args) -> int:

    return run_demo(args.out, config=args.config, overrides=args.overrides, redo=args.redo)


def _knowledge_posts(run: Path, split: str) -> dict:
    """The run's posts of ``split`` by id (from the dataset its resolved config names), or {} with a note
    when they cannot be read here."""
    from cotdistill.run.config import read_config

    try:
        d = read_config(run / "config.yaml").data
        return {ex.id: ex for ex in load_split(d.dataset, d.data_dir, split, image_dir=d.image_dir).examples}
    except CotdistillError as err:
        print(f"(posts and gold not shown: {err})")
        return {}


def _show_record(split: str, row: dict, ex: Example | None, width: int) -> None:
    import textwrap

    status = "kept" if row["kept"] else f"dropped: {row['reason']}"
    scores = [
        f"{name} {row[key]:.2f}"
        for key, name in (("agreement", "agreement"), ("answer_f1", "answer F1"))
        if row.get(key) is not None
    ]
    print(f"== {split} {row['id']} · {status}" + (f" ({', '.join(scores)})" if scores else ""))
    wrap = lambda label, text: print(  # noqa: E731
        textwrap.fill(str(text), width, initial_indent=f"  {label}: ", subsequent_indent="    ")
    )
    if ex is not None:
        wrap("post", ex.text)
        if ex.image:
            wrap("image", ex.image)
    answer = row["answer"]
    if ex is not None:
        task = get_task(ex.task)
        wrap("gold", "; ".join(task.show(ex, task.items(ex.gold))) or "(nothing)")
        if answer is not None:
            wrap("answer", "; ".join(task.show(ex, task.items(answer))) or "(nothing)")
    elif answer is not None:
        wrap("answer", json.dumps(answer.to_dict(), ensure_ascii=False))
    if answer is None:
        wrap("answer", "(none parsed)")
    for template, text in row["grains"].items():
        print(f"  teacher [{template}]:")
        for para in str(text).splitlines() or [""]:
            print(textwrap.fill(para, width, initial_indent="    ", subsequent_indent="    ") if para else "")
    print()


def cmd_knowledge_show(args) -> int:
    """Print knowledge records of a run: post, gold, the teacher's answer and rationales, and why each was
    kept or dropped."""
    from cotdistill.distill.knowledge import read_knowledge

    folder = args.run / "knowledge"
    splits = args.split or sorted(p.stem for p in folder.glob("*.jsonl") if p.stem != "type_map")
    paths = [folder / f"{s}.jsonl" for s in splits]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        raise MissingPathError(
            f"{', '.join(missing) or folder} not found: name a run folder (RUN_DIR/NAME) whose knowledge stage "
            "has run ('cotdistill knowledge CONFIG')"
        )
    shown = matched = 0
    for split, path in zip(splits, paths, strict=True):
        posts = _knowledge_posts(args.run, split)
        for _, row in read_knowledge(path):
            if (
                (args.kept and not row["kept"])
                or (args.dropped and row["kept"])
                or (args.id and row["id"] != args.id)
            ):
                continue
            matched += 1
            if args.limit and shown >= args.limit:
                continue
            _show_record(split, row, posts.get(row["id"]), args.width)
            shown += 1
    which = "kept " if args.kept else "dropped " if args.dropped else ""
    print(
        f"{shown:,} of {matched:,} {which}records shown"
        + (f" (--limit {args.limit})" if shown < matched else "")
    )
    if args.id and not matched:
        raise InputError(f"no knowledge record with id {args.id!r} in {', '.join(map(str, paths))}")
    return 0


def cmd_push(args) -> int:
    """Push a run's trained student (``RUN/student/best``, with its model card) and, with
    ``--knowledge-repo``, its knowledge (every split, as a ``datasets`` DatasetDict with a dataset card) to
    the Hugging Face Hub. ``--dry-run`` writes what would be pushed, cards included, under ``RUN/push/``
    and sends nothing."""
    best = args.run / "student" / "best"
    if args.repo and not (best / "cotdistill_student.json").is_file():
        raise MissingPathError(f"{best} holds no trained student; run 'cotdistill train' (or run) first")
    if not args.repo and not args.knowledge_repo:
        raise InputError(
            "name what to push: --repo ID (the student), --knowledge-repo ID (the knowledge), or both"
        )
    knowledge = _knowledge_for_hub(args.run) if args.knowledge_repo else None
    if args.dry_run:
        _push_dry_run(args, best, knowledge)
        return 0
    from huggingface_hub import HfApi

    api = HfApi(token=args.token)
    try:
        if args.repo:
            url = api.create_repo(args.repo, private=args.private, exist_ok=True)
            api.upload_folder(folder_path=str(best), repo_id=args.repo, commit_message="cotdistill student")
            print(f"student pushed: {url}")
        if knowledge is not None:
            splits, card = knowledge
            splits.push_to_hub(args.knowledge_repo, private=args.private, token=args.token)
            card.push_to_hub(args.knowledge_repo, repo_type="dataset", token=args.token)
            print(f"knowledge pushed: https://huggingface.co/datasets/{args.knowledge_repo}")
    except CotdistillError:
        raise
    except Exception as err:  # offline mode, no network, a refused token, an HTTP error: the network's say
        raise RunError(f"push to the Hugging Face Hub failed: {type(err).__name__}: {err}") from err
    return 0


def _push_dry_run(args, best: Path, knowledge) -> None:
    """What a push would send, written under ``RUN/push/``: the student folder's file list and its model card,
    the knowledge dataset (saved with ``save_to_disk``) and its dataset card."""
    out = args.run / "push"
    if args.repo:
        (out / "student").mkdir(parents=True, exist_ok=True)
        files = sorted(p for p in best.rglob("*") if p.is_file())
        card = best / "README.md"
        write_atomic(
            out / "student" / "README.md", card.read_text(encoding="utf-8") if card.is_file() else ""
        )
        size = sum(p.stat().st_size for p in files)
        print(f"student -> {args.repo}: {len(files)} files, {size / 2**20:,.1f} MB from {best}")
        print(f"  model card: {out / 'student' / 'README.md'}")
    if knowledge is not None:
        splits, card = knowledge
        splits.save_to_disk(str(out / "knowledge"))
        write_atomic(out / "knowledge" / "README.md", card.content)
        rows = ", ".join(f"{name} {len(ds):,}" for name, ds in splits.items())
        print(f"knowledge -> {args.knowledge_repo} (dataset): {rows} records")
        print(f"  dataset card: {out / 'knowledge' / 'README.md'}")
    print("dry run: nothing was sent")


def _knowledge_for_hub(run: Path):
    """The run's knowledge as a ``datasets`` DatasetDict (one split per knowledge file) and its dataset card."""
    import datasets
    from huggingface_hub import DatasetCard, DatasetCardData

    folder = run / "knowledge"
    arrows = sorted(folder.glob("*.arrow"))
    if not arrows:
        raise MissingPathError(f"no knowledge in {folder}; run 'cotdistill knowledge' (or run) first")
    splits = datasets.DatasetDict({p.stem: datasets.load_from_disk(str(p)) for p in arrows})
    counts = {name: (sum(ds["kept"]), len(ds)) for name, ds in splits.items()}
    card = DatasetCard(
        f"---\n{DatasetCardData(tags=['cotdistill', 'chain-of-thought', 'knowledge-distillation']).to_yaml()}\n---\n"
        f"# Teacher knowledge written for cotdistill\n\nOne record per post: the teacher's texts (`grains`), its "
        "voted answer, whether the knowledge filter kept it and why not.\n\n"
        + "\n".join(f"- {name}: {kept:,} of {n:,} kept" for name, (kept, n) in counts.items())
        + "\n"
    )
    return splits, card
