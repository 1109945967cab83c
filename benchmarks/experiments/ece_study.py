"""How far a run's test ECE can go with one temperature, and how far sampling alone puts it.

For each run folder: the temperature fitted on validation (as training does), the test ECE
before and after it, the sampling floor (`test.ece_floor`: the ECE a perfectly calibrated model
would show on that many texts), and the best test ECE that any single temperature reaches
(T searched on the test split itself: a diagnostic that reads the test labels, never a way to
choose T). It refits T from the run's float32 probabilities, so T and the ECE after it can
differ from metrics.json in the third decimal. docs/benchmarks.md, "Calibration", holds the
figures.

    python benchmarks/experiments/ece_study.py RUN [RUN ...]     # prints one JSON line per run
"""

from __future__ import annotations

import json
import sys

import torch

import textlstm
from textlstm.data.sources import load_splits
from textlstm.training.calibration import ece, ece_floor, fit_temperature


def logits_and_labels(pred, split) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) log-probabilities at T = 1 (logits up to a per-row constant, which softmax and
    so ECE and T ignore) and (N,) label ids."""
    texts, labels = split["text"], split["label"]
    saved, pred.temperature = pred.temperature, 1.0
    try:
        logp = pred.predict_proba(texts).double().clamp_min(1e-12).log()
    finally:
        pred.temperature = saved
    return logp, torch.tensor([pred.labels.index(y) for y in labels])


def study(run: str) -> dict:
    pred = textlstm.load(run)
    if pred.multilabel:
        sys.exit(f"{run} is a multi-label run: it has no temperature and no ECE to study.")
    splits = load_splits(pred.cfg.data)  # standardized: "text" and "label" columns
    val_z, val_y = logits_and_labels(pred, splits["validation"])
    z, y = logits_and_labels(pred, splits["test"])
    T = fit_temperature(val_z, val_y)
    grid = [0.5 + 0.01 * i for i in range(300)]  # T in [0.5, 3.5)
    best_ece, best_T = min((ece(z, y, t), t) for t in grid)
    accuracy = float((z.argmax(-1) == y).double().mean())
    return {"run": run, "source": pred.cfg.data.source, "seed": int(pred.cfg.seed),
            "test_texts": len(y), "test_accuracy": round(accuracy, 4),
            "temperature": round(T, 3), "ece_uncalibrated": round(ece(z, y), 4),
            "ece": round(ece(z, y, T), 4), "ece_floor": round(ece_floor(z, T), 4),
            "best_ece_any_T": round(best_ece, 4), "best_T_on_test": round(best_T, 2)}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for run in sys.argv[1:]:
        print(json.dumps(study(run)), flush=True)
