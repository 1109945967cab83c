"""Building what a run trains: the network with its pretrained vectors, wrapped for Lightning."""

from __future__ import annotations

import logging

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from textlstm.batches.datamodule import TextDataModule
from textlstm.core.config import chunking
from textlstm.core.errors import UserError
from textlstm.data.columns import column_array, matrix_column
from textlstm.models.classifier import TextClassifier
from textlstm.tokens.vectors import load_vectors
from textlstm.training.lm import init_from_pretrained
from textlstm.training.module import LitTextClassifier

log = logging.getLogger("textlstm")


def class_weights(cfg, labels: list[str], train_label_ids) -> list[float] | None:
    """`model.class_weights`: none, balanced (n / (k * count), as scikit-learn's) or a list.

    Multi-label (`train_label_ids` is then the (N, C) multi-hot matrix): the weights are BCE's
    per-label `pos_weight`, and balanced is negatives / positives of each label, so a label's
    positives weigh as much in the loss as its negatives."""
    cw = cfg.model.class_weights
    if cw in (None, "none"):
        return None
    if cw == "balanced" and cfg.task == "multilabel":
        pos = np.asarray(train_label_ids).sum(0).astype(float)  # (C,)
        return ((len(train_label_ids) - pos) / np.maximum(pos, 1)).tolist()
    if cw == "balanced":
        counts = np.bincount(np.asarray(train_label_ids), minlength=len(labels)).astype(float)
        return (counts.sum() / (len(labels) * np.maximum(counts, 1))).tolist()
    cw = list(cw)
    if len(cw) != len(labels) or not all(isinstance(x, int | float) and x >= 0 for x in cw):
        raise UserError(f"model.class_weights has {len(cw)} value(s) but there are {len(labels)} "
                        f"labels ({', '.join(labels)}); give one non-negative number per label.")
    if not any(x > 0 for x in cw):
        raise UserError("model.class_weights are all zero, so the loss would be 0/0; give at least "
                        "one positive weight.")
    return [float(x) for x in cw]


def build_model(cfg: DictConfig, dm: TextDataModule) -> LitTextClassifier:
    """The network for `dm`'s vocabulary and labels, pretrained vectors copied in, then a
    pretrained language model's (`model.init_from`), wrapped with the loss, metrics and
    optimiser."""
    net = TextClassifier(len(dm.vocab), len(dm.labels), cfg.model, chunking(cfg))
    emb = cfg.model.embedding
    if emb.vectors:
        vecs, found, coverage = load_vectors(emb.vectors, dm.vocab)
        if vecs.shape[1] != emb.dim:
            raise UserError(f"model.embedding.vectors has {vecs.shape[1]}-d vectors but "
                            f"model.embedding.dim is {emb.dim}; set "
                            f"model.embedding.dim={vecs.shape[1]}.")
        net.load_vectors(torch.from_numpy(vecs), torch.from_numpy(found), emb.freeze)
        dm.stats["vectors_coverage"] = round(coverage, 4)
        log.info("embedding: %.1f%% of the vocabulary found in %s", 100 * coverage, emb.vectors)
    initialised = init_from_pretrained(net, dm.vocab, cfg) if cfg.model.get("init_from") else None
    if initialised:
        log.info("model.init_from: %d of %d word vectors and the encoder copied from %s",
                 initialised["embedding_rows"], initialised["vocab_size"], initialised["from"])
    train = dm.splits["train"]
    targets = (matrix_column(train, "label_hot") if cfg.task == "multilabel"
               else column_array(train, "label_id"))
    weights = class_weights(cfg, dm.labels, targets)
    lit = LitTextClassifier(net, dm.labels, OmegaConf.to_container(cfg.optim), weights,
                            config=OmegaConf.to_container(cfg, resolve=True), task=cfg.task)
    lit.initialised = initialised  # metrics.json says what model.init_from copied
    return lit
