"""spaCy's rule-based English tokenizer, run through `datasets.map` so results are cached.

`spacy.blank("en")` needs no model download. The cache key (fingerprint) is the input
dataset's fingerprint plus the tokenizer settings and versions, so changing `lowercase` or
upgrading spaCy re-tokenizes, and nothing else does.
"""

from __future__ import annotations

import hashlib
import sys
import weakref
from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING

from textlstm.core.hardware import usable_cores

if TYPE_CHECKING:  # `datasets` is imported where it is used: a bundle tokenizes without it
    from datasets import Dataset, DatasetDict

    from textlstm.tokens.vocab import Vocab

# bump when the tokenization code below changes what it produces
TOKENIZER_VERSION = "1"


def spacy_module(torch_free: bool = False):
    """spaCy, imported on first use. spaCy imports thinc, and thinc imports torch whenever it is
    installed (to offer PyTorch layers); the blank English tokenizer uses none of it. With
    `torch_free` (a bundle's predictor: it must not load torch, which also costs seconds), torch
    is hidden while spaCy is first imported, so thinc records "no torch" for this process; the
    block is lifted at once, and `import torch` works as usual afterwards."""
    if torch_free and "spacy" not in sys.modules and "torch" not in sys.modules:
        sys.modules["torch"] = None  # `import torch` raises ImportError, which thinc handles
        try:
            import spacy
        finally:
            if "torch" in sys.modules and sys.modules["torch"] is None:
                del sys.modules["torch"]
    import spacy

    return spacy


# spaCy keeps every string it meets (its StringStore and lexeme table grow with each new word,
# URL or typo), and a server or a long `predict --input` stream never stops meeting new ones:
# memory grew without bound. spaCy's `memory_zone()` frees them but turns the tokenizer's cache
# off (3x slower here with the tokenizer alone, 25% slower with a warmed cache), so instead a
# fresh blank("en") replaces the old one once it holds MAX_STRINGS strings (the maintainers'
# advice, explosion/spaCy#3618): memory stays bounded and tokenizing keeps its speed. Only token
# strings and ids leave this module, never spaCy objects, so dropping the old pipeline is safe.
MAX_STRINGS = 200_000
_NLP = None


def _nlp():
    global _NLP
    if _NLP is None or len(_NLP.vocab.strings) > MAX_STRINGS:
        _NLP = spacy_module().blank("en")
    return _NLP


