"""Training the language model of `textlstm pretrain` with Lightning, and reading one back into
a classifier (`model.init_from`)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import lightning as L
import torch

from textlstm.core import runfolder
from textlstm.models.lm import BiLanguageModel, copy_pretrained
from textlstm.tokens.vocab import Vocab


class LitLanguageModel(L.LightningModule):
    """Loss: the mean of the two directions' NLL. Each validation pass over the held-out
    windows appends {epoch, steps, perplexity, forward, backward} to `history`; `best_state`
    holds the weights of the lowest held-out perplexity."""

    def __init__(self, net: BiLanguageModel, lr: float):
        super().__init__()
        self.net = net
        self.lr = lr
        self.history: list[dict] = []
        self.best_state: dict | None = None
        self.best = math.inf
        self.train_tokens = 0
        self.train_seconds = 0.0
        self._sums = torch.zeros(3, dtype=torch.float64)

    def _directions(self) -> int:
        return 2 if self.net.bidirectional else 1

    def training_step(self, batch, _):
        (ids,) = batch  # (B, T)
        fwd, bwd = self.net(ids)
        loss = (fwd + bwd) / self._directions()
        self.train_tokens += ids.numel()
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        return loss

    def on_train_epoch_start(self) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        self.train_seconds += time.perf_counter() - self._t0

    def on_validation_epoch_start(self) -> None:
        self._sums = torch.zeros(3, dtype=torch.float64)

    def validation_step(self, batch, _):
        (ids,) = batch
        fwd, bwd = self.net(ids)
        n = ids.size(0) * (ids.size(1) - 1)  # predictions per direction
        self._sums += torch.tensor([float(fwd) * n, float(bwd) * n, n], dtype=torch.float64)

    def on_validation_epoch_end(self) -> None:
        f, b, n = self._sums.tolist()
        d = self._directions()
        ppl = math.exp((f + b) / (d * max(n, 1)))
        entry = {"epoch": self.current_epoch + 1, "steps": int(self.global_step),
                 "perplexity": round(ppl, 4), "forward": round(math.exp(f / max(n, 1)), 4)}
        if d == 2:
            entry["backward"] = round(math.exp(b / max(n, 1)), 4)
        self.log("val/perplexity", ppl, prog_bar=True)
        self.history.append(entry)
        if ppl < self.best:
            self.best = ppl
            self.best_state = {k: v.detach().cpu().clone()
                               for k, v in self.net.state_dict().items()}

    def configure_optimizers(self):
        return torch.optim.AdamW(self.net.parameters(), lr=self.lr)


def init_from_pretrained(net, vocab: Vocab, cfg) -> dict:
    """`model.init_from`: the pretrain run's word vectors (by token) and encoder copied into
    `net`; returns what was copied, for metrics.json."""
    run_dir, state = runfolder.read_lm(cfg.model.init_from)
    lm_cfg = runfolder.load_run_config(run_dir)
    lm_vocab = Vocab.load(run_dir / runfolder.VOCAB)
    # model.wide's own words (ids from the network's vocabulary size on) have no row
    itos = vocab.itos[: net.embedding.num_embeddings]
    return copy_pretrained(net, state, lm_vocab.itos, itos, lm_cfg.model,
                           cfg.model, Path(cfg.model.init_from))
