"""Language-model batches for `textlstm pretrain`: texts as one contiguous token stream, cut
into fixed-length windows.

A padded batch of whole documents would spend most of an epoch on padding and on the few
longest texts; a stream cut into `pretrain.bptt`-token windows has no padding, every batch
costs the same, and a window's edges only lose one prediction per direction. Documents are
joined end to end (no boundary token: the vocabulary must stay the classifier's, row for row).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from textlstm.core.errors import UserError
from textlstm.data.formats import iter_texts

UNLABELED_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".ndjson")


def check_unlabeled_file(path: str | Path) -> Path:
    """data.unlabeled_file, refused in one sentence if it is missing or of another format."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data.unlabeled_file {path} does not exist; give an existing .txt (a "
                        "text per line), .csv or .jsonl file, or set data.unlabeled_file=null.")
    if path.suffix.lower() not in UNLABELED_SUFFIXES:
        raise UserError(f"data.unlabeled_file {path} has the format '{path.suffix}'; use .txt "
                        "(a text per line), .csv/.tsv or .jsonl (data.text_field).")
    return path


def read_unlabeled(path: str | Path, text_field: str) -> list[str]:
    """The non-empty texts of data.unlabeled_file."""
    return [t for t in iter_texts(check_unlabeled_file(path), text_field) if t.strip()]


def split_documents(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) document indices: `fraction` of `n` (at least one, and at least one
    kept), drawn with `seed`."""
    if n < 2:
        raise UserError(f"pretraining needs at least 2 training texts to hold one out, found {n}; "
                        "add training texts.")
    held = min(n - 1, max(1, int(round(n * fraction))))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def join(docs: list[np.ndarray]) -> np.ndarray:
    """Documents' ids end to end, (N,) int64."""
    return np.concatenate(docs).astype(np.int64) if docs else np.zeros(0, np.int64)


def cut(stream: np.ndarray, bptt: int) -> torch.Tensor:
    """(W, T) windows of the stream, T = bptt (the stream's length if shorter); the tail that
    does not fill a window is left out."""
    size = min(bptt, len(stream))
    if size < 2:
        raise UserError(f"the token stream has {len(stream)} token(s); a language model needs "
                        "at least 2, so add texts.")
    n = len(stream) // size
    return torch.from_numpy(stream[: n * size].reshape(n, size).copy())  # (W, T)


def unigram_perplexity(train: np.ndarray, held: np.ndarray, vocab_size: int) -> float:
    """Perplexity on `held` of the token frequencies of `train` (add-one smoothed): what a
    model that ignores context scores, the reference the language model must beat."""
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64) + 1.0
    counts[0] = 0.0  # <pad> never occurs
    return float(np.exp(-np.log(counts[held] / counts.sum()).mean()))


@dataclass
class LMStreams:
    """The windows pretraining reads, and what the stream held."""
    train: torch.Tensor  # (W, T) int64
    held_out: torch.Tensor  # (W', T')
    stats: dict

    def loader(self, which: str, batch_size: int, seed: int = 0) -> DataLoader:
        windows = self.train if which == "train" else self.held_out
        shuffle = which == "train"
        return DataLoader(TensorDataset(windows), batch_size=batch_size, shuffle=shuffle,
                          generator=torch.Generator().manual_seed(seed) if shuffle else None)


def make_streams(train_docs: list[np.ndarray], unlabeled_docs: list[np.ndarray],
                 vocab_size: int, bptt: int, holdout_fraction: float, seed: int) -> LMStreams:
    """Training texts (less a held-out slice) + unlabelled texts -> training windows; the
    held-out slice of the training texts -> held-out windows."""
    kept, held = split_documents(len(train_docs), holdout_fraction, seed)
    train = join([train_docs[i] for i in kept] + list(unlabeled_docs))
    held_stream = join([train_docs[i] for i in held])
    stats = {"train_texts": len(kept), "unlabeled_texts": len(unlabeled_docs),
             "held_out_texts": len(held), "train_tokens": int(len(train)),
             "held_out_tokens": int(len(held_stream)),
             "unigram_perplexity": round(unigram_perplexity(train, held_stream, vocab_size), 4)}
    return LMStreams(cut(train, bptt), cut(held_stream, bptt), stats)
