"""What a finished run puts on its W&B dashboard, beyond the per-step curves Lightning logs.

A user opening the project should see, without reading logs: the data set (sizes, class balance,
token lengths, vocabulary, OOV), per-class test metrics, the confusion matrix (W&B's plot and a
PNG), precision-recall curves, the predictions with the mistakes first, and the best checkpoint
with its vocabulary and labels as an artifact that `textlstm.load` can use. A multi-label run
gets a per-label table (with AUROC and each label's threshold) instead of the per-class table
and the confusion matrix, which mean nothing when a text may have several labels or none.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from textlstm.core import runfolder
from textlstm.core.io import save_figure
from textlstm.data.columns import column_array, matrix_column
from textlstm.tracking.report import confusion_png, reliability_figure

log = logging.getLogger("textlstm")

MAX_PREDICTION_ROWS = 500  # per split: mistakes first, then the least confident correct ones


def predictions(pred, dm, split: str) -> dict:
    """Probabilities, predicted and true label ids, and texts for one split, in split order.
    Multi-label: `pred` and `true` are (N, C) 0/1, predicted at the run's thresholds."""
    ds = dm.splits[split]
    probs = pred.proba_from_ids([list(x) for x in ds["ids"]]).numpy()  # (N, C)
    if pred.multilabel:
        hot = (probs >= np.asarray(pred.thresholds)).astype(np.int8)  # (N, C)
        return {"probs": probs, "pred": hot, "true": matrix_column(ds, "label_hot"),
                "text": dm.tokens[split]["text"]}
    return {"probs": probs, "pred": probs.argmax(-1),
            "true": column_array(ds, "label_id"),
            "text": dm.tokens[split]["text"]}


def _names(hot, labels: list[str]) -> str:
    return ", ".join(lab for lab, h in zip(labels, hot, strict=True) if h)


def _mistakes_first(wrong, conf, cap: int) -> list[int]:
    """Row order: mistakes first (most confident mistakes at the top), then correct ones, least
    confident first; at most `cap` rows."""
    return sorted(range(len(wrong)),
                  key=lambda i: (not wrong[i], -conf[i] if wrong[i] else conf[i]))[:cap]


def prediction_rows(p: dict, labels: list[str], split: str,
                    cap: int = MAX_PREDICTION_ROWS) -> list[list]:
    if p["true"].ndim == 2:  # multi-label: a row is wrong unless its whole label set is
        wrong = (p["pred"] != p["true"]).any(1)
        conf = np.abs(p["probs"] - 0.5).min(1) + 0.5  # how sure of its least sure label
        order = _mistakes_first(wrong, conf, cap)
        return [[split, p["text"][i][:500], _names(p["true"][i], labels),
                 _names(p["pred"][i], labels), bool(not wrong[i]),
                 *[round(float(x), 4) for x in p["probs"][i]]] for i in order]
    wrong = p["pred"] != p["true"]
    conf = p["probs"].max(1)
    order = _mistakes_first(wrong, conf, cap)
    return [[split, p["text"][i][:500], labels[p["true"][i]], labels[p["pred"][i]],
             bool(not wrong[i]),
             *[round(float(x), 4) for x in p["probs"][i]]] for i in order]


def pr_curves(p: dict, labels: list[str], points: int = 100):
    """One precision-recall curve per class (one-vs-rest), as a W&B line plot. Computed with
    torchmetrics (wandb.plot.pr_curve would pull in scikit-learn); thinned to `points` each."""
    import torch
    import wandb
    from torchmetrics.functional.classification import (
        multiclass_precision_recall_curve,
        multilabel_precision_recall_curve,
    )

    probs, true = torch.from_numpy(p["probs"]), torch.from_numpy(p["true"]).long()
    if true.ndim == 2:  # multi-label: each label's own sigmoid against its presence
        precision, recall, _ = multilabel_precision_recall_curve(probs, true, len(labels))
    else:
        precision, recall, _ = multiclass_precision_recall_curve(probs, true, len(labels))
    xs, ys = [], []
    for pr, rc in zip(precision, recall, strict=True):
        keep = np.unique(np.linspace(0, len(rc) - 1, min(points, len(rc))).astype(int))
        xs.append(rc[keep].tolist())
        ys.append(pr[keep].tolist())
    return wandb.plot.line_series(xs=xs, ys=ys, keys=labels,
                                  title="test precision-recall (one class vs rest)",
                                  xname="recall")


def _reliability_png(calib: dict, run_dir: Path) -> str:
    import matplotlib.pyplot as plt

    fig = reliability_figure(calib)
    path = run_dir / "reliability.png"
    save_figure(fig, path, dpi=90)
    plt.close(fig)
    return str(path)


