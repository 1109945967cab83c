"""Pooling: (B, T, D) encoder states -> one (B, D) vector per text. Padding never counts."""

from __future__ import annotations

import torch
from torch import nn

from textlstm.models.masks import padding_mask


class Pooling(nn.Module):
    """`last`: the encoder's final states (forward last step ⊕ backward first step);
    `max` / `mean`: over real positions only; `max_mean`: both, joined (2 x D; ULMFiT's concat
    pooling without the last state: the strongest feature and the overall tone);
    `attention`: learned additive attention (Bahdanau-style score v·tanh(W h)), softmax over
    real positions only."""

    def __init__(self, mode: str, dim: int, attention_dim: int | None = None):
        super().__init__()
        self.mode = mode
        self.dim = dim
        if mode == "attention":
            a = attention_dim or dim
            self.proj = nn.Linear(dim, a)
            self.score = nn.Linear(a, 1, bias=False)
        self.last_weights: torch.Tensor | None = None  # (B, T) attention weights, for inspection

    def get_output_dim(self) -> int:
        return 2 * self.dim if self.mode == "max_mean" else self.dim

    def forward(self, states: torch.Tensor, lengths: torch.Tensor,
                final: torch.Tensor) -> torch.Tensor:
        if self.mode == "last":
            return final
        T = states.size(1)
        mask = padding_mask(lengths, T)  # (B, T)
        if self.mode == "max":
            return self._max(states, mask)
        if self.mode == "mean":
            return self._mean(states, mask, lengths)
        if self.mode == "max_mean":
            return torch.cat([self._max(states, mask), self._mean(states, mask, lengths)], -1)
        scores = self.score(torch.tanh(self.proj(states))).squeeze(-1)  # (B, T)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)
        self.last_weights = weights.detach()
        return torch.bmm(weights.unsqueeze(1), states).squeeze(1)  # (B, D)

    @staticmethod
    def _max(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return states.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)  # (B, D)

    @staticmethod
    def _mean(states: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return (states * mask.unsqueeze(-1)).sum(1) / lengths.unsqueeze(1).to(states.dtype)