def encodable(text: str) -> str:
    """`text` as UTF-8 can hold it. A Python string may carry lone UTF-16 surrogates (JSON's
    "\\ud800" decodes to one), which spaCy cannot hash: a pair is joined into its character,
    a lone one becomes U+FFFD, as a UTF-8 decoder would have done with the bytes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _docs(texts):
    """spaCy Docs of `texts`, made encodable first: the one place every text is tokenized."""
    return _nlp().tokenizer.pipe(map(encodable, texts), batch_size=1000)


def tokenize_texts(texts: list[str], lowercase: bool = True) -> list[list[str]]:
    """Token strings per text; whitespace tokens are dropped."""
    out = []
    for doc in _docs(texts):
        words = [t.text for t in doc if not t.is_space]
        out.append([w.lower() for w in words] if lowercase else words)
    return out


def encode_texts(texts: list[str], vocab: Vocab, lowercase: bool = True,
                 max_length: int | None = None) -> list[list[int]]:
    """Token ids per text: the same as `vocab.encode(tokens, max_length)` for each of
    `tokenize_texts(texts, lowercase)`, without a Python string or Token per token
    (`encode_arrays`)."""
    flat, counts = encode_arrays(texts, vocab, lowercase, max_length)
    ids, out, at = flat.tolist(), [], 0
    for n in counts.tolist():
        out.append(ids[at : at + n])
        at += n
    return out


# texts tokenized as one Doc by `encode_arrays`: spaCy's work for a tweet is the same, and one
# Doc for 1,000 short texts costs less than 1,000 (a Doc each, then a Python Token per token)
JOIN_BATCH = 1000
JOIN_CHARS = 20_000  # and about this many characters: a Doc of long documents stays small
SMALL_BATCH = 16  # fewer texts than this go a Doc each (measured: 18 us a tweet either way)


def encode_arrays(texts: list[str], vocab: Vocab, lowercase: bool = True,
                  max_length: int | None = None):
    """(the ids of every text concatenated (sum L,) int64, tokens per text (N,) int64): the ids
    of `encode_texts`, in arrays. spaCy already holds each token's id (LOWER or ORTH: the hash
    of the string, or a fixed symbol for a few hundred common words), so the vocabulary is
    looked up by that id, for all tokens at once. A batch of texts is tokenized as one text,
    one per line: spaCy splits at whitespace and tokenizes each piece on its own, and the line
    break between two texts is a whitespace token, so its last pass (special cases such as
    ":)" matched over several tokens) never sees two texts' tokens side by side; every token is
    then given back to its text by its character offset. 20.5 us a tweet against 24.3 for a
    Doc per text in batches of 1,000 (benchmarks/experiments/predict_parts.py);
    tests/test_properties.py checks the ids against `tokenize_texts`, text by text."""
    import numpy as np

    # a server's micro-batch: numpy's fixed cost (~35 us a call) outweighs what it saves on a
    # few texts, so each goes a Doc of its own
    if len(texts) < SMALL_BATCH:
        from spacy.strings import get_string_id

        get = vocab.by_key(get_string_id).get
        rows = [[get(t.lower if lowercase else t.orth, 1) for t in doc if not t.is_space]
                [:max_length] for doc in _docs(texts)]
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        return np.fromiter(chain.from_iterable(rows), np.int64, int(lengths.sum())), lengths
    from spacy.attrs import IDX, IS_SPACE, LOWER, ORTH

    keys, values = _key_arrays(vocab)
    attrs = [LOWER if lowercase else ORTH, IS_SPACE, IDX]
    ids, counts = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for part in _join_batches(texts):
        tok = _nlp().tokenizer(SEPARATOR.join(part)).to_array(attrs)  # (tokens, 3) uint64
        starts = np.cumsum([0] + [len(t) + 1 for t in part[:-1]])  # (N,) where each text begins
        tok = tok[tok[:, 1] == 0]
        which = np.searchsorted(starts, tok[:, 2].astype(np.int64), side="right") - 1
        n = np.bincount(which, minlength=len(part)).astype(np.int64)
        key = tok[:, 0]
        if max_length is not None:  # each text's first max_length tokens
            position = np.arange(len(key)) - (np.cumsum(n) - n)[which]
            key = key[position < max_length]
            n = np.minimum(n, max_length)
        at = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        ids.append(np.where(keys[at] == key, values[at], 1))  # 1: <unk>
        counts.append(n)
    return np.concatenate(ids), np.concatenate(counts)


def _join_batches(texts: list[str]) -> Iterator[list[str]]:
    """`texts` made encodable, in batches of at most JOIN_BATCH texts and about JOIN_CHARS
    characters (a longer text alone)."""
    part: list[str] = []
    size = 0
    for text in map(encodable, texts):
        part.append(text)
        size += len(text) + 1
        if len(part) >= JOIN_BATCH or size >= JOIN_CHARS:
            yield part
            part, size = [], 0
    if part:
        yield part


SEPARATOR = "\n"  # between two texts tokenized together: a token of its own (see above)
_KEY_ARRAYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _key_arrays(vocab: Vocab):
    """The vocabulary by spaCy's ids as two arrays, the ids sorted, for `np.searchsorted`."""
    if vocab not in _KEY_ARRAYS:
        import numpy as np
        from spacy.strings import get_string_id

        table = vocab.by_key(get_string_id)
        keys = np.fromiter(table.keys(), np.uint64, len(table))
        values = np.fromiter(table.values(), np.int64, len(table))
        if not len(keys):  # a vocabulary of <pad> and <unk> alone: no key matches
            keys, values = np.zeros(1, np.uint64), np.ones(1, np.int64)
        order = np.argsort(keys)
        _KEY_ARRAYS[vocab] = (keys[order], values[order])
    return _KEY_ARRAYS[vocab]


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
    fp = fingerprint(ds._fingerprint, "spacy-en", spacy_module().__version__, TOKENIZER_VERSION,
                     lowercase)
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
    from datasets import DatasetDict

    return DatasetDict({s: tokenize_dataset(d, lowercase, num_proc) for s, d in dd.items()})
