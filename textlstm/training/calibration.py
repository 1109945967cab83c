"""Calibrated probabilities: one temperature fitted on the validation split, and how far the
probabilities are from the accuracy they claim (expected calibration error, reliability bins).

Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", 2017) divides the
logits by one T > 0 chosen to minimise the validation negative log-likelihood. T > 1 softens
over-confident probabilities; argmax, hence every predicted label, is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_calibration_error

N_BINS = 15
# a validation split the model gets entirely right pushes the NLL-optimal T towards 0 (ever
# more confident); these bounds keep T meaningful when validation carries no such signal
T_MIN, T_MAX = 0.05, 20.0


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    return float(F.cross_entropy(logits.double() / temperature, labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T minimising NLL(softmax(logits / T), labels); logits (N, C), labels (N,)."""
    if logits.numel() == 0:
        return 1.0
    # clones: Lightning evaluates in inference mode, whose tensors autograd cannot save
    z, y = logits.detach().clone().double(), labels.detach().clone().long()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)  # T = exp(log_t) stays > 0
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(min(T_MAX, max(T_MIN, log_t.exp().item())))


def ece(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Expected calibration error over 15 equal-width confidence bins (torchmetrics')."""
    if logits.numel() == 0:
        return float("nan")
    probs = (logits.double() / temperature).softmax(-1).float()
    return float(multiclass_calibration_error(probs, labels.long(), num_classes=logits.size(-1),
                                              n_bins=N_BINS, norm="l1"))


def _bin_of(conf: torch.Tensor) -> torch.Tensor:
    """Bin i holds confidences in (i/15, (i+1)/15], as torchmetrics bins them for ece()."""
    return (torch.ceil(conf * N_BINS).long() - 1).clamp(0, N_BINS - 1)


def ece_floor(logits: torch.Tensor, temperature: float = 1.0, draws: int = 200,
              seed: int = 0) -> float:
    """The ECE that a perfectly calibrated model would still show on this many texts: the mean
    ECE over `draws` label sets drawn from the calibrated probabilities themselves.

    ECE over equal-width bins is biased upwards on small samples: with 212 test articles, a
    model whose probabilities are exactly right still scores about 0.02 (docs/benchmarks.md,
    Calibration). A measured ECE near this floor is consistent with calibrated probabilities.
    Simulated rather than looked up because the floor depends on how the confidences spread
    over the bins. Only correctness matters to ECE, and under calibration the top label is
    right with probability equal to its confidence, so each draw is a Bernoulli per text."""
    if logits.numel() == 0:
        return float("nan")
    conf = (logits.double() / temperature).softmax(-1).max(-1).values  # (N,)
    n = conf.numel()
    idx = _bin_of(conf)
    conf_sum = torch.zeros(N_BINS, dtype=torch.float64).index_add_(0, idx, conf)  # (bins,)
    g = torch.Generator().manual_seed(seed)
    total, step = 0.0, max(1, 2_000_000 // n)  # draws per block: bounds memory to ~16 MB
    for start in range(0, draws, step):
        d = min(step, draws - start)
        right = torch.bernoulli(conf.expand(d, n), generator=g)  # (D, N)
        right_sum = torch.zeros(d, N_BINS, dtype=torch.float64).index_add_(1, idx, right)
        total += float((right_sum - conf_sum).abs().sum() / n)  # sum over draws of ECE
    return total / draws


def reliability(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> dict:
    """Per confidence bin: mean confidence, accuracy and count (what a reliability diagram
    draws); empty bins hold None."""
    probs = (logits.double() / temperature).softmax(-1)
    conf, pred = probs.max(-1)  # (N,), (N,)
    correct = (pred == labels).double()
    idx = _bin_of(conf)
    out = {"bins": N_BINS, "confidence": [], "accuracy": [], "count": []}
    for b in range(N_BINS):
        m = idx == b
        n = int(m.sum())
        out["count"].append(n)
        out["confidence"].append(round(float(conf[m].mean()), 6) if n else None)
        out["accuracy"].append(round(float(correct[m].mean()), 6) if n else None)
    return out
