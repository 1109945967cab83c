"""Batches: token ids of one split -> padded (B, T) tensors with lengths and labels.

`make_datamodule(cfg.data, ...)` picks the prepared path (TextDataModule: splits tokenized
once into an Arrow cache, bucketed by length) or the streamed one (StreamingDataModule)."""

from __future__ import annotations


def make_datamodule(cfg, seed: int, vocab=None, labels=None, task: str = "multiclass",
                    long_text: str = "truncate", wide_words: bool = False):
    """`cfg` is the config's `data` section; `task` and `long_text` are the config's `task` and
    `model.long_text`; `wide_words`: `model.wide=tfidf` (TextDataModule)."""
    from textlstm.batches.datamodule import TextDataModule
    from textlstm.batches.streaming import StreamingDataModule

    if cfg.streaming:  # config validation refuses streaming with task=multilabel
        return StreamingDataModule(cfg, seed=seed, vocab=vocab, labels=labels)
    return TextDataModule(cfg, seed=seed, vocab=vocab, labels=labels, task=task,
                          long_text=long_text, wide_words=wide_words)
