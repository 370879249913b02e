"""Where a model named in a config is loaded from: a hub id, a local folder, or a single ``.gguf`` file.

transformers reads a GGUF file (llama.cpp's format) when ``from_pretrained`` gets the file's folder and
``gguf_file=NAME``; it dequantizes the weights into an ordinary model, with the tokenizer and chat template
that the file carries. ``pretrained_args`` turns a model name into those two arguments, so every loader in
cotdistill that goes through transformers (the ``transformers`` teacher backend and both students) takes a
``.gguf`` path as it takes a folder. vLLM's CPU build cannot read GGUF, and converting on every load costs
seconds, so ``convert_gguf`` (``cotdistill convert-gguf``) writes the standard Hugging Face folder once.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


class ModelPathError(ValueError):
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
    """``cls.from_pretrained`` for a hub id, a folder or a ``.gguf`` file. A GGUF model comes back as an
    ordinary dequantized model: transformers would otherwise refuse to train or save it, though its
    weights are plain tensors once loaded."""
    source, extra = pretrained_args(name)
    model = cls.from_pretrained(source, **kwargs, **extra)
    if extra:
        plain(model)
    return model


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
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src, out = Path(src).expanduser(), Path(out).expanduser()
    if not is_gguf(src):
        raise ModelPathError(f"{src}: expected a .gguf file")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"{out.resolve()} exists and is not empty: name a new folder for the conversion"
        )
    if dtype not in ("bfloat16", "float16", "float32"):
        raise ModelPathError(f"dtype {dtype!r}: expected bfloat16, float16 or float32")
    folder, kwargs = pretrained_args(src)
    config = AutoConfig.from_pretrained(folder, **kwargs)
    logger.info("dequantizing %s (%s)", src, config.model_type)
    model = from_pretrained(AutoModelForCausalLM, src, dtype=getattr(torch, dtype))
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model.config.dtype = dtype
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
