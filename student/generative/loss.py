"""Distilling step by step's loss over response tokens only, projected to the vocabulary at those positions."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from cotdistill.student.generative.config import (
    KINDS,
)

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ the loss


def _unwrapped(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def response_logits(model: nn.Module, inputs: dict, positions: torch.Tensor) -> torch.Tensor:
    """Logits only at ``positions`` (a [B, L] bool mask): the body's hidden states there, through lm_head.
    Falls back to the full forward pass for a model without the usual ``.model`` / output head split."""
    hf = _unwrapped(model)
    body = getattr(hf, "model", None)
    head = hf.get_output_embeddings() if hasattr(hf, "get_output_embeddings") else None
    if body is None or head is None:
        return model(**inputs, use_cache=False).logits[positions].float()
    hidden = body(**inputs, use_cache=False).last_hidden_state
    return head(hidden[positions]).float()


def distill_loss(model: nn.Module, batch: dict, alpha: float) -> tuple[torch.Tensor, dict]:
    """``alpha * answer + (1 - alpha) * rationale``: each task's loss is the mean over its examples of the
    mean token loss on the example's response. A task absent from the batch adds nothing, and the weights
    present are renormalised, so a batch that happens to hold one task keeps the loss's scale."""
    batch = dict(batch)
    labels = batch.pop("labels")
    seq_ids = batch.pop("seq_ids")
    kinds = batch.pop("seq_kind")
    target = labels[:, 1:]
    positions = torch.zeros_like(labels, dtype=torch.bool)
    positions[:, :-1] = target != -100
    logits = response_logits(model, batch, positions)
    tok_loss = F.cross_entropy(logits, labels[:, 1:][target != -100], reduction="none")
    sid = seq_ids[:, 1:][target != -100]
    S = kinds.numel()
    sums = torch.zeros(S, device=tok_loss.device, dtype=tok_loss.dtype).index_add(0, sid, tok_loss)
    counts = torch.bincount(sid, minlength=S).to(tok_loss.dtype)
    per_seq = sums / counts.clamp(min=1)
    kinds = kinds.to(tok_loss.device)
    loss = tok_loss.new_zeros(())
    weight = 0.0
    parts = {}
    for k, name in enumerate(KINDS):
        mask = (kinds == k) & (counts > 0)
        w = alpha if name == "answer" else 1 - alpha
        if mask.any() and w > 0:
            part = per_seq[mask].mean()
            parts[name] = part.detach()
            loss = loss + w * part
            weight += w
    return loss / max(weight, 1e-12), parts
