"""The run's log file, ``RUN/log.txt``: everything logged while a run works (ours at INFO and above, the
libraries' warnings, Python warnings) is appended there with a timestamp. The console keeps the run's own
lines, progress bars and warnings; the libraries' messages and progress bars (weights loading, datasets
saving, vLLM's start-up) go to the file only, unless ``-v`` asks for everything on the console."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

OURS = "cotdistill"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class OursOnly(logging.Filter):
    """Lets through the records of our own loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == OURS or record.name.startswith(OURS + ".")


def _console_handlers(root: logging.Logger) -> list[logging.Handler]:
    return [
        h
        for h in root.handlers
        if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stderr, sys.stdout)
    ]


@contextlib.contextmanager
def _libraries_to_root() -> Iterator[None]:
    """transformers and datasets log through their own console handlers and draw their own progress bars:
    for the block, their records reach the root logger (and so the log file) and their bars are off."""
    undo: list = []
    with contextlib.suppress(ImportError):
        import transformers.utils.logging as tlog

        bars = tlog.is_progress_bar_enabled()
        tlog.disable_default_handler()
        tlog.enable_propagation()
        tlog.disable_progress_bar()
        undo.append(lambda: (tlog.enable_default_handler(), tlog.disable_propagation()))
        undo.append(lambda: tlog.enable_progress_bar() if bars else None)
    with contextlib.suppress(ImportError):
        import datasets

        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        undo.append(lambda: datasets.enable_progress_bars() if bars else None)
    try:
        yield
    finally:
        for step in reversed(undo):
            step()


@contextlib.contextmanager
def run_log(folder: str | os.PathLike) -> Iterator[Path]:
    """For the block: every record to ``folder/log.txt``; on the console only ours, unless the console
    already shows INFO records (``-v``): then everything, as before."""
    path = Path(folder) / "log.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    level = root.level
    consoles = [] if root.getEffectiveLevel() <= logging.INFO else _console_handlers(root)
    ours = OursOnly()
    saved = [(h, h.level) for h in consoles]
    for h in consoles:
        h.setLevel(max(h.level, level))  # the console keeps the level it had; the file gets INFO
        h.addFilter(ours)
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    logging.captureWarnings(True)
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")  # vLLM's loggers then propagate to the root
    try:
        with _libraries_to_root():
            yield path
    finally:
        logging.captureWarnings(False)
        root.setLevel(level)
        root.removeHandler(handler)
        handler.close()
        for h, old in saved:
            h.setLevel(old)
            h.removeFilter(ours)