def _label_counts(ds, n: int, multilabel: bool) -> tuple[np.ndarray, int]:
    """Texts per label (a multi-label text counts once for each of its labels) and texts."""
    if multilabel:
        hot = matrix_column(ds, "label_hot")  # (N, C)
        return hot.sum(0), len(hot)
    ids = column_array(ds, "label_id")
    return np.bincount(ids, minlength=n), len(ids)


def _per_class_items(test: dict, labels: list[str], pt: dict, run_dir: Path) -> dict:
    """Multi-class: the per-class table and the confusion matrix (W&B's plot and a PNG)."""
    import wandb

    per_class = wandb.Table(columns=["label", "precision", "recall", "f1", "support"])
    for lab in labels:
        r = test["per_class"][lab]
        per_class.add_data(lab, r["precision"], r["recall"], r["f1"], r["support"])
    png = confusion_png(test["confusion_matrix"], labels, run_dir / "confusion_matrix.png",
                        f"test confusion matrix (accuracy {test['accuracy']:.4f})")
    return {"test/per_class": per_class,
            "test/confusion_matrix": wandb.plot.confusion_matrix(
                y_true=pt["true"].tolist(), preds=pt["pred"].tolist(), class_names=labels,
                title="test confusion matrix"),
            "test/confusion_matrix_png": wandb.Image(str(png))}


def _per_label_items(test: dict, thresholds: dict) -> dict:
    """Multi-label: the per-label table with each label's decision threshold. A confusion
    matrix has no meaning when a text may have several labels or none, so there is none."""
    import wandb

    table = wandb.Table(columns=["label", "precision", "recall", "f1", "support", "auroc",
                                 "threshold"])
    for lab, r in test["per_label"].items():
        table.add_data(lab, r["precision"], r["recall"], r["f1"], r["support"], r["auroc"],
                       thresholds.get(lab))
    return {"test/per_label": table}


def log_dashboard(wb, run_dir: Path, dm, pred, metrics: dict, best_ckpt: str | None,
                  test_preds: dict | None = None) -> None:
    """Everything above, on the W&B run of `wb` (a Lightning WandbLogger)."""
    import wandb

    run = wb.experiment
    labels = list(dm.labels)
    # ---- data set card
    card = {f"data/{k}": v for k, v in metrics["data"].items() if k != "labels"}
    run.summary.update(card)
    balance = wandb.Table(columns=["split", "label", "count", "share"])
    for split in ("train", "validation", "test"):
        counts, rows = _label_counts(dm.splits[split], len(labels), pred.multilabel)
        for lab, c in zip(labels, counts, strict=True):
            balance.add_data(split, lab, int(c), round(float(c) / max(1, rows), 4))
    lengths = column_array(dm.splits["train"], "length")
    run.log({"data/class_balance": balance,
             "data/train_token_length": wandb.Histogram(lengths, num_bins=40)})

    # ---- test: per-class metrics, confusion matrix, PR curves; predictions of validation and test
    test = metrics["test"]
    pt = test_preds if test_preds is not None else predictions(pred, dm, "test")
    pv = predictions(pred, dm, "validation")
    rows = prediction_rows(pt, labels, "test") + prediction_rows(pv, labels, "validation")
    table = wandb.Table(columns=["split", "text", "true", "predicted", "correct",
                                 *[f"p_{lab}" for lab in labels]],
                        data=rows)
    run.log({
        **(_per_label_items(test, metrics.get("thresholds") or {}) if pred.multilabel
           else _per_class_items(test, labels, pt, run_dir)),
        "test/pr_curve": pr_curves(pt, labels),
        **({"test/reliability": wandb.Image(_reliability_png(metrics["calibration"], run_dir))}
           if "reliability" in (metrics.get("calibration") or {}) else {}),
        "predictions": table,
    })

    # ---- the best checkpoint with what it takes to load it
    if best_ckpt:
        art = wandb.Artifact(f"model-{run.id}", type="model",
                             metadata={"test_accuracy": test.get("accuracy",
                                                                 test.get("subset_accuracy")),
                                       "test_f1_macro": test["f1_macro"],
                                       "labels": labels},
                             description="best checkpoint (val macro-F1) + vocab.json + "
                                         "labels.json + config.yaml; download it and call "
                                         "textlstm.load(folder)")
        art.add_file(str(best_ckpt), name="checkpoints/best.ckpt")
        for path in runfolder.loadable_files(run_dir):
            art.add_file(str(path), name=path.name)
        run.log_artifact(art, aliases=["best", "latest"])

