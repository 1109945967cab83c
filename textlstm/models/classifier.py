"""The network: embedding -> encoder -> pooling -> head. A plain nn.Module, no Lightning."""

from __future__ import annotations

import torch
from torch import nn

from textlstm.models.encoders import build_encoder
from textlstm.models.pooling import Pooling


class TextClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, cfg):
        """`cfg` is the config's `model` section."""
        super().__init__()
        e = cfg.embedding
        self.embedding = nn.Embedding(vocab_size, e.dim, padding_idx=0)
        self.embedding_dropout = nn.Dropout(e.dropout)
        self.encoder = build_encoder(e.dim, cfg.encoder)
        self.pooling = Pooling(cfg.pooling, self.encoder.get_output_dim())
        d = self.pooling.get_output_dim()
        layers: list[nn.Module] = [nn.Dropout(cfg.head.dropout)]
        if cfg.head.hidden_size:
            layers += [nn.Linear(d, cfg.head.hidden_size), nn.ReLU(), nn.Dropout(cfg.head.dropout)]
            d = cfg.head.hidden_size
        layers.append(nn.Linear(d, num_classes))
        self.head = nn.Sequential(*layers)

    def load_vectors(self, vectors: torch.Tensor, found: torch.Tensor, freeze: bool = False) -> None:
        """Copy pretrained rows into the embedding (rows not found keep their random init)."""
        if vectors.size(1) != self.embedding.embedding_dim:
            raise ValueError(f"vectors have dim {vectors.size(1)}, embedding has {self.embedding.embedding_dim}")
        with torch.no_grad():
            self.embedding.weight[found] = vectors[found]
        self.embedding.weight.requires_grad_(not freeze)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embedding_dropout(self.embedding(ids))  # (B, T, E)
        states, final = self.encoder(x, lengths)  # (B, T, D), (B, D)
        return self.pooling(states, lengths, final)  # (B, D)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(ids, lengths))  # (B, C) logits
