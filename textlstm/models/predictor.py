"""A trained network with its vocabulary and labels: raw texts in, labels and probabilities out.

`textlstm.load(PATH)` (serving/loader.py) builds one from a run folder."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from omegaconf import DictConfig

from textlstm.batches.collate import collate
from textlstm.core.errors import UserError
from textlstm.models.classifier import TextClassifier
from textlstm.tokens.tokenize import tokenize_texts
from textlstm.tokens.vocab import Vocab


class Predictor:
    """A trained network with its vocabulary, labels and tokenizer settings."""

    engine = "torch"  # a bundle's predictor says "onnx" (serving/bundle.py)

    def __init__(self, net: TextClassifier, vocab: Vocab, labels: list[str], cfg: DictConfig,
                 run_dir: Path | None = None, device: str | torch.device = "cpu"):
        self.net = net.train(False).to(device)
        self.vocab, self.labels, self.cfg, self.run_dir = vocab, labels, cfg, run_dir
        self.device = torch.device(device)

    @property
    def text_field(self) -> str:
        """The column (or JSON key) that holds the text in input files."""
        return self.cfg.data.text_field

    @property
    def label_field(self) -> str:
        return self.cfg.data.label_field

    def encode(self, texts: list[str]) -> list[list[int]]:
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise UserError(f"text #{i + 1} is a {type(t).__name__}, not a string; pass strings.")
        toks = tokenize_texts(texts, self.cfg.data.lowercase)
        return [self.vocab.encode(t, self.cfg.data.max_length) for t in toks]

    @torch.inference_mode()
    def predict_proba(self, texts: list[str], batch_size: int | None = None) -> torch.Tensor:
        """(N, C) probabilities in input order. Batches are built by length to skip padding."""
        return self.proba_from_ids(self.encode(list(texts)), batch_size)

    @torch.inference_mode()
    def proba_from_ids(self, ids: list[list[int]], batch_size: int | None = None) -> torch.Tensor:
        """(N, C) probabilities for already-encoded texts, in input order."""
        bs = batch_size or self.cfg.data.eval_batch_size
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        probs = torch.empty(len(ids), len(self.labels))
        for s in range(0, len(order), bs):
            chunk = order[s : s + bs]
            batch = collate([{"ids": ids[i]} for i in chunk])
            logits = self.net(batch["ids"].to(self.device), batch["lengths"].to(self.device))
            probs[chunk] = logits.float().softmax(-1).cpu()
        return probs

    def predict(self, texts: Iterable[str] | str, batch_size: int | None = None) -> list[dict]:
        """One dict per text: {"label": str, "probabilities": {label: p}}."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            return []
        probs = self.predict_proba(texts, batch_size)
        out = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            out.append({"label": self.labels[best],
                        "probabilities": {lab: round(p, 6) for lab, p in zip(self.labels, row, strict=True)}})
        return out

    def predict_stream(self, texts: Iterable[str], chunk_size: int = 8192) -> Iterator[tuple[str, dict]]:
        """(text, prediction) pairs over any iterable of texts, `chunk_size` texts held at once."""
        buf: list[str] = []
        for t in texts:
            buf.append(t)
            if len(buf) >= chunk_size:
                yield from zip(buf, self.predict(buf), strict=True)
                buf = []
        if buf:
            yield from zip(buf, self.predict(buf), strict=True)
