"""spaCy's rule-based English tokenizer, run through `datasets.map` so results are cached.

`spacy.blank("en")` needs no model download. The cache key (fingerprint) is the input
dataset's fingerprint plus the tokenizer settings and versions, so changing `lowercase` or
upgrading spaCy re-tokenizes, and nothing else does.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import spacy
from datasets import Dataset, DatasetDict

from textlstm.core.hardware import usable_cores

# bump when the tokenization code below changes what it produces
TOKENIZER_VERSION = "1"


@lru_cache(maxsize=1)
def _nlp():
    return spacy.blank("en")


def tokenize_texts(texts: list[str], lowercase: bool = True) -> list[list[str]]:
    """Token strings per text; whitespace tokens are dropped."""
    tok = _nlp().tokenizer
    out = []
    for doc in tok.pipe(texts, batch_size=1000):
        words = [t.text for t in doc if not t.is_space]
        out.append([w.lower() for w in words] if lowercase else words)
    return out


def _tokenize_batch(batch, lowercase: bool):
    return {"tokens": tokenize_texts(batch["text"], lowercase)}


def fingerprint(parent: str, *parts) -> str:
    h = hashlib.sha256(parent.encode())
    for p in parts:
        h.update(repr(p).encode())
    return h.hexdigest()[:16]


def tokenize_dataset(ds: Dataset, lowercase: bool = True, num_proc: int = 1,
                     min_rows_per_proc: int = 1000) -> Dataset:
    """Tokenize the `text` column into `tokens`, cached on disk. `num_proc` > 1 forks worker
    processes, which pays only for large splits (fork + spaCy start cost ~0.5 s each)."""
    if num_proc <= 0:
        num_proc = usable_cores()
    fp = fingerprint(ds._fingerprint, "spacy-en", spacy.__version__, TOKENIZER_VERSION, lowercase)
    return ds.map(
        _tokenize_batch,
        batched=True,
        batch_size=1000,
        fn_kwargs={"lowercase": lowercase},
        num_proc=num_proc if num_proc > 1 and len(ds) >= num_proc * min_rows_per_proc else None,
        new_fingerprint=fp,
        desc="tokenizing",
    )


def tokenize_splits(dd: DatasetDict, lowercase: bool = True, num_proc: int = 1) -> DatasetDict:
    return DatasetDict({s: tokenize_dataset(d, lowercase, num_proc) for s, d in dd.items()})
