"""Heavy optional packages, imported only where needed, with an install hint when absent."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from cotdistill.errors import CotdistillError

EXTRAS = {"vllm": "vllm", "bitsandbytes": "qlora", "ray": "ray", "seqeval": "dev", "gguf": "gguf"}


class MissingDependencyError(CotdistillError, ImportError):
    """An optional package that this feature needs is not installed."""


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or fail with how to install it, e.g. ``require("vllm", "the vllm backend")``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        extra = EXTRAS.get(top)
        hint = f'pip install "cotdistill[{extra}]"' if extra else f"pip install {top}"
        raise MissingDependencyError(
            f"{feature} needs the {top!r} package, which is not installed: {hint}"
        ) from err


def check_installed(module: str, feature: str) -> None:
    """Fail now, with how to install it, when ``module`` is not installed (found without importing it, so a
    run can check its packages before any stage starts)."""
    if module in sys.modules:
        return
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        top = module.split(".")[0]
        extra = EXTRAS.get(top)
        hint = f'pip install "cotdistill[{extra}]"' if extra else f"pip install {top}"
        raise MissingDependencyError(f"{feature} needs the {top!r} package, which is not installed: {hint}")
