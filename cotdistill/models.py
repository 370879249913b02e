"""Where a model named in a config is loaded from: a hub id, a local folder, or a single ``.gguf`` file.

transformers reads a GGUF file (llama.cpp's format) when ``from_pretrained`` gets the file's folder and
``gguf_file=NAME``; it dequantizes the weights into an ordinary model, with the tokenizer and chat template
that the file carries. ``from_pretrained(cls, name)`` passes those two arguments for a ``.gguf`` name, so every
loader in cotdistill that goes through transformers (the ``transformers`` teacher backend and both students)
takes a ``.gguf`` path as it takes a folder. vLLM's CPU build cannot read GGUF, and converting on every load costs
seconds, so ``convert_gguf`` (``cotdistill convert-gguf``) writes the standard Hugging Face folder once.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from cotdistill.errors import InputError, PathExistsError

logger = logging.getLogger(__name__)


class ModelPathError(InputError):
    """A model path that cannot be loaded as given."""


def is_gguf(name: str | Path) -> bool:
    return str(name).lower().endswith(".gguf")


def pretrained_args(name: str | Path) -> tuple[str, dict]:
    """``(source, extra from_pretrained kwargs)`` for a model name: a ``.gguf`` file loads from its folder
    with ``gguf_file``; anything else is passed through unchanged."""
    if not is_gguf(name):
        return str(name), {}
    path = Path(name).expanduser()
    if not path.is_file():
        raise ModelPathError(f"{path.resolve()} does not exist (a .gguf model must be a file)")
    _require_gguf()
    return str(path.resolve().parent), {"gguf_file": path.name}


def from_pretrained(cls, name: str | Path, **kwargs):
    """``cls.from_pretrained`` (a config, tokenizer, processor or model class) for a hub id, a folder or a
    ``.gguf`` file. A GGUF model comes back as an ordinary dequantized model: transformers would otherwise
    refuse to train or save it, though its weights are plain tensors once loaded."""
    source, extra = pretrained_args(name)
    loaded = cls.from_pretrained(source, **kwargs, **extra)
    if extra and hasattr(loaded, "hf_quantizer"):
        plain(loaded)
    return loaded


HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def check_model_path(name: str, key: str, *, gguf: bool = True) -> bool:
    """Fail in one line, naming ``key`` and the absolute path, for a local model path that cannot be a
    model (missing, a file, a folder without config.json — with the folder one level down as a hint).
    Returns True when ``name`` is not local but reads as a hub id (loaded from the hub or its cache)."""
    path = Path(name).expanduser()
    if not path.exists():
        if HUB_ID.match(name) and not name.startswith("."):
            return True
        raise ModelPathError(
            f"{key}: {path.resolve()} does not exist (paths in a config are relative to the working "
            f"directory, {Path.cwd()}): set {key}=PATH"
        )
    if path.is_file():
        if gguf and is_gguf(path):
            return False
        raise ModelPathError(
            f"{key}: {path.resolve()} is a file; name a model folder (with config.json)"
            + (" or a .gguf file" if gguf else "")
        )
    if not (path / "config.json").is_file():
        inner = sorted(p.parent for p in path.glob("*/config.json"))
        if gguf:
            inner += sorted(path.glob("*.gguf"))
        hint = f"; did you mean {key}={inner[0]}?" if inner else ""
        raise ModelPathError(f"{key}: {path.resolve()} has no config.json, so it is not a model folder{hint}")
    return False


def plain(model) -> None:
    """Drop the GGUF loader's bookkeeping from a loaded model (its weights are already dequantized)."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("is_quantized", "quantization_method"):
        if attr in vars(model):
            delattr(model, attr)


def _require_gguf() -> None:
    from cotdistill.optional import require

    require("gguf", "loading a .gguf model")


def convert_gguf(src: str | Path, out: str | Path, dtype: str = "bfloat16") -> Path:
    """Write the model in the GGUF file ``src`` as a standard Hugging Face folder ``out`` (safetensors in
    ``dtype``, config, tokenizer and chat template) that vLLM, transformers and peft load directly.

    ``out`` must not exist or be empty: converted weights are never written over anything.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, out = Path(src).expanduser(), Path(out).expanduser()
    if not is_gguf(src):
        raise ModelPathError(f"{src}: expected a .gguf file")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PathExistsError(
            f"{out.resolve()} exists and is not empty: name a new folder for the conversion"
        )
    if dtype not in ("bfloat16", "float16", "float32"):
        raise ModelPathError(f"dtype {dtype!r}: expected bfloat16, float16 or float32")
    logger.info("dequantizing %s", src)
    model = from_pretrained(AutoModelForCausalLM, src, dtype=getattr(torch, dtype))
    tokenizer = from_pretrained(AutoTokenizer, src)
    model.config.dtype = dtype
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
