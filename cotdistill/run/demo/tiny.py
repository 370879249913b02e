"""Tiny models and tokenizers built from configs (random weights): what the CPU tests and ``cotdistill demo``
run on. Nothing is downloaded; tokenizers are trained on fixture text with ``tokenizers``. Their predictions
are meaningless by construction — they exercise every code path, not quality."""

from __future__ import annotations

from pathlib import Path

FIXTURE_TEXT = [
    "RT @user : Barack Obama visits Paris with Michelle Obama today",
    "Named entities : 1. Obama ( person ) 2. Paris ( city ) Reasoning : the post mentions a president",
    "New York Mets play at Citi Field # baseball http://t.co/x",
    "Apple and Google open offices in London and Berlin",
    "the quick brown fox jumps over the lazy dog near the river bank",
]


def tiny_wordpiece_tokenizer(out_dir: str | Path | None = None, extra_text=()):
    """A BERT-style WordPiece fast tokenizer over the fixture text: every character (alone and as ``##``
    continuation) and the most frequent words, 300 entries in all. Built, not trained: the WordPiece trainer
    breaks frequency ties differently in each process, and the same text should give the same tokenizer
    (and the demo the same numbers) every time."""
    from collections import Counter

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter(
        word
        for text in [*FIXTURE_TEXT, *extra_text]
        for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text))
    )
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for word in counts for c in word})
    vocab = [*specials, *chars, *(f"##{c}" for c in chars)]
    room = max(0, 300 - len(vocab))
    vocab += [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:room]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def tiny_bert(out_dir: str | Path, vocab_size: int, seed: int = 0) -> str:
    """Save a 2-layer, 32-wide BERT with random weights; returns its path for ``from_pretrained``."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(str(out_dir))
    return str(out_dir)


CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}{% if p['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_bpe_tokenizer(extra_text=(), vocab_size: int = 500, phrases: bool = False):
    """A byte-level BPE tokenizer with Qwen's special tokens and a ChatML chat template. With ``phrases``,
    text is split only at line breaks, so a line repeated in the training text (a prompt's instructions)
    becomes a few tokens: short sequences for a tiny model to be taught on in seconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
    ]
    tok = Tokenizer(models.BPE())
    if phrases:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split("\n", "isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([*FIXTURE_TEXT, *extra_text] * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _image_tokenizer(placeholder: str, extra_text=(), vocab_size: int = 500, phrases: bool = False):
    """The tiny BPE tokenizer with an ``<image>`` token, and its chat template with ``placeholder`` where an
    image part stands."""
    tok = tiny_bpe_tokenizer(extra_text, vocab_size, phrases)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tok.chat_template = CHAT_TEMPLATE.replace("<|vision_start|><|image_pad|><|vision_end|>", placeholder)
    return tok, tok.chat_template


MROPE = {"type": "mrope", "mrope_section": [1, 1, 2]}  # multimodal rotary sections of a 8-dim head


def _text_config(vocab_size: int, **more) -> dict:
    """The language model every tiny decoder here shares: 2 layers, 32 wide, grouped-query attention."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        **more,
    }


def _save_generator(model, tok, out_dir, processor=None) -> str:
    """Save a tiny generating model whose generation config stops at the tokenizer's end of turn."""
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(str(out_dir))
    (processor or tok).save_pretrained(str(out_dir))
    return str(out_dir)


# vLLM's CPU attention kernels take heads of 32 dimensions and more: what a tiny model needs to run there
ENGINE_SIZES = {
    "hidden_size": 64,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 128,
}


def tiny_qwen2_lm(out_dir, seed: int = 0, initializer_range: float = 0.02, engine_ready: bool = False) -> str:
    """A 2-layer Qwen2 causal LM with random weights and the tiny BPE tokenizer, saved for from_pretrained
    (``engine_ready``: 32-dim heads, so that vLLM's CPU engine can run it)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = tiny_bpe_tokenizer()
    torch.manual_seed(seed)
    config = Qwen2Config(
        **_text_config(
            len(tok),
            max_position_embeddings=1024,
            initializer_range=initializer_range,
            bos_token_id=None,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            **(ENGINE_SIZES if engine_ready else {}),
        )
    )
    return _save_generator(Qwen2ForCausalLM(config), tok, out_dir)


def tiny_llava(
    out_dir,
    seed: int = 0,
    extra_text=(),
    engine_ready: bool = False,
    vocab_size: int = 500,
    phrases: bool = False,
) -> str:
    """A tiny LLaVA (1-layer CLIP vision tower on 28×28 images, 2-layer Qwen2 language model) with its
    processor (PIL image processor, the tiny BPE tokenizer, a ChatML template with ``<image>``), saved for
    ``AutoModelForImageTextToText`` / ``AutoProcessor``. The vision-language path of CPU tests and the demo."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        Qwen2Config,
    )

    tok, template = _image_tokenizer("<image>", extra_text, vocab_size, phrases)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}
        ),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template,
    )
    torch.manual_seed(seed)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        ),
        text_config=Qwen2Config(
            **_text_config(
                len(tok),
                max_position_embeddings=4096,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
                **(ENGINE_SIZES if engine_ready else {}),
            )
        ),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    return _save_generator(LlavaForConditionalGeneration(config), tok, out_dir, processor)


