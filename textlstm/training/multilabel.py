"""Multi-label scoring: per-label decision thresholds tuned on validation, and the test report.

A multi-label model gives each label its own sigmoid probability; a label is predicted when
its probability reaches the label's threshold. 0.5 suits a label only if the model's
probabilities for it are balanced; rare labels usually need lower thresholds, so after
training each label's threshold is chosen on the validation split to maximise that label's
F1 (Flair #2274, #2367 ask for exactly this).
"""

from __future__ import annotations

import torch
from torchmetrics.classification import (
    MultilabelAUROC,
    MultilabelExactMatch,
    MultilabelF1Score,
    MultilabelHammingDistance,
    MultilabelPrecision,
    MultilabelRecall,
)

# a grid rather than every validation probability: a threshold fitted to single validation
# examples does not carry over to new texts
CANDIDATES = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95


def tune_thresholds(logits: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Per label, the candidate threshold with the best validation F1; logits and 0/1
    targets (N, C). Ties go to the candidate nearest 0.5; a label without positive validation
    examples keeps 0.5 (there is no F1 to maximise)."""
    probs = torch.sigmoid(logits.double())  # (N, C)
    y = targets > 0.5  # (N, C)
    cand = torch.tensor(CANDIDATES, dtype=torch.float64)  # (K,)
    out = []
    for c in range(probs.size(1)):
        if not y[:, c].any():
            out.append(0.5)
            continue
        pred = probs[:, c, None] >= cand  # (N, K)
        tp = (pred & y[:, c, None]).sum(0)
        fp = (pred & ~y[:, c, None]).sum(0)
        fn = (~pred & y[:, c, None]).sum(0)
        f1 = (2 * tp / (2 * tp + fp + fn).clamp(min=1)).tolist()
        best = max(range(len(CANDIDATES)), key=lambda k: (f1[k], -abs(CANDIDATES[k] - 0.5)))
        out.append(CANDIDATES[best])
    return out


def binarize(logits: torch.Tensor, thresholds: list[float] | None) -> torch.Tensor:
    """(N, C) logits -> (N, C) 0/1 predictions at the thresholds (0.5 each when None)."""
    probs = torch.sigmoid(logits.float())
    thr = torch.full((probs.size(-1),), 0.5) if thresholds is None else torch.tensor(thresholds)
    return (probs >= thr.to(probs.device)).int()


def samples_f1(preds: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over texts of each text's F1 between its predicted and true label sets; a text
    with no true and no predicted label counts 1 (its answer is exact), as scikit-learn's
    f1_score(average="samples", zero_division=1). torchmetrics has no samples average."""
    p, y = preds.bool(), targets.bool()
    tp = (p & y).sum(1).double()
    wrong = (p ^ y).sum(1).double()  # fp + fn
    f1 = torch.where(tp + wrong == 0, torch.ones_like(tp), 2 * tp / (2 * tp + wrong))
    return float(f1.mean()) if len(f1) else float("nan")


def multilabel_report(logits: torch.Tensor, targets: torch.Tensor, labels: list[str],
                      thresholds: list[float] | None = None) -> dict:
    """metrics.json's multi-label scores (torchmetrics' Multilabel* classes) for (N, C) logits
    and 0/1 targets, labels predicted at `thresholds` (0.5 when None)."""
    n = len(labels)
    preds, y = binarize(logits, thresholds), (targets > 0.5).int()  # (N, C), (N, C)
    probs = torch.sigmoid(logits.float())
    precision = MultilabelPrecision(n, average=None)(preds, y)
    recall = MultilabelRecall(n, average=None)(preds, y)
    f1 = MultilabelF1Score(n, average=None)(preds, y)
    support = y.sum(0)
    # AUROC needs both classes among a label's rows; otherwise it is undefined (null)
    defined = (support > 0) & (support < len(y))
    auroc = MultilabelAUROC(n, average=None)(probs, y) if bool(defined.any()) else None
    return {
        "f1_micro": float(MultilabelF1Score(n, average="micro")(preds, y)),
        "f1_macro": float(MultilabelF1Score(n, average="macro")(preds, y)),
        "f1_samples": samples_f1(preds, y),
        "hamming_loss": float(MultilabelHammingDistance(n, average="micro")(preds, y)),
        "subset_accuracy": float(MultilabelExactMatch(n)(preds, y)),
        "per_label": {
            lab: {"precision": float(precision[i]), "recall": float(recall[i]),
                  "f1": float(f1[i]), "support": int(support[i]),
                  "auroc": float(auroc[i]) if auroc is not None and defined[i] else None}
            for i, lab in enumerate(labels)
        },
    }

