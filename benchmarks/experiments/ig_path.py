"""Why integrated gradients are not complete on a long document: the label's logit along the
straight path from the padding baseline to the text, the gradient against finite differences
where it rises fastest, and Captum's convergence delta as the step count grows.

    python benchmarks/experiments/ig_path.py RUN [INDEX]
    # INDEX: a line of the run's test split (default 1)

docs/history/benchmarks-sessions.md ("On a GPU", explanations) quotes its output for a BBC run of
configs/auto.yaml (seed 42, test line 1). CPU only, float64 for the path scan.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import textlstm  # noqa: E402
from textlstm.tokens.tokenize import tokenize_texts  # noqa: E402


def main() -> int:
    run, index = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1
    pred = textlstm.load(run, device="cpu")
    cfg = pred.cfg.data
    split = Path(cfg.data_dir) / cfg.source / "test.jsonl"
    text = json.loads(split.read_text().splitlines()[index])["text"]
    toks = tokenize_texts([text], cfg.lowercase)[0][: cfg.max_length]
    ids = torch.tensor([pred.vocab.encode(toks)])  # (1, T)
    lengths = torch.tensor([ids.size(1)])
    net = pred.net.train(False).double()
    target = int(net(ids, lengths).argmax())
    emb = net.embedding(ids).detach()  # (1, T, E): the path runs from 0 to this

    def f(alpha: float, grad: bool = False):
        """The logit at alpha * embedding, and d/d alpha by autograd when `grad`."""
        e = (emb * alpha).clone().requires_grad_(grad)
        hook = net.embedding.register_forward_hook(lambda m, i, o: e)
        try:
            y = net(ids, lengths)[0, target]
        finally:
            hook.remove()
        if not grad:
            return float(y)
        y.backward()
        return float(y), float((e.grad * emb).sum())

    with torch.no_grad():
        path = [(float(a), f(float(a))) for a in np.linspace(0, 1, 201)]
    print(f"{len(toks)} tokens, label {pred.labels[target]}; logit along the path:")
    print(" ".join(f"{a:.3f}:{y:.3f}" for a, y in path[::10]))
    def steepest(points):
        return max(zip(points, points[1:], strict=False), key=lambda p: abs(p[1][1] - p[0][1]))

    a0 = steepest(path)[0][0]
    fine = [(float(a), f(float(a))) for a in np.linspace(a0, a0 + 0.005, 51)]
    (lo, ylo), (hi, yhi) = steepest(fine)
    print(f"steepest step: {ylo:.3f} at alpha {lo:.4f} -> {yhi:.3f} at alpha {hi:.4f}")
    for a in (lo - 0.01, lo, (lo + hi) / 2, hi + 0.01):
        h = 1e-6
        fd = (f(a + h) - f(a - h)) / (2 * h)
        print(f"alpha {a:.5f}: finite difference {fd:.4f}, gradient {f(a, True)[1]:.4f}")

    from captum.attr import LayerIntegratedGradients

    net = net.float()
    lig = LayerIntegratedGradients(lambda i, n: net(i, n), net.embedding)
    for steps in (64, 256, 1024):
        attr, delta = lig.attribute(ids, baselines=torch.zeros_like(ids), target=target,
                                    additional_forward_args=(lengths,), n_steps=steps,
                                    return_convergence_delta=True, internal_batch_size=64)
        print(f"{steps} steps: attributions sum {float(attr.sum()):.3f}, delta "
              f"{float(delta[0]):+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
