"""What every predictor answers, whatever runs its network.

`textlstm.load` returns a run's `models.predictor.Predictor` (torch) or a bundle's
`serving.bundle.BundlePredictor` (onnxruntime); predict, evaluate, serve and bench take either.
Both inherit `Predictions`: they differ only in `predict_proba` (texts -> (N, C)
probabilities), and everything a caller sees (the answers' shape, label strings, multi-label
thresholds, streaming in chunks, the errors for bad input) is written once, here.

Free of torch and numpy: a bundle imports it and must never import torch (tests/test_export.py
checks `sys.modules`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from textlstm.core.errors import UserError


class Predictions:
    """Raw texts in; {"label", "probabilities"} (multi-label: {"labels", "probabilities"}) out.

    A subclass sets `labels` (the network's output order), `text_field` and `label_field`
    (the input files' column names), `engine`, and implements `predict_proba`."""

    engine: str
    labels: list[str]
    text_field: str
    label_field: str
    # task=multilabel: a sigmoid per label, and a label applies from its threshold up
    multilabel: bool = False
    thresholds: list[float] | None = None

    def predict_proba(self, texts: list[str], batch_size: int | None = None) -> Any:
        """(N, C) probabilities in input order, anything with `.tolist()` (a tensor, an array)."""
        raise NotImplementedError

    def predict(self, texts: Iterable[str] | str, batch_size: int | None = None,
                min_labels: int = 0) -> list[dict]:
        """One dict per text: {"label": str, "probabilities": {label: p}}; for a multi-label
        run {"labels": [...], "probabilities": {label: p}}, the labels at or above their
        thresholds, most probable first. `min_labels` (multi-label): answer at least that many
        labels, topping up with the most probable ones (1: never an empty answer)."""
        if isinstance(min_labels, bool) or not isinstance(min_labels, int) or min_labels < 0:
            raise UserError(f"min_labels is {min_labels!r}; use a whole number of labels, 0 or "
                            "more.")
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            return []
        return self.answers(self.predict_proba(texts, batch_size).tolist(), min_labels)

    def answers(self, probs: list[list[float]], min_labels: int = 0) -> list[dict]:
        """(N, C) probabilities as nested lists -> one answer per row, label strings mapped back
        from the output positions."""
        labels, out = self.labels, []
        thresholds = self.thresholds or [0.5] * len(labels)
        for row in probs:
            shown = {lab: round(p, 6) for lab, p in zip(labels, row, strict=True)}
            ranked = sorted(range(len(row)), key=lambda i: -row[i])  # ties: the first label
            if not self.multilabel:
                out.append({"label": labels[ranked[0]], "probabilities": shown})
                continue
            chosen = [i for i in ranked if row[i] >= thresholds[i]]
            chosen += [i for i in ranked if i not in chosen][: max(0, min_labels - len(chosen))]
            out.append({"labels": [labels[i] for i in chosen], "probabilities": shown})
        return out

    def answer_lines(self, texts: list[str], probs: list[list[float]], min_labels: int = 0
                     ) -> list[str]:
        """What `predict` writes: one JSON line per text, each equal to `json_line(text,
        answer)`. A multi-class line is written from a template, ~4x faster than building
        the answer's dict and dumping it (on 2 cores, 18 us a text of the int8 tweets stream's
        ~150 went there); a multi-label one takes the general path."""
        if self.multilabel:
            return [json_line(t, a) for t, a in
                    zip(texts, self.answers(probs, min_labels), strict=True)]
        keys = [json.dumps(lab, ensure_ascii=False) for lab in self.labels]
        # one %-template per label set ('%' in a label escaped); `encode_basestring` is what
        # json.dumps(text, ensure_ascii=False) calls, without its per-call set-up: 3.3 us a
        # tweet against 4.8 for an f-string per line and json.dumps, the same text
        # (benchmarks/experiments/predict_parts.py)
        template = ('{"text": %s, "label": %s, "probabilities": {'
                    + ", ".join(f"{k.replace('%', '%%')}: %r" for k in keys) + "}}\n")
        text_json = json.encoder.encode_basestring
        lines = []
        for text, row in zip(texts, probs, strict=True):
            top = row.index(max(row))  # ties: the first label
            lines.append(template % (text_json(text), keys[top], *[round(p, 6) for p in row]))
        return lines

    def predict_lines(self, texts: Iterable[str], min_labels: int = 0, chunk_size: int = 8192
                      ) -> Iterator[str]:
        """`predict --input`'s output: one JSON line per text, in order, over any iterable,
        `chunk_size` texts held at once."""
        for part in chunks(texts, chunk_size):
            check_texts(part)
            yield from self.answer_lines(part, self.predict_proba(part).tolist(), min_labels)

    def predict_blocks(self, texts: Iterable[str], min_labels: int = 0, chunk_size: int = 8192
                       ) -> Iterator[tuple[int, str]]:
        """`predict_lines` a chunk at a time: (how many texts, their lines joined), so a writer
        makes one call a chunk instead of one a text."""
        for part in chunks(texts, chunk_size):
            check_texts(part)
            lines = self.answer_lines(part, self.predict_proba(part).tolist(), min_labels)
            yield len(part), "".join(lines)

    def predict_stream(self, texts: Iterable[str], chunk_size: int = 8192,
                       min_labels: int = 0) -> Iterator[tuple[str, dict]]:
        """(text, prediction) pairs over any iterable of texts, `chunk_size` texts held at once."""
        return self.predict_chunks(chunks(texts, chunk_size), min_labels)

    def predict_chunks(self, parts: Iterable[list[str]], min_labels: int = 0
                       ) -> Iterator[tuple[str, dict]]:
        for part in parts:
            yield from zip(part, self.predict(part, min_labels=min_labels), strict=True)


def json_line(text: str, answer: dict) -> str:
    """One line of `predict`'s output (`answer_lines` writes the same text faster)."""
    return json.dumps({"text": text, **answer}, ensure_ascii=False) + "\n"


def check_texts(texts: list) -> None:
    """A text that is not a string is the caller's mistake, named by its position."""
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise UserError(f"text #{i + 1} is a {type(t).__name__}, not a string; pass strings.")


def chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of `size` texts (the last one shorter), read lazily: constant memory on a stream."""
    buf: list[str] = []
    for t in texts:
        buf.append(t)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf
