"""`textlstm suggest RUN --pool FILE --k 100`: which unlabelled texts to label next.

The run scores the pool; texts are ranked by a strategy and the first k written to a CSV with
an empty label column. Once the user fills it in, `textlstm train ...
data.extra_train_file=that.csv` trains with them.

Strategies: breaking-ties (the smallest gap between the two most probable labels first:
small-text's recommended default), entropy (the most uncertain distribution first), random (a
seeded shuffle: the baseline an active-learning strategy must beat)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from textlstm.core.errors import UserError
from textlstm.core.io import atomic_write
from textlstm.data.formats import iter_texts

STRATEGIES = ("breaking-ties", "entropy", "random")


def margins(probs: np.ndarray) -> np.ndarray:
    """(N,) probability of the top label minus that of the runner-up."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def rank_pool(probs: np.ndarray, strategy: str = "breaking-ties", seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """(order, score): pool rows to label first come first; score is the margin (breaking-ties,
    random) or the entropy (entropy) of each row, in pool order."""
    if strategy not in STRATEGIES:
        raise UserError(f"strategy '{strategy}' is unknown; use one of {', '.join(STRATEGIES)}.")
    margin = margins(probs)
    if strategy == "breaking-ties":
        return np.argsort(margin, kind="stable"), margin
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
    probs = np.asarray(pred.predict_proba(texts), dtype=np.float64)
    order, score = rank_pool(probs, strategy, seed)
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
