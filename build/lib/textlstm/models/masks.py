"""Padding arithmetic shared by the encoders, the reference cells and pooling.

A batch is (B, T, ...) with each text's real tokens first and padding after; `lengths` (B,)
holds the number of real tokens. Everything that must ignore padding derives it from here."""

from __future__ import annotations

import torch


def padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) True at real positions, False at padding."""
    t = torch.arange(T, device=lengths.device).unsqueeze(0)  # (1, T)
    return t < lengths.unsqueeze(1)  # (B, T)


def reverse_index(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) index that reverses each row within its length and leaves padding in place."""
    t = torch.arange(T, device=lengths.device).unsqueeze(0)  # (1, T)
    L = lengths.unsqueeze(1)  # (B, 1)
    return torch.where(t < L, L - 1 - t, t)


def reverse_padded(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Gather x (B, T, H) along time with idx (B, T); idx is its own inverse."""
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.size(-1)))


def final_states(out: torch.Tensor, lengths: torch.Tensor, num_directions: int) -> torch.Tensor:
    """(B, D): the forward direction's state at each text's last real step, concatenated with
    the backward direction's state at step 0 (the last thing it read)."""
    last = out[torch.arange(out.size(0), device=out.device), lengths - 1]  # (B, D)
    if num_directions == 1:
        return last
    H = out.size(-1) // 2
    return torch.cat([last[:, :H], out[:, 0, H:]], dim=-1)
