"""What a finished run leaves besides its checkpoints and metrics.json: the gate figures,
errors.json, report.html, and on W&B the dashboard items and the summary.

Each item is optional for the user's purposes: a figure that fails must never cost a finished
run, so every step logs a warning and the next one runs."""

from __future__ import annotations

import logging
from pathlib import Path

from textlstm.batches.datamodule import TextDataModule
from textlstm.core.io import write_json
from textlstm.models.predictor import Predictor
from textlstm.tracking.attributions import explain_errors, log_error_attributions
from textlstm.tracking.dashboard import log_dashboard, predictions
from textlstm.tracking.gates import log_gate_examples
from textlstm.tracking.report import run_report, worst_errors

log = logging.getLogger("textlstm")
EXPLAINED_ERRORS = 10


def write_run_outputs(wb, run_dir: Path, dm: TextDataModule, pred: Predictor, metrics: dict,
                      ckpt_path: str) -> None:
    """`wb`: the run's WandbLogger, or None when W&B is disabled."""
    try:  # what the gates did on a few validation texts (misclassified first)
        val = dm.tokens["validation"].select(range(min(200, len(dm.tokens["validation"]))))
        log_gate_examples(wb, pred, val["text"], val["label"], run_dir / "gates")
    except Exception as e:
        log.warning("gate figures skipped: %s", e)
    test_preds, errors = None, []
    try:
        test_preds = predictions(pred, dm, "test")  # reused by the W&B dashboard below
        errors = worst_errors(test_preds, dm.labels)
        # which words pushed the model to its wrong label, for the first few (report, W&B)
        errors = explain_errors(pred, errors[:EXPLAINED_ERRORS]) + errors[EXPLAINED_ERRORS:]
        write_json(run_dir / "errors.json", errors)
    except Exception as e:
        log.warning("errors.json skipped: %s", e)
    if wb is not None:
        try:  # draws confusion_matrix.png, which report.html shows
            log_dashboard(wb, run_dir, dm, pred, metrics, ckpt_path, test_preds)
        except Exception as e:
            log.warning("W&B dashboard items skipped: %s", e)
        try:
            log_error_attributions(wb, errors)
        except Exception as e:
            log.warning("W&B attribution table skipped: %s", e)
        keys = ("f1_micro", "f1_macro", "f1_samples", "hamming_loss", "subset_accuracy", "loss",
                "accuracy")  # multi-label scores first; a multi-class run has accuracy instead
        wb.experiment.summary.update({f"{split}/{k}": metrics[split][k]
                                      for split in ("validation", "test")
                                      for k in keys if k in metrics[split]})
        if "wide" in metrics:  # model.wide: how much the answers owe to the TF-IDF part
            w = metrics["wide"]
            wb.experiment.summary.update({"wide/share": w["mix"], "wide/C": w["C"], **{
                f"wide/validation_f1_{k}": v for k, v in w["validation_f1"].items()}})
        if "ece" in metrics["test"]:
            test, calib = metrics["test"], metrics["calibration"]
            wb.experiment.summary.update({"test/ece": test["ece"],
                                          "test/ece_uncalibrated": test["ece_uncalibrated"],
                                          "test/ece_floor": test.get("ece_floor"),
                                          "calibration/temperature": calib["temperature"]})
        wb.experiment.finish()
    try:
        run_report(run_dir)
    except Exception as e:
        log.warning("report.html skipped: %s", e)
