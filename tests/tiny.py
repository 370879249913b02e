"""Tiny models and tokenizers built from configs (random weights) for CPU tests: nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

FIXTURE_TEXT = [
    "RT @user : Barack Obama visits Paris with Michelle Obama today",
    "Named entities : 1. Obama ( person ) 2. Paris ( city ) Reasoning : the post mentions a president",
    "New York Mets play at Citi Field # baseball http://t.co/x",
    "Apple and Google open offices in London and Berlin",
    "the quick brown fox jumps over the lazy dog near the river bank",
]


def tiny_wordpiece_tokenizer(out_dir: str | Path | None = None):
    """A BERT-style WordPiece fast tokenizer trained on the fixture text."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    tok.train_from_iterator(FIXTURE_TEXT * 4, trainer)
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
