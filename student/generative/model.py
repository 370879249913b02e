"""Loading the generative student: base model (VLM or text LM, optionally 4-bit), LoRA on the language
model's linear layers, processor; saving, reloading and merging a trained student."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from cotdistill.errors import PathExistsError
from cotdistill.models import from_pretrained
from cotdistill.student import read_student_config, save_student_config
from cotdistill.student.generative.config import (
    GenerativeConfig,
    GenerativeConfigError,
)

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------- model loading


def is_vision_model(model_id: str, trust_remote_code: bool = False) -> bool:
    from transformers import AutoConfig

    cfg = from_pretrained(AutoConfig, model_id, trust_remote_code=trust_remote_code)
    return getattr(cfg, "vision_config", None) is not None


def _resolve_vision(config: GenerativeConfig) -> GenerativeConfig:
    if config.vision is None:
        config.vision = is_vision_model(config.model, config.trust_remote_code)
        config.__post_init__()
    return config


def _model_class(vision: bool):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return AutoModelForImageTextToText if vision else AutoModelForCausalLM


def language_model(model: nn.Module) -> nn.Module:
    """The decoder stack of a causal LM or VLM (transformers' ``get_decoder``), through a PEFT wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    if decoder is None:
        raise GenerativeConfigError(f"{type(base).__name__} does not say which part is its language model")
    return decoder


def lora_target_modules(model: nn.Module) -> list[str]:
    """Full names of every linear layer in the language model: never the vision tower, never lm_head."""
    decoder = language_model(model)
    inside = {id(m) for m in decoder.modules()}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and id(m) in inside and m is not head
    ]
    if not names:
        raise GenerativeConfigError(f"no linear layers found in the language model of {type(model).__name__}")
    return names


def unquantized_modules(model: nn.Module) -> list[str]:
    """Full names of what 4-bit loading must leave alone: every top-level part of the model that is not the
    language model (the vision tower, the projector) and the output head."""
    decoder = language_model(model)
    inside = {id(m) for m in decoder.modules()}
    keep: list[str] = []
    for name, m in model.named_modules():
        if not name or id(m) in inside or any(name.startswith(k + ".") for k in keep):
            continue
        has_decoder = any(id(sub) in inside for sub in m.modules())
        has_params = any(True for _ in m.parameters(recurse=True))
        if not has_decoder and has_params:
            keep.append(name)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_names = [n for n, m in model.named_modules() if m is head]
    return sorted(set(keep) | set(head_names or ["lm_head"]))


def quantization_config(config: GenerativeConfig, model: nn.Module | None = None):
    """The ``BitsAndBytesConfig`` for QLoRA (None without quantization). ``model`` may be a meta-device
    instance; without one it is built on the meta device from the model's config (no weights load)."""
    if config.quantization == "none":
        return None
    from transformers import AutoConfig, BitsAndBytesConfig

    if model is None:
        cfg = from_pretrained(AutoConfig, config.model, trust_remote_code=config.trust_remote_code)
        with torch.device("meta"):
            model = _model_class(bool(config.vision)).from_config(
                cfg, trust_remote_code=config.trust_remote_code
            )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        llm_int8_skip_modules=unquantized_modules(model),
    )


def check_quantization_runtime() -> None:
    """QLoRA needs bitsandbytes and a CUDA GPU; say so before anything loads."""
    from cotdistill.optional import require

    require("bitsandbytes", "QLoRA (student.quantization=4bit)")
    if not torch.cuda.is_available():
        raise GenerativeConfigError(
            "QLoRA (quantization=4bit) needs a CUDA GPU; set quantization=none on CPU"
        )


def load_base_model(config: GenerativeConfig, bf16: bool = False) -> nn.Module:
    """The base model by id or local path, in bf16 when asked, 4-bit when ``quantization=4bit``."""
    config = _resolve_vision(config)
    kwargs: dict = {"trust_remote_code": config.trust_remote_code}
    if bf16 or config.quantization == "4bit":
        kwargs["dtype"] = torch.bfloat16
    if config.quantization == "4bit":
        check_quantization_runtime()
        kwargs["quantization_config"] = quantization_config(config)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = from_pretrained(_model_class(bool(config.vision)), config.model, **kwargs)
    if config.quantization == "4bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model


def add_lora(model: nn.Module, config: GenerativeConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    targets = config.lora_target_modules or lora_target_modules(model)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def load_processor(config: GenerativeConfig, path: str | None = None):
    """AutoProcessor for a VLM, AutoTokenizer for a text LM; padding on the left for generation."""
    from transformers import AutoProcessor, AutoTokenizer

    config = _resolve_vision(config)
    src = path or config.model
    cls = AutoProcessor if config.vision else AutoTokenizer
    processor = from_pretrained(cls, src, trust_remote_code=config.trust_remote_code)
    tok = tokenizer_of(processor)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None and getattr(processor, "chat_template", None) is None:
        raise GenerativeConfigError(f"{src} has no chat template; use an instruction-tuned model")
    return processor


def tokenizer_of(processor):
    return getattr(processor, "tokenizer", processor)


def save_config(config: GenerativeConfig, out_dir: str | Path) -> None:
    save_student_config("generative", config, out_dir)


def _read_config(path: Path) -> GenerativeConfig:
    return GenerativeConfig(**read_student_config(path, "generative")[1])


def load_generative_student(path: str | Path, device: str | torch.device | None = None, bf16: bool = False):
    """(model, processor, config) from a ``best/`` (or merged) folder: the base model from ``config.model``
    plus the saved adapter, or the merged weights themselves."""
    path = Path(path)
    config = _read_config(path)
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_base_model(config, bf16=bf16), str(path))
    else:
        model = _model_class(bool(config.vision)).from_pretrained(
            str(path),
            trust_remote_code=config.trust_remote_code,
            **({"dtype": torch.bfloat16} if bf16 else {}),
        )
    processor = load_processor(config, str(path))
    if device is None:
        device = "cuda" if torch.cuda.is_available() and config.quantization == "none" else None
    if device is not None:
        model = model.to(device)
    return model.eval(), processor, config


def merge_student(path: str | Path, out_dir: str | Path) -> Path:
    """Fold the LoRA adapter into the base weights and save a plain model (plus processor and config) that
    loads without peft, e.g. for ``vllm serve``."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise PathExistsError(f"{out} is not empty; choose a new folder for the merged model")
    model, processor, config = load_generative_student(path, device="cpu")
    if config.quantization != "none":
        raise GenerativeConfigError(
            "merge a QLoRA adapter into a bf16 copy of the base model, not the 4-bit one"
        )
    if not hasattr(model, "merge_and_unload"):
        raise GenerativeConfigError(f"{path} holds no adapter to merge")
    merged = model.merge_and_unload()
    merged.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    config.model = str(out)
    save_config(config, out)
    return out
