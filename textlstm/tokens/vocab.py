"""The vocabulary: token <-> id, built from the training split only, saved as JSON."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from textlstm.core.errors import UserError
from textlstm.core.io import write_json

PAD, UNK = "<pad>", "<unk>"


class Vocab:
    """`<pad>` is id 0 and `<unk>` id 1; the rest by descending frequency, then alphabetically."""

    def __init__(self, itos: list[str]):
        if itos[:2] != [PAD, UNK]:
            raise ValueError("a vocabulary starts with <pad>, <unk>")
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        # a text that literally contains "<pad>" must not turn into padding: it reads as <unk>
        self._lookup = {t: i for t, i in self.stoi.items() if i != 0}
        self._by_key: tuple | None = None

    def by_key(self, key: Callable[[str], int]) -> dict[int, int]:
        """The lookup table with each token replaced by key(token), built once: spaCy's id of
        the string, for `tokenize.encode_texts`."""
        if self._by_key is None or self._by_key[0] is not key:
            self._by_key = (key, {key(t): i for t, i in self._lookup.items()})
        return self._by_key[1]

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_freq: int = 1,
              max_size: int | None = None) -> Vocab:
        counts = Counter()
        for toks in token_lists:
            counts.update(toks)
        return cls.from_counts(counts, min_freq, max_size)

    @classmethod
    def from_counts(cls, counts: Counter, min_freq: int = 1, max_size: int | None = None) -> Vocab:
        counts = Counter(counts)
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        # sorting by (-count, token) makes the ids independent of the order texts arrive in
        words = sorted((w for w, c in counts.items() if c >= min_freq),
                       key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max(0, max_size - 2)]
        return cls([PAD, UNK, *words])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: list[str], max_length: int | None = None) -> list[int]:
        if max_length is not None:
            tokens = tokens[:max_length]
        get = self._lookup.get
        return [get(t, 1) for t in tokens]

    def to_dict(self) -> dict:
        return {"itos": self.itos}

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict(), indent=None)

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        path = Path(path)
        try:
            itos = json.loads(path.read_text(encoding="utf-8"))["itos"]
            return cls(itos)
        except FileNotFoundError:
            raise UserError(f"vocabulary file {path} is missing; the run directory is incomplete, "
                            "retrain or copy it back.") from None
        except (ValueError, KeyError, TypeError):
            raise UserError(f"vocabulary file {path} is corrupt; restore it from the original "
                            "run.") from None
