"""`model.wide: tfidf`: a TF-IDF logistic regression beside the BiLSTM, mixed in after training.

On long keyword-driven documents and on classes with a handful of texts a linear model over
word counts beats a BiLSTM that memorises its training set (docs/accuracy.md: `debian-long`,
`debian-rare`). Rather than make the network learn what a linear model gets from a convex fit,
the run fits one (training/wide.py) over the run's ids (its vocabulary also keeps the words
too rare for the network, which reads them as <unk>: batches/datamodule.py), and the answer
is the mixture of the two models' probabilities, with the weight chosen on validation:

    p = mix * softmax(network logits) + (1 - mix) * softmax(tfidf logits)

`mix` is 1 while the network trains (the module then returns the network's logits bit for
bit), so training, early stopping and the greedy soup see the network alone. The weights are
buffers, not parameters: the optimiser of the network never touches them.

Features are scikit-learn's `TfidfVectorizer(sublinear_tf=True)` (its smooth idf and L2 norm)
computed from ids; <pad> and <unk> (ids 0 and 1) weigh nothing, as out-of-vocabulary words
weigh nothing there.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def mix_log_probs(deep: torch.Tensor, wide: torch.Tensor, w: float) -> torch.Tensor:
    """log(w p + (1 - w) q) from log p and log q (B, C), without leaving log space, where both
    can underflow to 0; w in (0, 1)."""
    both = torch.stack([deep + math.log(w), wide + math.log(1 - w)])  # (2, B, C)
    return torch.logsumexp(both, dim=0)  # (B, C)


class TfidfLinear(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int):
        super().__init__()
        self.register_buffer("idf", torch.zeros(vocab_size))  # (V,) 0 for <pad>, <unk>
        self.register_buffer("weight", torch.zeros(num_classes, vocab_size))  # (C, V)
        self.register_buffer("bias", torch.zeros(num_classes))  # (C,)
        self.register_buffer("mix", torch.ones(()))  # the network's share; 1: off

    def counts(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids, padded with 0 -> (B, V) how often each word occurs in each text."""
        counts = torch.zeros(ids.size(0), self.idf.numel(), device=ids.device)
        return counts.scatter_add_(1, ids.long(), torch.ones_like(ids, dtype=counts.dtype))

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids, padded with 0 -> (B, V) L2-normalised sublinear TF-IDF rows."""
        counts = self.counts(ids)
        # 1 + ln(count) where a word occurs (sublinear tf); clamp keeps log(0) out of the graph
        tf = torch.where(counts > 0, 1 + counts.clamp(min=1).log(), torch.zeros_like(counts))
        x = tf * self.idf  # (B, V)
        return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def contributions(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, T) each token's exact share of its row's target logit above the bias: its
        word's feature times the word's weight for the target, split evenly over the word's
        occurrences (integrated gradients from an empty text give the same, the logit being
        linear in the features). They add up to logit - bias."""
        x, n = self.features(ids), self.counts(ids).clamp(min=1)  # (B, V) x2
        per_word = x * self.weight[targets] / n  # (B, V)
        return per_word.gather(1, ids.long())  # (B, T); <pad> has idf 0, so 0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.features(ids) @ self.weight.T + self.bias  # (B, C) logits

    def combine(self, logits: torch.Tensor, ids: torch.Tensor,
                keep_network: bool = False, share: float | None = None) -> torch.Tensor:
        """The network's (B, C) logits -> the mixture's log-probabilities (B, C), which stand
        for logits everywhere after (softmax gives the mixture back; the temperature divides
        them). With mix 1 the network's logits come back untouched. `keep_network`: with mix 0
        still read the network's logits at a share of 1e-12 (an ONNX graph that did not use
        them would lose its `lengths` input, which bundles always feed)."""
        w = float(self.mix) if share is None else share  # `share`: the caller read it
        if w >= 1.0:
            return logits
        wide = torch.log_softmax(self(ids), dim=-1)  # (B, C)
        if w <= 0.0 and not keep_network:  # TextClassifier.forward does not run the network
            return wide
        w = max(w, 1e-12)
        return mix_log_probs(torch.log_softmax(logits.float(), dim=-1), wide, w)


def smooth_idf(doc_freq: torch.Tensor, n_docs: int) -> torch.Tensor:
    """scikit-learn's smooth idf: ln((1 + n) / (1 + df)) + 1; <pad> and <unk> get 0."""
    idf = torch.log((1.0 + n_docs) / (1.0 + doc_freq.double())) + 1.0
    idf[:2] = 0.0
    return idf.float()
