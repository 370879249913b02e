"""The ``cotdistill`` command line: the parser and ``main``; the commands live in ``cotdistill.commands``.

An error cotdistill raises on purpose (``CotdistillError``) is printed as one line and exits with its code:
2 for input that cannot be used (a file, a name, a flag), 1 for a run that could not go on. Any other error
is a bug or the machine's trouble: one line as well, exit 1, and ``-v`` (anywhere on the line) prints its
traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

from cotdistill.commands import (  # noqa: F401  (print_result and the commands are used from here too)
    UsageError,
    _add_dataset_args,
    _add_gold_args,
    cmd_compare,
    cmd_convert_gguf,
    cmd_data_export,
    cmd_data_stats,
    cmd_demo,
    cmd_evaluate,
    cmd_generate,
    cmd_knowledge,
    cmd_merge,
    cmd_predict,
    cmd_prompts_list,
    cmd_prompts_show,
    cmd_run,
    cmd_train,
    print_result,
    split_stats,
)
from cotdistill.errors import CotdistillError
from cotdistill.locking import exclusive
from cotdistill.pipeline import STAGES
from cotdistill.readers import DATASETS

logger = logging.getLogger("cotdistill")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


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