def tiny_qwen2_vl(kind: str = "qwen2_vl"):
    """A tiny Qwen2-VL or Qwen2.5-VL built from its config (random weights, no processor: that needs
    torchvision), for checking which modules LoRA and 4-bit loading touch."""
    import torch

    if kind == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model

        vision = {
            "depth": 1,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "out_hidden_size": 32,
        }
    else:
        from transformers import Qwen2VLConfig as Config
        from transformers import Qwen2VLForConditionalGeneration as Model

        vision = {"depth": 1, "embed_dim": 16, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2}
    torch.manual_seed(0)
    config = Config(
        text_config=_text_config(300, rope_scaling=MROPE),
        vision_config=vision,
    )
    return Model(config)


def image_only_qwen2_vl_processor(tokenizer, min_pixels: int = 56 * 56, max_pixels: int = 112 * 112):
    """A Qwen2-VL processor for images only: transformers' Qwen2VLProcessor insists on a video processor,
    which needs torchvision (no CPU build here). Same image processor (the PIL one), same expansion of
    ``<|image_pad|>`` into one token per merged patch, same chat template."""
    from transformers import Qwen2VLImageProcessorPil, Qwen2VLProcessor
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
            self.image_token = "<|image_pad|>"
            self.video_token = "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = None

    image_processor = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)
    return ImageOnlyQwen2VLProcessor(image_processor, tokenizer, chat_template=tokenizer.chat_template)


def tiny_qwen2_vl_teacher(out_dir, seed: int = 0) -> str:
    """A tiny Qwen2-VL (random weights, 1-block vision tower, 2-layer language model) and the tiny BPE
    tokenizer, saved for ``AutoModelForImageTextToText``; pair it with ``image_only_qwen2_vl_processor``."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    tok = tiny_bpe_tokenizer()
    torch.manual_seed(seed)
    config = Qwen2VLConfig(
        text_config=_text_config(
            len(tok),
            max_position_embeddings=4096,
            rope_scaling=MROPE,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        vision_config={"depth": 1, "embed_dim": 16, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2},
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.pad_token_id,  # no video here; an id that never occurs in a prompt
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
    )
    return _save_generator(Qwen2VLForConditionalGeneration(config), tok, out_dir)


def tiny_blip2(out_dir, seed: int = 0) -> str:
    """A tiny BLIP-2 (1-layer vision tower on 28×28 images, 1-layer Q-Former with 4 queries, 2-layer OPT
    with 32-dim heads) with its processor (PIL image processor, the tiny BPE tokenizer, a ChatML template),
    saved for ``from_pretrained``. A vision-language model that vLLM's CPU build runs without torchvision
    (its LLaVA and Qwen2-VL need torchvision, which has no CPU build here)."""
    import torch
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        BlipImageProcessorPil,
        OPTConfig,
    )

    # BLIP-2 puts its query tokens before the prompt, so the chat template has no image placeholder
    tok, template = _image_tokenizer("")
    tok.image_token = "<image>"
    processor = Blip2Processor(
        image_processor=BlipImageProcessorPil(size={"height": 28, "width": 28}),
        tokenizer=tok,
        num_query_tokens=4,
        chat_template=template,
    )
    torch.manual_seed(seed)
    config = Blip2Config(
        vision_config=Blip2VisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        ).to_dict(),
        qformer_config=Blip2QFormerConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            encoder_hidden_size=32,
        ).to_dict(),
        text_config=OPTConfig(
            vocab_size=len(tok),
            hidden_size=64,
            num_hidden_layers=2,
            ffn_dim=128,
            num_attention_heads=2,
            max_position_embeddings=512,
            word_embed_proj_dim=64,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.pad_token_id,
        ).to_dict(),
        num_query_tokens=4,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    return _save_generator(Blip2ForConditionalGeneration(config), tok, out_dir, processor)
