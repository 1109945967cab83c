"""`textlstm suggest RUN --pool FILE --k 100`: which unlabelled texts to label next.

The run scores the pool; texts are ranked by a strategy and the first k written to a CSV with
an empty label column. Once the user fills it in, `textlstm train ...
data.extra_train_file=that.csv` trains with them.

Strategies: breaking-ties (the smallest gap between the two most probable labels first:
small-text's recommended default), diverse-ties (the k picks spread over the closest calls, see
`diverse_ties`), entropy (the most uncertain distribution first), random (a seeded shuffle: the
baseline an active-learning strategy must beat)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from textlstm.core.errors import UserError
from textlstm.core.io import atomic_write
from textlstm.data.formats import iter_texts

log = logging.getLogger("textlstm")
STRATEGIES = ("breaking-ties", "diverse-ties", "entropy", "random")
# diverse-ties looks for its k picks among the CANDIDATES * k closest calls
CANDIDATES = 4


def margins(probs: np.ndarray) -> np.ndarray:
    """(N,) probability of the top label minus that of the runner-up."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def diverse_ties(margin: np.ndarray, vectors: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k pool rows: among the CANDIDATES * k smallest margins, the ones k-means++ seeding picks
    on the length-normalised text vectors, starting from the closest call.

    Breaking ties alone fills a batch with near-copies of one confusion (on tweets, the same
    neutral-vs-negative phrasing over and over); D^2 sampling keeps the batch close to the
    boundary but spread over what the texts say (Citovsky et al. 2021, "Cluster-Margin"). On the
    tweets labelling loop it needs fewer labels than breaking ties (docs/benchmarks.md,
    "Choosing what to label"). Written out rather than sklearn's `kmeans_plusplus`, which picks
    its first centre at random and adds greedy local trials; this one starts at the closest
    call and samples each next pick plainly, as measured."""
    cand = np.argsort(margin, kind="stable")[: CANDIDATES * k]  # (M,)
    if len(cand) <= k:
        return cand
    x = vectors[cand].astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12  # (M, H)
    rng = np.random.default_rng(seed)
    picked = [0]
    taken = np.zeros(len(x), dtype=bool)
    taken[0] = True
    d2 = ((x - x[0]) ** 2).sum(1)  # (M,) squared distance to the nearest pick
    for _ in range(k - 1):
        total = d2.sum()
        # a pick's own distance is 0, so it is never drawn again; when every candidate left is
        # a copy of a pick (total 0), the next closest call not taken comes instead
        i = int(rng.choice(len(x), p=d2 / total)) if total > 0 else int(np.flatnonzero(~taken)[0])
        picked.append(i)
        taken[i] = True
        d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1))
    return cand[picked]


def rank_pool(probs: np.ndarray, strategy: str = "breaking-ties", seed: int = 0,
              k: int | None = None, vectors: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """(order, score): pool rows to label first come first; score is the margin (breaking-ties,
    diverse-ties, random) or the entropy (entropy) of each row, in pool order. diverse-ties
    needs `k` and the (N, H) text `vectors`: its k picks come first, then the rest by margin."""
    if strategy not in STRATEGIES:
        raise UserError(f"strategy '{strategy}' is unknown; use one of {', '.join(STRATEGIES)}.")
    margin = margins(probs)
    if strategy == "breaking-ties":
        return np.argsort(margin, kind="stable"), margin
    if strategy == "diverse-ties":
        if vectors is None or k is None:
            raise ValueError("diverse-ties ranks with the text vectors and k")
        first = diverse_ties(margin, vectors, k, seed)
        rest = np.argsort(margin, kind="stable")
        rest = rest[~np.isin(rest, first)]
        return np.concatenate([first, rest]), margin
    if strategy == "entropy":
        ent = -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(axis=1)
        return np.argsort(-ent, kind="stable"), ent
    return np.random.default_rng(seed).permutation(len(probs)), margin


def suggest(run: str | Path, pool: str | Path, k: int = 100, strategy: str = "breaking-ties",
            seed: int = 0, out: str | Path = "to_label.csv", overwrite: bool = False,
            text_field: str | None = None) -> tuple[Path, int]:
    """Write the k texts of `pool` to label first to `out`; returns (out, rows written)."""
    if k < 1:
        raise UserError(f"--k is {k}; ask for at least 1 text to label.")
    if strategy not in STRATEGIES:
        raise UserError(f"strategy '{strategy}' is unknown; use one of {', '.join(STRATEGIES)}.")
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it or choose another "
                        "--out.")
    from textlstm.serving.loader import load

    pred = load(run)
    if getattr(pred, "multilabel", False):
        raise UserError("suggest supports multi-class runs only; this run is task=multilabel.")
    field = text_field or pred.text_field
    texts = list(iter_texts(Path(pool), field))
    if not texts:
        raise UserError(f"pool file {pool} has no texts; give a file with one text per row.")
    # after every check, so a mistake stays one line; a bundle keeps no config to read
    cfg = getattr(pred, "cfg", None)
    if cfg is not None and cfg.model.get("wide", "none") != "tfidf":
        # the probabilities rank the pool: the mixture's ranked much better (docs/benchmarks.md)
        log.warning("%s was trained without model.wide=tfidf; on the tweets labelling loop a run "
                    "with it picked texts that reached random picks' final macro-F1 with 68 %% "
                    "of their labels, against 81 %% without: train with model.wide=tfidf (the "
                    "auto recipe's default) before suggesting.", run)
    vectors = None
    if strategy == "diverse-ties":
        if not hasattr(pred, "proba_and_vectors"):
            raise UserError(f"{run} is an exported bundle, which gives probabilities only; "
                            "diverse-ties needs the network's text vectors, so give the run "
                            "folder it was exported from, or use --strategy breaking-ties.")
        probs, vectors = (t.numpy() for t in pred.proba_and_vectors(texts))
        probs = probs.astype(np.float64)
    else:
        probs = np.asarray(pred.predict_proba(texts), dtype=np.float64)
    order, score = rank_pool(probs, strategy, seed, k, vectors)
    label_field = pred.label_field
    with atomic_write(out, newline="") as fh:
        w = csv.writer(fh)
        # the text and label columns carry the run's field names, so the labelled file is read
        # back by data.extra_train_file with the same config
        w.writerow(["row", field, "predicted", "score", label_field])
        for i in order[:k].tolist():
            w.writerow([i, texts[i], pred.labels[int(probs[i].argmax())],
                        round(float(score[i]), 6), ""])
    return out, min(k, len(texts))
