"""Reading a long document whole: cut it into windows, encode every window with the same
encoder, pool the window vectors into one document vector.

Why windows rather than one long sequence: a BiLSTM over 2,000 steps is 2,000 sequential
steps, while 16 windows of 128 steps are 128 steps over a 16x larger batch (wider matrix
products per step), and gradients do not have to cross the whole document.

The windowing happens inside the network on the padded (B, T) batch, so every caller that
feeds ids and lengths (training, predict, export, explain) reads documents the same way, and
padding stays exact: a document's windows, and so its logits, do not depend on what else is in
the batch (tests/test_model.py checks it).

Window j of a document starts at token j * (length - overlap); a document of n tokens has
1 + ceil(max(0, n - length) / (length - overlap)) windows, the last one shorter. How many
tokens a document may have at all is `data.max_length`, which `data.max_chunks` sets (see
core/config.py: chunk_span).
"""

from __future__ import annotations

import torch
from torch import nn

from textlstm.models.masks import padding_mask


def window_counts(lengths: torch.Tensor, length: int, overlap: int) -> torch.Tensor:
    """(B,) windows per document."""
    step = length - overlap
    extra = (lengths - length).clamp(min=0)
    return 1 + torch.div(extra + step - 1, step, rounding_mode="floor")


def windows(x: torch.Tensor, lengths: torch.Tensor, length: int, overlap: int
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (B, T, E) -> (windows (N, W, E) zero past each window's end, window lengths (N,),
    owner (N,) the document each window belongs to, slot (N,) its index in that document).

    Windows are listed document by document, in text order; W = min(length, T)."""
    B, T, _ = x.shape
    step = length - overlap
    W = min(length, T)
    counts = window_counts(lengths, length, overlap)  # (B,)
    owner = torch.repeat_interleave(torch.arange(B, device=x.device), counts)  # (N,)
    first = torch.cumsum(counts, 0) - counts  # (B,) index of each document's first window
    slot = torch.arange(owner.numel(), device=x.device) - first[owner]  # (N,)
    start = slot * step  # (N,)
    win_len = (lengths[owner] - start).clamp(max=W)  # (N,) >= 1 by the window count
    pos = start.unsqueeze(1) + torch.arange(W, device=x.device).unsqueeze(0)  # (N, W)
    inside = padding_mask(win_len, W)  # (N, W)
    pos = torch.where(inside, pos, torch.zeros_like(pos))  # past the end: any valid index
    rows = x[owner.unsqueeze(1), pos]  # (N, W, E)
    return rows * inside.unsqueeze(-1).to(rows.dtype), win_len, owner, slot


class ChunkPooling(nn.Module):
    """Window vectors (N, D) -> document vectors (B, D): max, mean or additive attention over
    each document's own windows only."""

    def __init__(self, mode: str, dim: int):
        super().__init__()
        self.mode = mode
        self.dim = dim
        if mode == "attention":
            self.proj = nn.Linear(dim, dim)
            self.score = nn.Linear(dim, 1, bias=False)

    def get_output_dim(self) -> int:
        return self.dim

    def forward(self, vecs: torch.Tensor, owner: torch.Tensor, slot: torch.Tensor,
                batch_size: int) -> torch.Tensor:
        K = int(slot.max()) + 1
        D = vecs.size(-1)
        grid = vecs.new_zeros(batch_size, K, D)  # (B, K, D)
        grid = grid.index_put((owner, slot), vecs)
        mask = torch.zeros(batch_size, K, dtype=torch.bool, device=vecs.device)
        mask = mask.index_put((owner, slot), torch.ones_like(owner, dtype=torch.bool))  # (B, K)
        return self.pool_grid(grid, mask)

    def pool_grid(self, grid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """grid (B, K, D) of window vectors, mask (B, K) True where a window exists -> (B, D).
        Absent windows may hold anything: they never count."""
        grid = grid.masked_fill(~mask.unsqueeze(-1), 0.0)
        if self.mode == "max":
            return grid.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
        if self.mode == "mean":
            return grid.sum(1) / mask.sum(1, keepdim=True).to(grid.dtype)
        scores = self.score(torch.tanh(self.proj(grid))).squeeze(-1)  # (B, K)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)
        return torch.bmm(weights.unsqueeze(1), grid).squeeze(1)  # (B, D)
