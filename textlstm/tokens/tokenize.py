"""spaCy's rule-based English tokenizer, run through `datasets.map` so results are cached.

`spacy.blank("en")` needs no model download. The cache key (fingerprint) is the input
dataset's fingerprint plus the tokenizer settings and versions, so changing `lowercase` or
upgrading spaCy re-tokenizes, and nothing else does.
"""

from __future__ import annotations

import hashlib
import sys
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
    `tokenize_texts(texts, lowercase)`, without a Python string per token. spaCy already holds
    each token's id (LOWER or ORTH: the hash of the string, or a fixed symbol for a few hundred
    common words), so the vocabulary is looked up by that id; the string lists cost about 14 us
    a tweet, a third of tokenizing (docs/benchmarks.md, "Predict at scale")."""
    from spacy.strings import get_string_id

    get = vocab.by_key(get_string_id).get
    out = []
    for doc in _docs(texts):
        keys = [t.lower if lowercase else t.orth for t in doc if not t.is_space]
        out.append([get(k, 1) for k in keys[:max_length]])
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
