"""`textlstm evaluate`: a trained run's best checkpoint on its test split or a labelled file, or an
exported bundle on a labelled file (same metrics, from onnxruntime's logits)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from datasets import DatasetDict

from textlstm.batches import make_datamodule
from textlstm.batches.datamodule import check_labels, encode
from textlstm.core.errors import UserError
from textlstm.core.hardware import set_threads
from textlstm.core.logs import quiet_libraries
from textlstm.data.columns import iter_column
from textlstm.data.sources import read_file, standardize
from textlstm.serving.bundle import BundlePredictor, is_bundle
from textlstm.serving.loader import load
from textlstm.tokens.tokenize import tokenize_dataset
from textlstm.training.module import LitTextClassifier, score_logits


def evaluate(run_dir: str | Path, data_file: str | None = None,
             overrides: list[str] | None = None) -> dict:
    """Returns a dict shaped like metrics.json's "test" entry."""
    quiet_libraries()
    if is_bundle(run_dir):
        return evaluate_bundle(run_dir, data_file, overrides)
    pred = load(run_dir, overrides, device="cpu")
    cfg = pred.cfg
    set_threads(cfg.trainer.num_threads)
    multilabel = cfg.task == "multilabel"
    dm = make_datamodule(cfg.data, seed=cfg.seed, vocab=pred.vocab, labels=pred.labels,
                         task=cfg.task)
    if data_file is None:
        dm.prepare_data()
        dm.setup()
    else:
        ds = standardize(read_file(data_file), cfg.data.text_field, cfg.data.label_field,
                         f"data file {data_file}",
                         cfg.data.label_separator if multilabel else None)
        check_labels(DatasetDict({"test": ds}), pred.labels, multilabel=multilabel)
        dm.splits = DatasetDict({"test": encode(tokenize_dataset(ds, cfg.data.lowercase),
                                                pred.vocab,
                                                pred.labels, cfg.data.max_length, multilabel)})
    model = LitTextClassifier(pred.net, pred.labels, dict(cfg.optim), task=cfg.task)
    model.temperature = pred.temperature  # the run's calibration: loss and ECE as predict sees them
    if multilabel:  # the run's tuned thresholds: labels as predict gives them
        model.thresholds = pred.thresholds
    t = cfg.trainer
    trainer = L.Trainer(accelerator=t.accelerator, devices=t.devices, strategy=t.strategy,
                        num_nodes=t.num_nodes,
                        precision=t.precision, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False,
                        # the bucket sampler shards itself (disjoint for eval)
                        use_distributed_sampler=False)
    trainer.test(model, dataloaders=dm.loader("test", shuffle=False), verbose=False)
    return model.reports["test"]


def evaluate_bundle(folder: str | Path, data_file: str | None, overrides: list[str] | None) -> dict:
    import numpy as np
    import torch

    pred = BundlePredictor(folder, overrides)
    if data_file is None:
        raise UserError(f"bundle {folder} carries no data set to evaluate on; pass a labelled file "
                        "with --data FILE.")
    ds = standardize(read_file(data_file), pred.text_field, pred.label_field,
                     f"data file {data_file}")
    check_labels(DatasetDict({"test": ds}), pred.labels)
    logits = pred.logits(list(iter_column(ds, "text")))  # (N, C)
    index = {lab: i for i, lab in enumerate(pred.labels)}
    targets = np.fromiter((index[lab] for lab in iter_column(ds, "label")), dtype=np.int64)
    return score_logits(torch.from_numpy(logits), torch.from_numpy(targets), pred.labels,
                        float(pred.temperature or 1.0))
