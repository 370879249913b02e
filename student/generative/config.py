"""The generative student's settings (declared with the encoder student's in ``cotdistill.student.config``)
and the two tasks of its chat items."""

from cotdistill.student.config import (
    QUANTIZATION,
    GenerativeConfig,
    GenerativeConfigError,
    GenerativeTrainingConfig,
)

KINDS = ("answer", "rationale")
PREFIX = {"answer": "[answer]", "rationale": "[rationale]"}

__all__ = [
    "KINDS",
    "PREFIX",
    "QUANTIZATION",
    "GenerativeConfig",
    "GenerativeConfigError",
    "GenerativeTrainingConfig",
]
