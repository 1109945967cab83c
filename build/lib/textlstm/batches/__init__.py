"""Batches: token ids of one split -> padded (B, T) tensors with lengths and labels.

`make_datamodule(cfg.data, ...)` picks the prepared path (TextDataModule: splits tokenized
once into an Arrow cache, bucketed by length) or the streamed one (StreamingDataModule)."""

from __future__ import annotations


def make_datamodule(cfg, seed: int, vocab=None, labels=None):
    """`cfg` is the config's `data` section."""
    from textlstm.batches.datamodule import TextDataModule
    from textlstm.batches.streaming import StreamingDataModule

    cls = StreamingDataModule if cfg.streaming else TextDataModule
    return cls(cfg, seed=seed, vocab=vocab, labels=labels)
