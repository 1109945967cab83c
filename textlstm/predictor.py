"""Loading a trained run and predicting labels: `textlstm.load("runs/<run>").predict([...])`.

Nothing here unpickles code: the checkpoint is read with `torch.load(weights_only=True)`,
vocabulary and labels are JSON, the config is YAML, and the network is rebuilt from them.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from omegaconf import DictConfig

from textlstm.config import load_config
from textlstm.data.batching import collate
from textlstm.data.tokenize import tokenize_texts
from textlstm.data.vocab import Vocab
from textlstm.errors import UserError
from textlstm.models.classifier import TextClassifier


def find_checkpoint(run_dir: Path, which: str = "best") -> Path:
    ckpt = run_dir / "checkpoints" / f"{which}.ckpt"
    if not ckpt.is_file():
        ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise UserError(f"run {run_dir} has no checkpoints/best.ckpt or last.ckpt; train it first or pass another run.")
    return ckpt


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The network's weights from a Lightning checkpoint, without running any code in it."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Unsupported" in str(e) or "global" in str(e).lower():
            raise UserError(f"checkpoint {path} contains code or objects that are not plain weights, so it was "
                            "refused; only load checkpoints written by textlstm.") from None
        raise UserError(f"checkpoint {path} is corrupt ({str(e).splitlines()[0][:120]}); use another checkpoint.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise UserError(f"checkpoint {path} is truncated or corrupt ({str(e).splitlines()[0][:120]}); "
                        "use last.ckpt/best.ckpt from an intact run.") from None
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {path} has no state_dict; it was not written by textlstm.")
    return {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}


def load_run_config(run_dir: Path, overrides: list[str] | None = None) -> DictConfig:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.yaml); pass a folder printed by `textlstm train`.")
    return load_config(path, overrides)


def load_labels(run_dir: Path) -> list[str]:
    path = run_dir / "labels.json"
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"labels file {path} is missing; the run directory is incomplete, retrain or copy it back.") from None
    except ValueError:
        raise UserError(f"labels file {path} is corrupt; restore it from the original run.") from None
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
        raise UserError(f"labels file {path} must be a JSON list of at least two label strings.")
    return labels


class Predictor:
    """A trained network with its vocabulary, labels and tokenizer settings."""

    def __init__(self, net: TextClassifier, vocab: Vocab, labels: list[str], cfg: DictConfig,
                 run_dir: Path | None = None, device: str | torch.device = "cpu"):
        self.net = net.train(False).to(device)
        self.vocab, self.labels, self.cfg, self.run_dir = vocab, labels, cfg, run_dir
        self.device = torch.device(device)

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

    def predict_stream(self, texts: Iterable[str], chunk_size: int = 8192) -> Iterator[dict]:
        """Constant-memory prediction over any iterable of texts."""
        buf: list[str] = []
        for t in texts:
            buf.append(t)
            if len(buf) >= chunk_size:
                yield from self.predict(buf)
                buf = []
        if buf:
            yield from self.predict(buf)


def load(run_dir: str | Path, overrides: list[str] | None = None, which: str = "best",
         device: str | None = None) -> Predictor:
    """Load a run directory written by `textlstm train`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist; pass a folder printed by `textlstm train`.")
    cfg = load_run_config(run_dir, overrides)
    vocab = Vocab.load(run_dir / "vocab.json")
    labels = load_labels(run_dir)
    state = read_state_dict(find_checkpoint(run_dir, which))
    net = TextClassifier(len(vocab), len(labels), cfg.model)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise UserError(f"checkpoint in {run_dir} does not match its vocab.json/labels.json/config.yaml "
                        f"({str(e).splitlines()[1].strip()[:160] if len(str(e).splitlines()) > 1 else 'shape mismatch'}); "
                        "keep the files of one run together.") from None
    if device is None:
        acc = cfg.trainer.accelerator
        device = "cuda" if acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available()) else "cpu"
    return Predictor(net, vocab, labels, cfg, run_dir, device)

