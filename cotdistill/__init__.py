"""cotdistill: chain-of-thought distillation for multimodal information extraction."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cotdistill")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"
