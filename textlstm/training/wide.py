"""After fit, with `model.wide: tfidf`: fit the TF-IDF logistic regression and choose its mix.

models/wide.py says what the part is and why. Here, on the training split's ids (the same
vocabulary, truncation and <unk> as the network reads):
1. the smooth idf and each text's L2-normalised sublinear TF-IDF row, as a sparse matrix;
2. a class-balanced multinomial logistic regression (scikit-learn's objective: C times the
   sum of the weighted losses plus half the squared weights), fitted by L-BFGS for each C in
   `CS`; kept: the smallest C whose validation macro-F1 is within one standard error of the
   best C's (`one_se`);
3. the network's share `mix` in the probability mixture, from `MIXES`, on the validation
   split with the network's best checkpoint (the soup, when there is one): the share with
   the best macro-F1 (ties: the lower), unless the TF-IDF part alone is within one standard
   error of it; then the TF-IDF part alone (share 0).
Why the one-standard-error rule (Breiman et al. 1984; Hastie et al., ESL 7.10) and not the
top score: validation sets are small (294 texts over 50 classes on `debian-rare`, one text in
most classes) and the network's validation scores are optimistic, its soup having been picked
on those very texts (validation minus test macro-F1: the network +0.04 to +0.07 on debian-rare,
0 to +0.04 elsewhere; the TF-IDF part -0.02 to +0.01). The top score chose shares of 0.2-0.3
where the TF-IDF part alone did better on test, and C = 100 on ties (broken by validation
loss, which rewards overconfidence) where C = 1 answered every test text right. Among what
validation cannot tell apart, the rule takes the more regularised fit, and the convex,
seed-free part alone over any mixture with the network. The shares in between are not
candidates of their own: ranked toward the TF-IDF part, they gave `sms-like` the share 0.1
(test 0.784) where the best share, 0.6, scored 0.812.
Figures, 3 seeds each, in docs/accuracy.md ("The TF-IDF part").
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
RESAMPLES = 400  # bootstrap resamples of the validation texts for the standard errors


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


def resampled_f1(preds: list[torch.Tensor], y: torch.Tensor, num_classes: int,
                 resamples: int = RESAMPLES, seed: int = 0) -> torch.Tensor:
    """(len(preds), resamples) macro-F1 of each candidate's predictions (N,) on the same
    bootstrap resamples of the N texts (seeded: the choice is reproducible). Macro-F1 as
    torchmetrics averages it: over the classes a resample predicts or holds.
    By hand: scipy.stats.bootstrap(paired=True) gives the same standard error but calls the
    statistic in Python once per resample and pair; here a (resamples, N) matrix of counts
    scores every resample of a candidate in three matrix products."""
    g = torch.Generator().manual_seed(seed)
    n = len(y)
    truth = F.one_hot(y, num_classes).float()  # (N, K)
    out = torch.empty(len(preds), resamples)
    for lo in range(0, resamples, 100):  # 100 resamples at a time: (100, N) counts in memory
        hi = min(lo + 100, resamples)
        picks = torch.randint(0, n, (hi - lo, n), generator=g)
        w = torch.zeros(hi - lo, n).scatter_add_(1, picks, torch.ones(hi - lo, n))  # (R, N)
        true = w @ truth  # (R, K)
        for i, p in enumerate(preds):
            guess = F.one_hot(p, num_classes).float()
            tp, pred = w @ (truth * guess), w @ guess
            seen = (pred + true) > 0
            f1 = 2 * tp / (pred + true).clamp(min=1)
            out[i, lo:hi] = (f1 * seen).sum(1) / seen.sum(1)
    return out


def macro_f1(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """Macro-F1 of predictions (N,) against labels (N,)."""
    return float(multiclass_f1_score(pred, y, num_classes, average="macro"))


def one_se(preds: list[torch.Tensor], y: torch.Tensor, num_classes: int
           ) -> tuple[int, list[float]]:
    """The one-standard-error rule: candidates listed simplest first, the first whose
    validation macro-F1 is at least the best's minus the bootstrap standard error of their
    difference (paired: both scored on the same resamples). Returns (its index, every
    candidate's macro-F1)."""
    f1s = [macro_f1(p, y, num_classes) for p in preds]
    best = max(range(len(f1s)), key=f1s.__getitem__)  # the first of equals
    boot = resampled_f1(preds, y, num_classes)
    for i, f in enumerate(f1s):
        if f >= f1s[best] - float((boot[best] - boot[i]).std()):
            return i, f1s
    return best, f1s  # not reached: the best itself is within 0 of itself


def choose_share(guesses: list[torch.Tensor], y: torch.Tensor, num_classes: int
                 ) -> tuple[int, int, list[float]]:
    """Predictions of each share in MIXES, the TF-IDF part alone first -> (the share's index,
    the best share's index, every share's macro-F1). The best share (ties: the lower) unless
    the TF-IDF part alone is within one standard error of it: the shares in between are no
    simpler than the best one, so they are not candidates of their own."""
    f1s = [macro_f1(g, y, num_classes) for g in guesses]
    top = max(range(len(f1s)), key=f1s.__getitem__)
    pick = top if one_se([guesses[0], guesses[top]], y, num_classes)[0] else 0
    return pick, top, f1s


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
    for C in CS:  # smallest first, warm-started from the previous C: each fit moves less
        start = fit_logistic(x_train, y_train, k, C, start)
        fits.append(start)
    guesses = [(torch.sparse.mm(x_val, w.T) + b).argmax(-1) for w, b in fits]
    pick, c_f1s = one_se(guesses, y_val, k)
    C, (weight, bias), f1 = CS[pick], fits[pick], c_f1s[pick]
    for c, f in zip(CS, c_f1s, strict=True):
        log.info("model.wide: C=%g validation macro-F1 %.4f", c, f)
    dev = wide.idf.device
    wide.idf.copy_(idf.to(dev))
    wide.weight.copy_(weight.to(dev))
    wide.bias.copy_(bias.to(dev))

    net_logits, labels, batches = network_validation(model, dm)
    wide_logits = torch.cat([wide(ids).float().cpu() for ids in batches])  # loader order
    deep, lin = torch.log_softmax(net_logits, -1), torch.log_softmax(wide_logits, -1)
    # the shares 0 and 1 are each part alone, as TfidfLinear.combine answers
    guesses = [(lin if m == 0 else deep if m == 1 else mix_log_probs(deep, lin, m)).argmax(-1)
               for m in MIXES]
    pick, top, mix_f1s = choose_share(guesses, labels, k)
    mix, mix_f1, net_f1 = MIXES[pick], mix_f1s[pick], mix_f1s[-1]
    wide.mix.fill_(mix)
    seconds = time.perf_counter() - t0
    log.info("model.wide: TF-IDF logistic regression (C=%g) validation macro-F1 %.4f, the "
             "network %.4f, the mixture with the network's share %.1f %.4f (the best share "
             "%.1f scored %.4f; fitted in %.1f s)", C, f1, net_f1, mix, mix_f1, MIXES[top],
             mix_f1s[top], seconds)
    return {"kind": "tfidf", "C": C, "mix": mix, "seconds": round(seconds, 2),
            "rule": "one-standard-error",
            "validation_f1": {"tfidf": round(f1, 6), "network": round(net_f1, 6),
                              "mixture": round(mix_f1, 6)},
            "C_f1": {f"{c:g}": round(f, 6) for c, f in zip(CS, c_f1s, strict=True)},
            "mixes": {f"{m:.1f}": round(f, 6) for m, f in zip(MIXES, mix_f1s, strict=True)}}
