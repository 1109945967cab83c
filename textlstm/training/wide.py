"""After fit, with `model.wide: tfidf`: fit the TF-IDF logistic regression and choose its mix.

models/wide.py says what the part is and why. Here, on the training split's ids (the same
vocabulary, truncation and <unk> as the network reads):
1. the smooth idf and each text's L2-normalised sublinear TF-IDF row, as a sparse matrix;
2. a class-balanced multinomial logistic regression (scikit-learn's objective: C times the
   sum of the weighted losses plus half the squared weights), fitted by L-BFGS for each C in
   `CS`, the C with the best validation macro-F1 kept (ties: lower validation loss);
3. the network's share `mix` in the probability mixture, from `MIXES`, chosen the same way on
   the validation split with the network's best checkpoint (the soup, when there is one).
Class balance: on the `debian-rare` stand-in (34 of 50 classes with 2-10 training texts) the
balanced fit scored 0.38 test macro-F1 against 0.28 unweighted, and the same 0.999 on
`debian-long` (docs/accuracy.md).

scikit-learn is a dev extra only, and its models do not ride in a checkpoint or an ONNX
bundle: the fit is written here in torch (about 40 lines), its numbers checked against
scikit-learn's in tests/test_wide.py.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pyarrow.compute as pc
import torch
from torch.nn import functional as F
from torchmetrics.functional.classification import multiclass_f1_score

from textlstm.data.columns import column_array
from textlstm.models.wide import TfidfLinear, mix_log_probs, smooth_idf

log = logging.getLogger("textlstm")
CS = (1.0, 3.0, 10.0, 30.0, 100.0)
MIXES = tuple(i / 10 for i in range(11))  # the network's share; 1.0: the network alone


def ragged_ids(ds) -> tuple[np.ndarray, np.ndarray]:
    """A split's `ids` column as (flat ids, the row each belongs to), read from Arrow."""
    col = ds.select_columns(["ids"]).with_format("arrow")[:].column("ids").combine_chunks()
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.int64)
    return flat, np.repeat(np.arange(len(lengths)), lengths)


