"""Pooling: (B, T, D) encoder states -> one (B, D) vector per text (B, K x D with
`model.regions` K > 1). Padding never counts."""

from __future__ import annotations

import torch
from torch import nn

from textlstm.models.masks import padding_mask


class Pooling(nn.Module):
    """`last`: the encoder's final states (forward last step ⊕ backward first step);
    `max` / `mean`: over real positions only; `max_mean`: both, joined (2 x D; ULMFiT's concat
    pooling without the last state: the strongest feature and the overall tone);
    `attention`: learned additive attention (Bahdanau-style score v·tanh(W h)), softmax over
    real positions only.

    `regions` K > 1 (max only; core/config.py refuses the rest): region max pooling (Johnson and
    Zhang 2016, oh-2LSTMp). Each text's own length n is cut into K contiguous pieces, piece k
    covering positions floor(k n / K) to ceil((k + 1) n / K) - 1 (torch's AdaptiveMaxPool1d
    bounds), each piece is max-pooled and the K vectors are joined in text order (K x D), so
    where a feature appears survives pooling. Pieces come from `lengths`, never from T, so
    padding never moves a boundary; with these bounds no piece is ever empty (a text shorter
    than K tokens repeats tokens across pieces rather than leaving a piece with nothing)."""

    def __init__(self, mode: str, dim: int, attention_dim: int | None = None, regions: int = 1):
        super().__init__()
        self.mode = mode
        self.dim = dim
        self.regions = regions
        if mode == "attention":
            a = attention_dim or dim
            self.proj = nn.Linear(dim, a)
            self.score = nn.Linear(a, 1, bias=False)
        self.last_weights: torch.Tensor | None = None  # (B, T) attention weights, for inspection

    def get_output_dim(self) -> int:
        return (2 if self.mode == "max_mean" else 1) * self.regions * self.dim

    def forward(self, states: torch.Tensor, lengths: torch.Tensor, final: torch.Tensor,
                offsets: torch.Tensor | None = None,
                doc_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """`offsets` (B,), `doc_lengths` (B,): with regions, when each row is a window of a
        longer document (models/chunks.py), where the window starts in it and the document's
        length, which the pieces are cut from."""
        if self.regions > 1:
            if offsets is None:
                offsets, doc_lengths = torch.zeros_like(lengths), lengths
            return region_max(states, lengths, self.regions, offsets, doc_lengths)
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


def region_bounds(lengths: torch.Tensor, regions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) document lengths -> (B, K) first position and (B, K) one past the last position of
    each piece: floor(k n / K) and ceil((k + 1) n / K), integer arithmetic (traceable)."""
    k = torch.arange(regions, device=lengths.device).unsqueeze(0)  # (1, K)
    n = lengths.unsqueeze(1)  # (B, 1)
    start = torch.div(k * n, regions, rounding_mode="floor")
    end = torch.div((k + 1) * n + regions - 1, regions, rounding_mode="floor")
    return start, end  # (B, K), (B, K)


def region_max(states: torch.Tensor, lengths: torch.Tensor, regions: int,
               offsets: torch.Tensor, doc_lengths: torch.Tensor) -> torch.Tensor:
    """states (B, T, D) of rows that start at document position `offsets` (B,), with
    `lengths` (B,) real steps, of documents `doc_lengths` (B,) long -> (B, K x D): the max over
    each piece's positions, piece 0 first.

    A piece that a row does not reach is -inf: for a whole text that never happens (no piece is
    empty), for a window it means "none of this piece here", which the max over the document's
    windows drops (every piece lies in at least one of its windows)."""
    T = states.size(1)
    real = padding_mask(lengths, T)  # (B, T)
    pos = offsets.unsqueeze(1) + torch.arange(T, device=states.device).unsqueeze(0)  # (B, T)
    start, end = region_bounds(doc_lengths, regions)  # (B, K)
    pieces = []
    for k in range(regions):  # K is a setting, not a length: tracing unrolls it the same always
        inside = real & (pos >= start[:, k:k + 1]) & (pos < end[:, k:k + 1])  # (B, T)
        pieces.append(states.masked_fill(~inside.unsqueeze(-1), float("-inf")).amax(dim=1))
    return torch.cat(pieces, dim=-1)  # (B, K x D)
