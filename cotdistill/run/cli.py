"""The ``cotdistill`` command line: the parser and ``main``; the commands live in ``cotdistill.run.commands``.

An error cotdistill raises on purpose (``CotdistillError``) is printed as one line and exits with its code:
2 for input that cannot be used (a file, a name, a flag), 1 for a run that could not go on. Any other error
is a bug or the machine's trouble: one line as well, exit 1, and ``-v`` (anywhere on the line) prints its
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cotdistill import __version__
from cotdistill.errors import CotdistillError
from cotdistill.readers import DATASETS, SPLITS
from cotdistill.run.commands import (
    cmd_compare,
    cmd_convert_gguf,
    cmd_data_export,
    cmd_data_stats,
    cmd_demo,
    cmd_evaluate,
    cmd_generate,
    cmd_knowledge,
    cmd_knowledge_show,
    cmd_merge,
    cmd_predict,
    cmd_prompts_list,
    cmd_prompts_show,
    cmd_push,
    cmd_run,
    cmd_train,
)
from cotdistill.run.stages import STAGE_NAMES

logger = logging.getLogger("cotdistill")


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(
            f"{value} is not at least 1" if least == 1 else f"{value} is negative; give 0 or more"
        )
    return value


def _positive(text: str) -> int:
    return _whole_number(text, 1)


def _non_negative(text: str) -> int:
    return _whole_number(text, 0)


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
    "knowledge": "cotdistill knowledge configs/twitter2017.yaml knowledge.min_f1=0.5\n"
    "  then read it: cotdistill knowledge show runs/twitter2017 --dropped --limit 5",
    "push": "cotdistill push runs/twitter2017 --repo me/twitter2017-student --knowledge-repo me/twitter2017-cot\n"
    "  cotdistill push runs/twitter2017 --repo me/twitter2017-student --knowledge-repo me/twitter2017-cot --dry-run",
    "knowledge show": "cotdistill knowledge show runs/twitter2017 --dropped --limit 5\n"
    "  cotdistill knowledge show runs/twitter2017 --split train --id 1015799",
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


# Every argument declared once, by a short name; the commands below list the names they take.
_DATA_DIR = {"type": Path, "help": "folder holding the dataset's files as distributed"}
_IMAGE_DIR = {"type": Path, "default": None, "help": "folder of the images (default: DATA_DIR/images)"}
_TEMPLATE_DIR = {"action": "append", "type": Path, "help": "extra template folder (overrides by name)"}
ARGS: dict[str, tuple[tuple[str, ...], dict]] = {
    "dataset_name": (
        ("name",),
        {"choices": list(DATASETS), "metavar": "NAME", "help": f"one of: {', '.join(DATASETS)}"},
    ),
    "data_dir": (("--data-dir",), {**_DATA_DIR, "required": True}),
    "image_dir": (("--image-dir",), _IMAGE_DIR),
    "read_splits": (
        ("--split",),
        {
            "action": "append",
            "choices": [*SPLITS, "val", "dev"],
            "help": "split(s) to read (default: all present)",
        },
    ),
    "json": (("--json",), {"action": "store_true", "help": "print JSON instead of a table"}),
    "export_out": (
        ("--out",),
        {"required": True, "type": Path, "help": "output folder (must not hold an earlier export)"},
    ),
    "task": (("--task",), {"choices": ["mner", "mre", "mae"], "help": "only this task's templates"}),
    "template_dir": (("--template-dir",), _TEMPLATE_DIR),
    "template": (("name",), {"help": "a template name from 'cotdistill prompts list', e.g. mner.answer"}),
    "dataset": (
        ("--dataset",),
        {
            "required": True,
            "choices": list(DATASETS),
            "metavar": "NAME",
            "help": f"one of: {', '.join(DATASETS)}",
        },
    ),
    "example_split": (
        ("--split",),
        {"default": "train", "help": "split to take the example from (default: train)"},
    ),
    "index": (("--index",), {"type": int, "default": 0, "help": "which example of the split (default: 0)"}),
    "shots": (
        ("--shots",),
        {
            "type": _non_negative,
            "default": 0,
            "help": "few-shot demonstrations from the train split (answer templates)",
        },
    ),
    "demo_selection": (
        ("--demo-selection",),
        {"choices": ["bm25", "random"], "default": "bm25", "help": "how demonstrations are chosen"},
    ),
    "text_only": (
        ("--text-only",),
        {"action": "store_true", "help": "render for a teacher that does not see images"},
    ),
    "config": (
        ("config",),
        {
            "type": Path,
            "help": "a YAML config (e.g. configs/twitter2017.yaml); paths inside it are relative to the "
            "working directory",
        },
    ),
    "config_splits": (("--split",), {"action": "append", "help": "only these splits (default: data.splits)"}),
    "limit": (
        ("--limit",),
        {
            "type": _positive,
            "default": None,
            "metavar": "N",
            "help": "make at most N new requests per split (N ≥ 1)",
        },
    ),
    "retry_failed": (
        ("--retry-failed",),
        {"action": "store_true", "help": "redo only the requests that failed"},
    ),
    "dry_run": (
        ("--dry-run",),
        {
            "action": "store_true",
            "help": "check the config, render every prompt, count tokens and estimate cost; no model",
        },
    ),
    "resume": (
        ("--resume",),
        {"default": None, "help": "a checkpoint folder under RUN/student to continue from"},
    ),
    "predict_split": (("--split",), {"default": "test", "help": "split to predict (default: test)"}),
    "overwrite": (("--overwrite",), {"action": "store_true", "help": "replace an existing output file"}),
    "with_teacher": (
        ("--teacher",),
        {
            "action": "store_true",
            "help": "also write the teacher's voted answers (from RUN/knowledge) as RUN/predictions/teacher-<split>.jsonl",
        },
    ),
    "merge_out": (
        ("--out",),
        {"type": Path, "default": None, "help": "output folder (default: RUN/student/merged)"},
    ),
    "gguf": (("gguf",), {"type": Path, "help": "the .gguf file"}),
    "gguf_out": (("out",), {"type": Path, "help": "a new (or empty) folder to write"}),
    "dtype": (
        ("--dtype",),
        {"default": "bfloat16", "choices": ["bfloat16", "float16", "float32"], "help": "weight type written"},
    ),
    "redo": (
        ("--redo",),
        {
            "action": "append",
            "choices": list(STAGE_NAMES),
            "help": "run this finished stage again, and every stage after it (earlier outputs are moved to RUN/previous/)",
        },
    ),
    "stop_after": (
        ("--stop-after",),
        {"choices": list(STAGE_NAMES), "default": None, "help": "end the run after this stage"},
    ),
    "demo_out": (
        ("--out",),
        {"type": Path, "default": Path("cotdistill-demo"), "help": "folder for data, models and the run"},
    ),
    "demo_config": (
        ("--config",),
        {
            "type": Path,
            "default": None,
            "help": "run this config instead (a GPU machine with model weights: e.g. configs/twitter2015.yaml)",
        },
    ),
    "demo_redo": (
        ("--redo",),
        {
            "action": "store_true",
            "help": "start the demo run afresh (earlier outputs are moved to RUN/previous/)",
        },
    ),
    "predictions": (
        ("--predictions",),
        {
            "required": True,
            "type": Path,
            "help": "Prediction JSONL, or the dataset's native format with predicted labels",
        },
    ),
    "gold_dataset": (
        ("--dataset",),
        {"choices": list(DATASETS), "metavar": "NAME", "help": f"gold dataset: {', '.join(DATASETS)}"},
    ),
    "gold_data_dir": (("--data-dir",), _DATA_DIR),
    "gold_split": (("--split",), {"default": "test", "help": "gold split (default: test)"}),
    "gold": (
        ("--gold",),
        {
            "type": Path,
            "default": None,
            "help": "instead of --dataset/--data-dir: an Example JSONL file (cotdistill data export)",
        },
    ),
    "metrics_out": (("--out",), {"type": Path, "default": None, "help": "folder for metrics.json"}),
    "systems": (
        ("predictions",),
        {
            "nargs": "+",
            "metavar": "[NAME=]FILE",
            "help": "prediction files; the first is the reference (the teacher)",
        },
    ),
    "report_out": (
        ("--out",),
        {
            "required": True,
            "type": Path,
            "help": "folder for metrics.json, report.md, report.html and the plots",
        },
    ),
    "resamples": (
        ("--resamples",),
        {"type": int, "default": 1000, "help": "bootstrap resamples (default: 1000)"},
    ),
    "seed": (
        ("--seed",),
        {"type": int, "default": 0, "help": "seed of the bootstrap resamples (default: 0)"},
    ),
    "params": (
        ("--params",),
        {"action": "append", "metavar": "NAME=N", "help": "parameter count of a system, for the cost table"},
    ),
    "fraction": (
        ("--fraction",),
        {
            "action": "append",
            "metavar": "NAME=F",
            "help": "share of the knowledge a student was trained on (learning curve)",
        },
    ),
    "run_folder": (("run",), {"type": Path, "metavar": "RUN", "help": "the run's folder (RUN_DIR/NAME)"}),
    "show_split": (
        ("--split",),
        {"action": "append", "help": "a split to show (repeatable; default: every split with knowledge)"},
    ),
    "show_kept": (("--kept",), {"action": "store_true", "help": "only the records the filter kept"}),
    "show_dropped": (("--dropped",), {"action": "store_true", "help": "only the records it dropped"}),
    "record_id": (("--id",), {"default": None, "help": "only the record of this example id"}),
    "show_limit": (
        ("--limit",),
        {"type": int, "default": 10, "help": "show at most this many records (default 10; 0: all)"},
    ),
    "width": (
        ("--width",),
        {"type": _positive, "default": 100, "help": "wrap text at this width (default 100)"},
    ),
    "push_run": (("run",), {"type": Path, "metavar": "RUN", "help": "the run's folder (RUN_DIR/NAME)"}),
    "repo": (
        ("--repo",),
        {"default": None, "metavar": "ID", "help": "Hub model repo for the student (user/name)"},
    ),
    "knowledge_repo": (
        ("--knowledge-repo",),
        {"default": None, "metavar": "ID", "help": "Hub dataset repo for the knowledge (user/name)"},
    ),
    "private": (("--private",), {"action": "store_true", "help": "create the repos private"}),
    "push_dry_run": (
        ("--dry-run",),
        {
            "action": "store_true",
            "dest": "dry_run",
            "help": "write what would be pushed, model card and dataset card included, under RUN/push/; send nothing",
        },
    ),
    "token": (("--token",), {"default": None, "help": "Hub token (default: the logged-in one, or HF_TOKEN)"}),
}
DATASET_ARGS = ("dataset_name", "data_dir", "image_dir", "read_splits")
GOLD_ARGS = ("gold_dataset", "gold_data_dir", "image_dir", "gold_split", "gold")


@dataclass(frozen=True)
class Command:
    """One subcommand: its name (``data stats`` for a nested one), help line, function and arguments."""

    name: str
    help: str
    func: Callable
    args: tuple[str, ...] = ()
    takes_config: bool = False  # CONFIG and KEY=VALUE overrides
    description: str | None = None


COMMANDS = (
    Command(
        "data stats",
        "per split: examples, tokens, labels, images found/missing",
        cmd_data_stats,
        (*DATASET_ARGS, "json"),
    ),
    Command(
        "data export",
        "write the Arrow dataset and JSONL files",
        cmd_data_export,
        (*DATASET_ARGS, "export_out"),
    ),
    Command(
        "prompts list",
        "every template: name, version, kind, what it does",
        cmd_prompts_list,
        ("task", "template_dir"),
    ),
    Command(
        "prompts show",
        "print the chat messages of one template on one example",
        cmd_prompts_show,
        (
            "template",
            "dataset",
            "data_dir",
            "image_dir",
            "example_split",
            "index",
            "shots",
            "demo_selection",
            "text_only",
            "template_dir",
        ),
    ),
    Command(
        "generate",
        "run the teacher over the data into RUN/teacher/<split>/ (resumable)",
        cmd_generate,
        ("config_splits", "limit", "retry_failed", "dry_run"),
        True,
    ),
    Command(
        "knowledge",
        "parse, vote, filter and export the teacher's knowledge",
        cmd_knowledge,
        ("config_splits",),
        True,
    ),
    Command(
        "knowledge show",
        "print a run's knowledge: post, gold, the teacher's answer and rationales, why it was kept or dropped",
        cmd_knowledge_show,
        ("run_folder", "show_split", "show_kept", "show_dropped", "record_id", "show_limit", "width"),
    ),
    Command(
        "train",
        "train the student on RUN's knowledge; best dev-F1 model in RUN/student/best",
        cmd_train,
        ("resume",),
        True,
    ),
    Command(
        "predict",
        "student predictions for a split into RUN/predictions/student-<split>.jsonl",
        cmd_predict,
        ("predict_split", "overwrite", "with_teacher"),
        True,
    ),
    Command(
        "merge",
        "fold a generative student's LoRA adapter into its base weights",
        cmd_merge,
        ("merge_out",),
        True,
    ),
    Command(
        "convert-gguf",
        "write a .gguf model as a standard Hugging Face folder (for vLLM, or to skip dequantizing per load)",
        cmd_convert_gguf,
        ("gguf", "gguf_out", "dtype"),
        description="Dequantize a GGUF file (llama.cpp's format) into a Hugging Face model folder: safetensors, "
        "config, tokenizer and chat template.",
    ),
    Command(
        "push",
        "push a run's student (with its model card) and its knowledge (a dataset) to the Hugging Face Hub",
        cmd_push,
        ("push_run", "repo", "knowledge_repo", "private", "token", "push_dry_run"),
    ),
    Command(
        "run",
        "every stage from one config: generate, knowledge, train, predict, evaluate, compare (resumes)",
        cmd_run,
        ("redo", "stop_after"),
        True,
    ),
    Command(
        "demo",
        "the whole pipeline on a small synthetic dataset with tiny models, on CPU, in under a minute",
        cmd_demo,
        ("demo_out", "demo_config", "demo_redo"),
    ),
    Command(
        "evaluate",
        "score one prediction file against gold",
        cmd_evaluate,
        ("predictions", *GOLD_ARGS, "metrics_out", "overwrite"),
    ),
    Command(
        "compare",
        "teacher vs students vs baselines: CIs, significance, agreement, report",
        cmd_compare,
        ("systems", *GOLD_ARGS, "report_out", "resamples", "seed", "params", "fraction", "overwrite"),
    ),
)
GROUPS = {
    "data": ("read, count and export the standard datasets", "stats|export"),
    "prompts": ("list the prompt templates or show one rendered on an example", "list|show"),
}


def _add_command(sub, command: Command) -> None:
    """The subcommand's parser: its arguments from ``ARGS``, its --help ending with examples."""
    p = sub.add_parser(
        command.name.split()[-1],
        help=command.help,
        description=command.description or command.help[0].upper() + command.help[1:] + ".",
        epilog="examples:\n  " + EXAMPLES[command.name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if command.takes_config:
        # The overrides are collected by ``main`` (they may stand anywhere on the line), so argparse never
        # calls them required.
        p.usage = f"cotdistill {command.name} CONFIG [KEY=VALUE ...] [options]"
        p.description += (
            "\n\nKEY=VALUE ... : config overrides, which beat the YAML (e.g. student.epochs=2 "
            "teacher.options={base_url: http://127.0.0.1:8000/v1}); an unknown key names the nearest valid one."
        )
        flags, kwargs = ARGS["config"]
        p.add_argument(*flags, **kwargs)
    for name in command.args:
        flags, kwargs = ARGS[name]
        p.add_argument(*flags, **kwargs)
    p.set_defaults(func=command.func)
    if command.takes_config or command.name == "demo":
        p.set_defaults(overrides=[])
    if command.name == "demo":
        p.usage = "cotdistill demo [--out OUT] [--config CONFIG] [--redo] [KEY=VALUE ...]"


def build_parser() -> argparse.ArgumentParser:
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
    groups = {}
    for command in COMMANDS:
        group = command.name.split()[0] if " " in command.name else None
        if command.name == "knowledge show":  # parsed by knowledge_show_parser (knowledge takes a CONFIG)
            continue
        if group is None:
            _add_command(sub, command)
            continue
        if group not in groups:
            help_, metavar = GROUPS[group]
            groups[group] = sub.add_parser(group, help=help_).add_subparsers(
                dest=f"{group}_command", required=True, metavar=metavar
            )
        _add_command(groups[group], command)
    return parser


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (what a scheduler or ``kill`` sends) handled as Ctrl-C is: a stop with a word on how to
    resume, never a silent exit. Training catches both itself, to stop at a step with a checkpoint."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def knowledge_show_parser() -> argparse.ArgumentParser:
    """``cotdistill knowledge show RUN``: beside ``cotdistill knowledge CONFIG``, so parsed on its own."""
    parser = argparse.ArgumentParser(
        prog="cotdistill knowledge", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="knowledge_command", required=True, metavar="show")
    _add_command(sub, next(c for c in COMMANDS if c.name == "knowledge show"))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # -v may stand anywhere on the line, after the subcommand too
    verbose = any(a in ("-v", "--verbose") for a in argv)
    argv = [a for a in argv if a not in ("-v", "--verbose")]
    show = argv[:2] == ["knowledge", "show"]
    parser = knowledge_show_parser() if show else build_parser()
    argv = argv[1:] if show else argv
    # Overrides (key=value) may stand anywhere on the line, before or after the flags.
    args, extra = parser.parse_known_args(argv)
    args.verbose = verbose
    if show and args.kept and args.dropped:
        parser.error("--kept and --dropped exclude each other")
    if extra:
        stray = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
        if stray:
            parser.error(f"unrecognized arguments: {' '.join(stray)}")
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        with _sigterm_as_interrupt():
            return args.func(args)
    except CotdistillError as err:
        print(f"cotdistill: error: {err}", file=sys.stderr)
        if args.verbose and err.__cause__ is not None:
            traceback.print_exception(err.__cause__)
        return err.exit_code
    except KeyboardInterrupt:
        print(
            "cotdistill: stopped; what was finished is kept (generation shards, finished stages, checkpoints): "
            "run the same command again to resume",
            file=sys.stderr,
        )
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
