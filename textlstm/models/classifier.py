"""The network: embedding -> encoder -> pooling -> head. A plain nn.Module, no Lightning."""

from __future__ import annotations

import torch
from torch import nn

from textlstm.core.errors import UserError
from textlstm.models.cells import PeepholeEncoder
from textlstm.models.chunks import ChunkPooling, window_counts, windows
from textlstm.models.encoders import RNNEncoder
from textlstm.models.pooling import Pooling
from textlstm.models.version import ARCH_VERSION
from textlstm.models.wide import TfidfLinear

__all__ = ["ARCH_VERSION", "TextClassifier", "build_encoder", "network_from_checkpoint"]


def build_encoder(input_size: int, cfg) -> nn.Module:
    """`cfg` is the config's `model.encoder` section."""
    if cfg.cell in ("lstm", "gru"):
        return RNNEncoder(input_size, cfg.hidden_size, cfg.num_layers, cfg.bidirectional,
                          cfg.dropout,
                          cell=cfg.cell, impl=cfg.impl)
    if cfg.cell == "peephole_lstm":
        return PeepholeEncoder(input_size, cfg.hidden_size, cfg.num_layers, cfg.bidirectional,
                               cfg.dropout)
    raise ValueError(f"unknown cell {cfg.cell}")


class TextClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, cfg,
                 chunking: tuple[int, int] | None = None):
        """`cfg` is the config's `model` section; `chunking` is (window length, overlap) when
        `model.long_text` is chunks (core/config.py: chunking), None to read texts as they are."""
        super().__init__()
        e = cfg.embedding
        self.chunking = chunking
        # ids from network_vocab_size on are words kept for model.wide only (<unk> to the
        # network: batches/datamodule.py); configs from before it: the whole vocabulary
        wide = cfg.get("wide", "none") == "tfidf"
        self.network_vocab = int(cfg.get("network_vocab_size") or vocab_size) if wide \
            else vocab_size
        self.embedding = nn.Embedding(self.network_vocab, e.dim, padding_idx=0)
        self.embedding_dropout = nn.Dropout(e.dropout)
        self.word_dropout = float(e.get("word_dropout", 0.0))  # configs from before it: 0
        self.encoder = build_encoder(e.dim, cfg.encoder)
        # model.regions: K pieces of each document max-pooled apart (configs from before it: 1)
        self.pooling = Pooling(cfg.pooling, self.encoder.get_output_dim(),
                               regions=int(cfg.get("regions", 1)))
        d = self.pooling.get_output_dim()
        self.chunk_pooling = ChunkPooling(cfg.chunk_pooling, d) if chunking else None
        layers: list[nn.Module] = [nn.Dropout(cfg.head.dropout)]
        if cfg.head.hidden_size:
            layers += [nn.Linear(d, cfg.head.hidden_size), nn.ReLU(), nn.Dropout(cfg.head.dropout)]
            d = cfg.head.hidden_size
        layers.append(nn.Linear(d, num_classes))
        self.head = nn.Sequential(*layers)
        # model.wide: tfidf, a linear model mixed in after training (models/wide.py; configs
        # from before it: none)
        self.wide = TfidfLinear(vocab_size, num_classes) if wide else None

    def load_vectors(self, vectors: torch.Tensor, found: torch.Tensor,
                     freeze: bool = False) -> None:
        """Copy pretrained rows into the embedding (rows not found keep their random init)."""
        if vectors.size(1) != self.embedding.embedding_dim:
            raise ValueError(f"vectors have dim {vectors.size(1)}, embedding has "
                             f"{self.embedding.embedding_dim}")
        vectors, found = vectors[: self.network_vocab], found[: self.network_vocab]
        with torch.no_grad():
            self.embedding.weight[found] = vectors[found]
        self.embedding.weight.requires_grad_(not freeze)

    def network_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """The ids the network reads: words kept for `model.wide` only become <unk> (id 1)."""
        return ids if self.wide is None else ids.masked_fill(ids >= self.network_vocab, 1)

    def drop_words(self, ids: torch.Tensor) -> torch.Tensor:
        ids = self.network_ids(ids)
        if self.training and self.word_dropout > 0:
            # whole words become <unk> (id 1), never padding (id 0): unlike dropout on the
            # vectors' components, the model meets <unk> as it will for unseen test words
            drop = (torch.rand(ids.shape, device=ids.device) < self.word_dropout) & (ids != 0)
            ids = ids.masked_fill(drop, 1)
        return ids

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.encode_embedded(self.embedding(self.drop_words(ids)), lengths)

    def encode_embedded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, E) word vectors, before embedding dropout -> (B, D) text vectors
        (adversarial training perturbs the word vectors: training/module.py)."""
        x = self.embedding_dropout(x)  # (B, T, E)
        if self.chunking is not None:
            size, overlap = self.chunking
            # a batch whose texts all fit one window takes the plain path: one window pooled
            # over one window is the window itself (max, mean and attention alike)
            if bool((window_counts(lengths, size, overlap) > 1).any()):
                return self._encode_windows(x, lengths, size, overlap)
        states, final = self.encoder(x, lengths)  # (B, T, D), (B, D)
        return self.pooling(states, lengths, final)  # (B, D)

    def _encode_windows(self, x: torch.Tensor, lengths: torch.Tensor, size: int,
                        overlap: int) -> torch.Tensor:
        # embeddings are cut into windows (not the ids), so attributions on the embedding layer
        # still give one score per token of the document
        xw, wlen, owner, slot = windows(x, lengths, size, overlap)  # (N, W, E), (N,) x3
        states, final = self.encoder(xw, wlen)  # (N, W, D), (N, D)
        # with model.regions the pieces are cut from the whole document's length, not the
        # window's: each window max-pools the tokens of each piece it holds, and the max over
        # windows (chunk_pooling=max, which config requires) is then exactly the max over each
        # piece's tokens, the same numbers as one pass over the document would give
        vecs = self.pooling(states, wlen, final, slot * (size - overlap), lengths[owner])  # (N, D)
        return self.chunk_pooling(vecs, owner, slot, x.size(0))  # (B, D)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.wide is None:
            return self.forward_network(ids, lengths)  # (B, C) logits
        share = float(self.wide.mix)  # read once per batch: on a GPU each read is a sync
        if share <= 0.0:
            # the TF-IDF part alone (BBC, the Debian stand-ins): the network's logits would be
            # thrown away, and on long documents they are nearly all the cost (predicting
            # BBC's test articles: 0.23 s of the network, 0.04 s of the TF-IDF part)
            return torch.log_softmax(self.wide(ids), dim=-1)  # (B, C), as wide.combine gives
        return self.wide.combine(self.forward_network(ids, lengths), ids, share=share)

    def forward_network(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The BiLSTM's own logits, without a `model.wide` part."""
        return self.head(self.encode(ids, lengths))  # (B, C)

    def combine(self, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The network's logits mixed with `model.wide`'s (the logits themselves without one,
        and while training: models/wide.py)."""
        return logits if self.wide is None else self.wide.combine(logits, ids)

    def forward_embedded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The network's logits from word vectors (adversarial training): no `model.wide`
        part, which reads ids, and is not mixed in while training."""
        return self.head(self.encode_embedded(x, lengths))  # (B, C) logits


def arch_version_of(checkpoint: dict) -> int:
    """The architecture version a checkpoint was trained with (runs from before versions were
    stored are version 1)."""
    return int((checkpoint.get("textlstm") or {}).get("arch_version", 1))


def network_from_checkpoint(checkpoint: dict, vocab_size: int, num_classes: int, cfg,
                            where: str, chunking: tuple[int, int] | None = None
                            ) -> TextClassifier:
    """Rebuild the network from the config's `model` section and load a checkpoint's weights,
    refusing one made for another architecture version or another vocabulary/label set."""
    found = arch_version_of(checkpoint)
    if found != ARCH_VERSION:
        raise UserError(f"{where} was trained with model architecture version {found}, but this "
                        f"textlstm builds version {ARCH_VERSION}; load it with the textlstm "
                        "version that trained it, or retrain.")
    state = {k[len("net."):]: v
             for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    net = TextClassifier(vocab_size, num_classes, cfg, chunking)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = str(e).splitlines()
        detail = lines[1].strip()[:160] if len(lines) > 1 else "shape mismatch"
        raise UserError(f"checkpoint in {where} does not match its "
                        f"vocab.json/labels.json/config.yaml ({detail}); keep the files of one run "
                        "together.") from None
    return net