def word_counts(flat: np.ndarray, rows: np.ndarray, vocab_size: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ragged ids -> (row, word, count) of every word present in a row; a word's document
    frequency is then `np.bincount(word)`."""
    keys, counts = np.unique(rows * vocab_size + flat, return_counts=True)
    return keys // vocab_size, keys % vocab_size, counts


def tfidf_matrix(r: np.ndarray, c: np.ndarray, counts: np.ndarray, n: int, idf: np.ndarray,
                 vocab_size: int) -> torch.Tensor:
    """The (n, V) sparse TF-IDF matrix of `word_counts`' triples."""
    val = (1.0 + np.log(counts)) * idf[c]  # sublinear tf times idf; <pad>/<unk> have idf 0
    norm = np.sqrt(np.bincount(r, weights=val * val, minlength=n))
    val = val / np.maximum(norm[r], 1e-12)
    keep = val != 0
    x = torch.sparse_coo_tensor(np.stack([r[keep], c[keep]]), val[keep].astype(np.float32),
                                (n, vocab_size), check_invariants=True)
    return x.coalesce()


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, C: float,
                 start: tuple[torch.Tensor, torch.Tensor] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced multinomial logistic regression on sparse rows: weights (C, V), bias
    (C,). The objective is scikit-learn's divided by C * n (the same minimum), so the loss and
    gradients stay of order 1 for L-BFGS whatever C is."""
    n, vocab_size = x.shape
    counts = torch.bincount(y, minlength=num_classes).clamp(min=1).float()
    sample_w = (n / (num_classes * counts))[y]  # scikit-learn's class_weight="balanced"
    w0, b0 = start if start is not None else (torch.zeros(num_classes, vocab_size),
                                              torch.zeros(num_classes))
    w, b = w0.T.contiguous(), b0.clone()  # (V, C), (C,)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-10,
                            line_search_fn="strong_wolfe")
    # the gradient by hand, X^T (P - Y) from a transposed CSR copy: autograd through a sparse
    # product re-transposes and coalesces X at every step (5x slower on the tweets)
    with warnings.catch_warnings():  # "CSR support is in beta": the products used are tested
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        rows, xt = torch.arange(n), x.t().coalesce().to_sparse_csr()
        x = x.to_sparse_csr()

    def closure():
        logp = torch.log_softmax(x @ w + b, -1)  # (n, C)
        loss = -(logp[rows, y] * sample_w).sum() / n + (w * w).sum() / (2 * C * n)
        g = logp.exp()
        g[rows, y] -= 1
        g *= (sample_w / n)[:, None]  # d loss / d logits
        w.grad = xt @ g + w / (C * n)
        b.grad = g.sum(0)
        return loss

    opt.step(closure)
    return w.T.contiguous(), b


def _score(logp: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[float, float]:
    """(macro-F1, mean loss) of (N, C) log-probabilities; sorting by it picks the best."""
    f1 = float(multiclass_f1_score(logp.argmax(-1), y, num_classes, average="macro"))
    return f1, float(F.nll_loss(logp, y))


def _best(scored: list[tuple[float, float, object]]):
    """The highest F1, then the lowest loss; among equals the first listed."""
    return max(scored, key=lambda s: (s[0], -s[1]))


@torch.no_grad()
def network_validation(model, dm) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The network's validation logits (N, C), labels (N,) and each batch's ids, in the
    loader's order (sorted by length), with the network alone (mix 1)."""
    model.train(False)
    logits, labels, ids = [], [], []
    for batch in dm.loader("validation", shuffle=False):
        batch = model.transfer_batch_to_device(batch, model.device, 0)
        logits.append(model.net.forward_network(batch["ids"], batch["lengths"]).float().cpu())
        labels.append(batch["labels"].cpu())
        ids.append(batch["ids"])
    return torch.cat(logits), torch.cat(labels), ids


def fit_wide(model, dm) -> dict:
    """Fit `model.net.wide` (a TfidfLinear) and its mix; returns what metrics.json records as
    `wide`. The net must hold the weights to ship (best.ckpt's)."""
    t0 = time.perf_counter()
    wide: TfidfLinear = model.net.wide
    vocab_size, k = wide.idf.numel(), len(dm.labels)
    train, val = dm.splits["train"], dm.splits["validation"]
    pairs = word_counts(*ragged_ids(train), vocab_size)
    idf = smooth_idf(torch.from_numpy(np.bincount(pairs[1], minlength=vocab_size)), len(train))
    x_train = tfidf_matrix(*pairs, len(train), idf.double().numpy(), vocab_size)
    x_val = tfidf_matrix(*word_counts(*ragged_ids(val), vocab_size), len(val),
                         idf.double().numpy(), vocab_size)
    y_train = torch.from_numpy(column_array(train, "label_id")).long()
    y_val = torch.from_numpy(column_array(val, "label_id")).long()

    fits, start = [], None
    for C in CS:  # warm-started from the previous C: each fit moves less
        start = fit_logistic(x_train, y_train, k, C, start)
        logp = torch.log_softmax(torch.sparse.mm(x_val, start[0].T) + start[1], -1)
        fits.append((*_score(logp, y_val, k), (C, start)))
    f1, _, (C, (weight, bias)) = _best(fits)
    for c, (f, loss, _) in zip(CS, fits, strict=True):
        log.info("model.wide: C=%g validation macro-F1 %.4f, loss %.4f", c, f, loss)
    dev = wide.idf.device
    wide.idf.copy_(idf.to(dev))
    wide.weight.copy_(weight.to(dev))
    wide.bias.copy_(bias.to(dev))

    net_logits, labels, batches = network_validation(model, dm)
    wide_logits = torch.cat([wide(ids).float().cpu() for ids in batches])  # loader order
    deep, lin = torch.log_softmax(net_logits, -1), torch.log_softmax(wide_logits, -1)
    mixes = []
    for m in MIXES:  # the shares 0 and 1 are each part alone, as TfidfLinear.combine answers
        logp = lin if m == 0 else deep if m == 1 else mix_log_probs(deep, lin, m)
        mixes.append((*_score(logp, labels, k), m))
    mix_f1, mix_loss, mix = _best(mixes)
    wide.mix.fill_(mix)
    net_f1 = next(s for s in mixes if s[2] == 1.0)[0]
    seconds = time.perf_counter() - t0
    log.info("model.wide: TF-IDF logistic regression (C=%g) validation macro-F1 %.4f, the "
             "network %.4f, the mixture with the network's share %.1f %.4f (fitted in %.1f s)",
             C, f1, net_f1, mix, mix_f1, seconds)
    return {"kind": "tfidf", "C": C, "mix": mix, "seconds": round(seconds, 2),
            "validation_f1": {"tfidf": round(f1, 6), "network": round(net_f1, 6),
                              "mixture": round(mix_f1, 6)},
            "mixes": {f"{m:.1f}": round(f, 6) for f, _, m in mixes}}
