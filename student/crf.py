"""A linear-chain CRF over the labelled positions of each sequence, for the encoder tagger."""

from __future__ import annotations

import torch
from torch import nn


class CRF(nn.Module):
    """A linear-chain CRF over the labelled positions of each sequence (batch-first, mask of valid steps)."""

    def __init__(self, num_tags: int):
        super().__init__()
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        self.trans = nn.Parameter(torch.zeros(num_tags, num_tags))

    def neg_log_likelihood(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        emissions = emissions.float()
        b, t, _ = emissions.shape
        mask = mask.bool()
        tags = tags.masked_fill(~mask, 0)
        idx = torch.arange(b, device=emissions.device)
        score = self.start[tags[:, 0]] + emissions[idx, 0, tags[:, 0]]
        for i in range(1, t):
            step = self.trans[tags[:, i - 1], tags[:, i]] + emissions[idx, i, tags[:, i]]
            score = score + step * mask[:, i]
        last = tags[idx, mask.sum(1) - 1]
        score = score + self.end[last]
        alpha = self.start + emissions[:, 0]
        for i in range(1, t):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + self.trans + emissions[:, i].unsqueeze(1), dim=1)
            alpha = torch.where(mask[:, i : i + 1], nxt, alpha)
        log_z = torch.logsumexp(alpha + self.end, dim=1)
        return (log_z - score).mean()

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        emissions = emissions.float()
        b, t, _ = emissions.shape
        mask = mask.bool()
        score = self.start + emissions[:, 0]
        history = []
        for i in range(1, t):
            best, arg = (score.unsqueeze(2) + self.trans).max(dim=1)
            nxt = best + emissions[:, i]
            score = torch.where(mask[:, i : i + 1], nxt, score)
            history.append(arg)
        score = score + self.end
        out = []
        lengths = mask.sum(1).tolist()
        for k in range(b):
            tag = int(score[k].argmax())
            path = [tag]
            for i in range(lengths[k] - 1, 0, -1):
                tag = int(history[i - 1][k, tag])
                path.append(tag)
            out.append(path[::-1])
        return out


def pack_labelled(scores: torch.Tensor, labels: torch.Tensor):
    """Gather each sequence's labelled positions to the front: (scores, tags, mask) of shape [b, n, ...]."""
    keep = labels != -100
    counts = keep.sum(1)
    n = max(int(counts.max()), 1)
    b, _, c = scores.shape
    packed = scores.new_zeros(b, n, c)
    tags = labels.new_zeros(b, n)
    mask = torch.zeros(b, n, dtype=torch.bool, device=scores.device)
    for k in range(b):
        m = int(counts[k])
        packed[k, :m] = scores[k][keep[k]]
        tags[k, :m] = labels[k][keep[k]]
        mask[k, :m] = True
    mask[:, 0] = True  # a post whose words all lack sub-tokens still decodes one (ignored) step
    return packed, tags, mask
