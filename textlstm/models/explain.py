"""Which words decided: token attributions by integrated gradients on the embedding layer.

Integrated gradients (Sundararajan et al., 2017) integrate the gradient of the label's logit
along a straight path from a baseline input to the text; the per-token sums add up to
logit(text) - logit(baseline) (completeness; Captum reports the gap as the convergence
delta). The baseline is the padding embedding (a zero vector), so a token's score is what
reading it, rather than nothing, added to the label's logit. Captum's LayerIntegratedGradients
does the integration; we only choose the layer, the baseline and the target.
"""

from __future__ import annotations

import logging

import torch

from textlstm.models.predictor import Predictor
from textlstm.tokens.tokenize import tokenize_texts

log = logging.getLogger("textlstm")
DEFAULT_STEPS = 64
MAX_STEPS = 1024
TOLERANCE = 0.01


def share(net) -> float:
    """The network's share of the answer: 1 without `model.wide` (models/wide.py)."""
    wide = getattr(net, "wide", None)  # any module with forward(ids, lengths) is explained
    return 1.0 if wide is None else float(wide.mix)


@torch.no_grad()
def explained_score(net, ids: torch.Tensor, lengths: torch.Tensor, target: int) -> float:
    """What the attributions of row 0 explain: the target's logit, or with `model.wide` the
    parts' logits weighted by their shares (the mixture's log-probability is not a sum of
    token effects, and with the network's share 0 it does not depend on the word vectors)."""
    net = net.train(False)
    m = share(net)
    if getattr(net, "wide", None) is None:
        return float(net(ids, lengths)[0, target])
    deep = float(net.forward_network(ids, lengths)[0, target]) if m > 0 else 0.0
    return m * deep + (1 - m) * float(net.wide(ids)[0, target])


def attribute_ids(net, ids: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
                  steps: int = DEFAULT_STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Attributions (B, T) of each token to its row's target logit, and the convergence deltas
    (B,). Padded positions hold the padding embedding in the text and in the baseline alike,
    so they get exactly 0. With `model.wide`, each part's attributions weighted by its share:
    the network's by integrated gradients, the TF-IDF part's exactly (its contributions)."""
    m = share(net)
    if m < 1:
        lin = net.wide.contributions(ids, targets).detach()  # (B, T)
        if m <= 0:
            return lin, torch.zeros(ids.size(0))
        attr, delta = _integrated_gradients(net.forward_network, net, ids, lengths, targets,
                                            steps)
        return m * attr + (1 - m) * lin, m * delta
    return _integrated_gradients(net, net, ids, lengths, targets, steps)


def _integrated_gradients(forward, net, ids, lengths, targets, steps):
    from captum.attr import LayerIntegratedGradients

    net = net.train(False)
    lig = LayerIntegratedGradients(lambda i, n: forward(i, n), net.embedding)
    # cuDNN cannot run an RNN's backward pass in eval mode; the attribution pass needs one
    with torch.backends.cudnn.flags(enabled=False):
        attr, delta = lig.attribute(ids, baselines=torch.zeros_like(ids), target=targets,
                                    additional_forward_args=(lengths,), n_steps=steps,
                                    return_convergence_delta=True)
    return attr.sum(-1).detach(), delta.detach()  # (B, T, E) -> (B, T)


def explain(pred: Predictor, text: str, label: str | None = None,
            steps: int = DEFAULT_STEPS, max_steps: int = MAX_STEPS,
            incomplete: list[float] | None = None) -> dict:
    """One text: the predicted (or the named) label, probabilities, spaCy tokens in text order
    (cut to data.max_length, as the model reads them) and one attribution per token.

    Attributions still incomplete at `max_steps` are reported by a warning. A caller that
    explains many texts passes a list as `incomplete` instead: each such text's gap, as a share
    of its logit, is appended there, and the caller says it once."""
    data = pred.cfg.data
    tokens = tokenize_texts([text], data.lowercase)[0][: data.max_length] or ["<unk>"]
    ids = torch.tensor([pred.vocab.encode(tokens)], device=pred.device)  # (1, T)
    lengths = torch.tensor([ids.size(1)], device=pred.device)
    row = pred.predict([text])[0]
    # multi-label: the most probable label (the answer may hold several, or none)
    top = row["label"] if "label" in row else max(row["probabilities"],
                                                  key=row["probabilities"].get)
    target = label if label is not None else top
    if target not in pred.labels:
        from textlstm.core.errors import UserError

        raise UserError(f"label '{target}' is not one of this model's labels "
                        f"({', '.join(pred.labels)}); pass one of them to --label.")
    targets = torch.tensor([pred.labels.index(target)])
    fx = explained_score(pred.net, ids, lengths, int(targets[0]))  # the logit being explained
    # more steps until complete: the attributions must add up to f(x) - f(baseline) within
    # TOLERANCE of |f(x)| (a saturated LSTM gate can need more than the default)
    while True:
        attr, delta = attribute_ids(pred.net, ids, lengths, targets, steps)
        if abs(float(delta[0])) <= TOLERANCE * abs(fx) or steps >= max_steps:
            break
        steps *= 2
    if abs(float(delta[0])) > TOLERANCE * abs(fx):
        # measured on BBC runs (docs/history/benchmarks-sessions.md, "On a GPU"): over
        # hundreds of tokens an LSTM's logit can jump along the straight path from the baseline
        # (its state flips between attractors within a step of 1e-4), which no number of steps
        # integrates
        gap = abs(float(delta[0])) / max(abs(fx), 1e-12)
        if incomplete is not None:
            incomplete.append(gap)
        else:
            log.warning("the attributions add up to the logit's change only within %.3g (%.0f "
                        "%% of the logit) after %d steps: the model's output jumps along the "
                        "integration path; read them as a ranking of the words, not as amounts.",
                        abs(float(delta[0])), 100 * gap, steps)
    return {"label": target, "probabilities": row["probabilities"], "tokens": tokens,
            "attributions": [round(float(a), 6) for a in attr[0]],
            "delta": round(float(delta[0]), 6)}
