"""A trained network with its vocabulary and labels: raw texts in, labels and probabilities out.

`textlstm.load(PATH)` (serving/loader.py) builds one from a run folder; a bundle's
`serving.bundle.BundlePredictor` answers the same way (both are `models.contract.Predictions`)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import DictConfig

from textlstm.batches.collate import collate
from textlstm.models.classifier import TextClassifier
from textlstm.models.contract import Predictions, check_texts
from textlstm.tokens.tokenize import encode_texts
from textlstm.tokens.vocab import Vocab


@contextmanager
def _full_fp32_rnn():
    """cuDNN runs RNNs in TF32 by default, and a text's logits then move by up to 2e-4 with the
    batch it is predicted in (measured on an H200; 1e-7 in full fp32: "On a GPU" in
    docs/history/benchmarks-sessions.md). Predictions use full fp32 so that, on a GPU too,
    padding never changes a result; training keeps the default. No effect on a CPU."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


class Predictor(Predictions):
    """A trained network with its vocabulary, labels and tokenizer settings; what it answers
    (`predict`, `predict_stream`) is `models.contract.Predictions`, shared with a bundle."""

    engine = "torch"  # a bundle's predictor says "onnx" (serving/bundle.py)

    def __init__(self, net: TextClassifier, vocab: Vocab, labels: list[str], cfg: DictConfig,
                 run_dir: Path | None = None, device: str | torch.device = "cpu",
                 temperature: float = 1.0, thresholds: list[float] | None = None):
        self.net = net.train(False).to(device)
        # calibration: probabilities are softmax(logits / temperature); labels never change
        self.temperature = float(temperature)
        # task=multilabel: a sigmoid per label, and a label applies from its threshold up
        self.multilabel = cfg.get("task", "multiclass") == "multilabel"
        self.thresholds = (list(thresholds) if thresholds is not None
                           else [0.5] * len(labels))
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
        check_texts(texts)
        return encode_texts(texts, self.vocab, self.cfg.data.lowercase, self.cfg.data.max_length)

    @torch.inference_mode()
    def predict_proba(self, texts: list[str], batch_size: int | None = None) -> torch.Tensor:
        """(N, C) probabilities in input order. Batches are built by length to skip padding."""
        return self.proba_from_ids(self.encode(list(texts)), batch_size)

    @torch.inference_mode()
    def proba_from_ids(self, ids: list[list[int]], batch_size: int | None = None) -> torch.Tensor:
        """(N, C) probabilities for already-encoded texts, in input order (multi-label: each
        label's own sigmoid probability, so a row need not sum to 1)."""
        return self._run_ids(ids, batch_size, vectors=False)[0]

    @torch.inference_mode()
    def proba_and_vectors(self, texts: list[str], batch_size: int | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C) probabilities and (N, H) text vectors: what the head's last layer reads (the
        pooled encoder output, through the head's hidden layer when it has one). `suggest
        --strategy diverse-ties` spreads its picks over these."""
        return self._run_ids(self.encode(list(texts)), batch_size, vectors=True)

    def _run_ids(self, ids: list[list[int]], batch_size: int | None, vectors: bool
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        bs = batch_size or self.cfg.data.eval_batch_size
        # batches are built by length to skip padding
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        probs = torch.empty(len(ids), len(self.labels))
        vecs = None
        with _full_fp32_rnn():
            for s in range(0, len(order), bs):
                chunk = order[s : s + bs]
                batch = collate([{"ids": ids[i]} for i in chunk])
                x = batch["ids"].to(self.device), batch["lengths"].to(self.device)
                if vectors:
                    h = self.net.head[:-1](self.net.encode(*x))  # (B, H)
                    if vecs is None:
                        vecs = torch.empty(len(ids), h.size(1))
                    vecs[chunk] = h.float().cpu()
                    logits = self.net.combine(self.net.head[-1](h), x[0])
                else:
                    logits = self.net(*x)
                scaled = logits.float() / self.temperature  # (B, C)
                probs[chunk] = (scaled.sigmoid() if self.multilabel
                                else scaled.softmax(-1)).cpu()
        return probs, vecs
