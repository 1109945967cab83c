"""The bidirectional language model of `textlstm pretrain` (ELMo-style, Peters et al. 2018; the
target-task stage of ULMFiT, Howard & Ruder 2018; Dai & Le 2015), and copying it into a
classifier (`model.init_from`).

The embedding and encoder are built exactly as `TextClassifier` builds them (same modules, same
parameter names), so the classifier takes their weights as they are. In a one-layer
bidirectional encoder each direction reads only one side: the forward state at t has read
tokens 0..t and predicts token t+1, the backward state at t has read tokens t..T-1 and predicts
token t-1. (With stacked layers the second layer's forward half would read the first layer's
backward states, which have seen the future, so `pretrain` refuses them.)
"""

from __future__ import annotations

import torch
from torch import nn

from textlstm.core.errors import UserError
from textlstm.models.classifier import build_encoder

# the softmax's head holds the most frequent words (ids are by descending frequency), the
# rarer ones sit in tail clusters of smaller projections
CUTOFFS = (2000, 10000, 40000)


def cutoffs_for(vocab_size: int) -> list[int]:
    return [c for c in CUTOFFS if c < vocab_size - 1] or [max(1, vocab_size // 2)]


class BiLanguageModel(nn.Module):
    """`cfg` is the config's `model` section. forward(ids (B, T)) -> (forward NLL, backward NLL),
    each the mean over the window's T - 1 predictions (backward is 0 for a unidirectional
    encoder)."""

    def __init__(self, vocab_size: int, cfg):
        super().__init__()
        e = cfg.embedding
        self.embedding = nn.Embedding(vocab_size, e.dim, padding_idx=0)
        self.embedding_dropout = nn.Dropout(e.dropout)
        self.encoder = build_encoder(e.dim, cfg.encoder)
        self.hidden_size = cfg.encoder.hidden_size
        self.bidirectional = self.encoder.get_output_dim() == 2 * self.hidden_size
        self.output_dropout = nn.Dropout(e.dropout)
        # AdaptiveLogSoftmaxWithLoss, not a tied full softmax: a full softmax costs
        # V x H per predicted token (BBC: 30k words), more than the LSTM itself on 2 cores;
        # the adaptive one spends that on the ~2000 words that make most of the tokens and
        # still gives exact, normalised probabilities, so held-out perplexity is the true one.
        # One softmax serves both directions (as in ELMo).
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(self.hidden_size, vocab_size,
                                                     cutoffs_for(vocab_size), div_value=4.0)

    def _nll(self, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        states = self.output_dropout(states)  # (B, T-1, H)
        return self.softmax(states.reshape(-1, self.hidden_size), targets.reshape(-1)).loss

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = ids.shape
        x = self.embedding_dropout(self.embedding(ids))  # (B, T, E)
        lengths = torch.full((B,), T, dtype=torch.long)
        states, _ = self.encoder(x, lengths)  # (B, T, D)
        H = self.hidden_size
        fwd = self._nll(states[:, :-1, :H], ids[:, 1:])  # state at t -> token t+1
        if not self.bidirectional:
            return fwd, fwd.new_zeros(())
        bwd = self._nll(states[:, 1:, H:], ids[:, :-1])  # state at t -> token t-1
        return fwd, bwd


def describe(cfg) -> str:
    """The shape `model.init_from` needs to match, from a config's `model` section."""
    e = cfg.encoder
    return (f"{cfg.embedding.dim}-d word vectors and a {e.cell} encoder of {e.num_layers} "
            f"layer(s) x {e.hidden_size} units{', bidirectional' if e.bidirectional else ''}")


def copy_pretrained(net: nn.Module, lm_state: dict, lm_itos: list[str], itos: list[str],
                    lm_cfg, cfg, where: str) -> dict:
    """Copy a language model's word vectors (for the tokens both vocabularies hold; <pad> is
    left alone) and its encoder into `net` (a TextClassifier); returns what was copied.
    `lm_cfg`, `cfg`: the `model` sections that built each, for the error."""
    encoder = {k[len("encoder."):]: v for k, v in lm_state.items() if k.startswith("encoder.")}
    own = net.encoder.state_dict()
    same = (lm_state["embedding.weight"].shape[1] == net.embedding.embedding_dim
            and encoder.keys() == own.keys()
            and all(encoder[k].shape == own[k].shape for k in own))
    if not same:
        raise UserError(f"model.init_from {where} holds {describe(lm_cfg)}, but this config "
                        f"builds {describe(cfg)}; set model.embedding.dim and model.encoder.* to "
                        "the pretrain run's (its config.yaml), or pretrain again with this "
                        "config.")
    lm_index = {t: i for i, t in enumerate(lm_itos)}
    pairs = [(i, lm_index[t]) for i, t in enumerate(itos) if i != 0 and t in lm_index]
    rows = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    src = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    with torch.no_grad():
        if len(pairs):
            net.embedding.weight[rows] = lm_state["embedding.weight"][src].to(
                net.embedding.weight.dtype)
    net.encoder.load_state_dict(encoder, strict=True)
    return {"from": str(where), "embedding_rows": len(pairs), "vocab_size": len(itos),
            "encoder": True}
