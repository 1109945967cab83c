"""`textlstm pretrain`: a bidirectional language model on the training texts (+ the unlabelled
texts of data.unlabeled_file), whose embedding and encoder then initialise the classifier
(`model.init_from`): the target-task language-model stage of ULMFiT.

The vocabulary is the one `textlstm train` builds for the same config (the same data module
builds it), so the rows of the two embeddings mean the same words; validation and test texts are
never read. It writes runs/<name>-pretrain/<timestamp>/: config.yaml, vocab.json, lm.ckpt and
metrics.json (held-out perplexity per epoch, and the unigram perplexity for reference)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig

from textlstm import __version__
from textlstm.batches import make_datamodule
from textlstm.batches.datamodule import encode
from textlstm.batches.lm import LMStreams, make_streams, read_unlabeled
from textlstm.core import runfolder
from textlstm.core.config import to_yaml
from textlstm.core.errors import UserError
from textlstm.core.hardware import set_threads
from textlstm.core.io import atomic_write, write_json, write_text
from textlstm.core.logs import quiet_libraries
from textlstm.models.lm import BiLanguageModel
from textlstm.models.version import ARCH_VERSION
from textlstm.tokens.tokenize import tokenize_texts
from textlstm.tokens.vectors import load_vectors
from textlstm.tracking.wandb_logger import make_wandb_logger
from textlstm.training.lm import LitLanguageModel
from textlstm.training.progress import progress_callbacks

log = logging.getLogger("textlstm")


def check_pretrain_config(cfg: DictConfig) -> None:
    """What pretraining cannot do, refused before any data is read."""
    if cfg.data.streaming:
        raise UserError("textlstm pretrain reads the prepared training split; set "
                        "data.streaming=false.")
    e = cfg.model.encoder
    if e.bidirectional and e.num_layers > 1:
        # layer 2's forward half would read layer 1's backward states, which saw the future
        raise UserError(f"textlstm pretrain trains one bidirectional layer, but "
                        f"model.encoder.num_layers is {e.num_layers}; set "
                        "model.encoder.num_layers=1 or model.encoder.bidirectional=false.")


def _ids(dm, texts_tokens) -> list[np.ndarray]:
    """Every training text's ids, untruncated (the classifier reads data.max_length of them;
    the language model reads them all)."""
    col = encode(texts_tokens, dm.vocab, None, 2**31 - 1).with_format("arrow")[:]["ids"]
    col = col.combine_chunks()
    flat, offsets = col.flatten().to_numpy(), col.offsets.to_numpy()
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def build_streams(cfg: DictConfig, dm, unlabeled: list[str]) -> LMStreams:
    train = _ids(dm, dm.tokens["train"])
    extra = [np.asarray(dm.vocab.encode(t), dtype=np.int64)
             for t in tokenize_texts(unlabeled, cfg.data.lowercase)]
    extra = [x for x in extra if len(x)]
    p = cfg.pretrain
    return make_streams(train, extra, len(dm.vocab), p.bptt, p.holdout_fraction, cfg.seed)


def _network(cfg: DictConfig, vocab) -> BiLanguageModel:
    net = BiLanguageModel(len(vocab), cfg.model)
    emb = cfg.model.embedding
    if emb.vectors:  # start from the vectors the classifier would start from
        vecs, found, coverage = load_vectors(emb.vectors, vocab)
        if vecs.shape[1] != emb.dim:
            raise UserError(f"model.embedding.vectors has {vecs.shape[1]}-d vectors but "
                            f"model.embedding.dim is {emb.dim}; set "
                            f"model.embedding.dim={vecs.shape[1]}.")
        with torch.no_grad():
            rows = torch.from_numpy(found)
            net.embedding.weight[rows] = torch.from_numpy(vecs)[rows].float()
        log.info("embedding: %.1f%% of the vocabulary found in %s", 100 * coverage, emb.vectors)
    return net


def _trainer(cfg: DictConfig, run_dir: Path, wb) -> L.Trainer:
    p, t = cfg.pretrain, cfg.trainer
    loggers = [CSVLogger(run_dir, name="", version="logs")] + ([wb] if wb else [])
    shown = progress_callbacks(t.progress_bar)  # a bar, or one line per epoch if not a tty
    return L.Trainer(
        max_epochs=p.epochs,
        max_time=None if p.max_minutes is None else {"seconds": round(60 * p.max_minutes, 3)},
        accelerator=t.accelerator, devices=1, precision=t.precision,
        gradient_clip_val=t.gradient_clip_val, log_every_n_steps=t.log_every_n_steps,
        callbacks=shown, logger=loggers,
        enable_progress_bar=any(isinstance(c, RichProgressBar) for c in shown),
        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
        default_root_dir=str(run_dir))


def pretrain(cfg: DictConfig) -> Path:
    """Train the language model; returns the run folder."""
    quiet_libraries()
    check_pretrain_config(cfg)
    threads = set_threads(cfg.trainer.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    unlabeled = read_unlabeled(cfg.data.unlabeled_file, cfg.data.text_field) \
        if cfg.data.unlabeled_file else []
    dm = make_datamodule(cfg.data, seed=cfg.seed, task=cfg.task, long_text=cfg.model.long_text)
    dm.prepare_data()
    dm.setup()
    cfg.model.long_text = getattr(dm, "long_text", cfg.model.long_text)
    streams = build_streams(cfg, dm, unlabeled)
    model = LitLanguageModel(_network(cfg, dm.vocab), cfg.pretrain.lr)
    # the folder only once data and model are built: a mistake leaves none behind
    run_dir = runfolder.new_run_dir(cfg.run_root, f"{cfg.name}-pretrain")
    dm.vocab.save(run_dir / runfolder.VOCAB)
    write_text(run_dir / runfolder.CONFIG, to_yaml(cfg))
    wb = make_wandb_logger(cfg, run_dir)
    trainer = _trainer(cfg, run_dir, wb)
    held = streams.loader("held_out", cfg.data.eval_batch_size)
    t0 = time.perf_counter()
    trainer.fit(model, train_dataloaders=streams.loader("train", cfg.pretrain.batch_size,
                                                        cfg.seed),
                val_dataloaders=held)
    seconds = time.perf_counter() - t0
    if not model.history or model.history[-1]["steps"] != trainer.global_step:
        trainer.validate(model, dataloaders=held, verbose=False)  # the budget cut an epoch
    _save_lm(run_dir, model)
    metrics = _metrics(model, streams, len(dm.vocab), seconds, threads, cfg.pretrain.batch_size)
    write_json(run_dir / runfolder.METRICS, metrics)
    if wb is not None:
        wb.experiment.summary.update({"unigram_perplexity": metrics["unigram_perplexity"],
                                      "held_out_perplexity": metrics["perplexity"]})
        wb.experiment.finish()
    return run_dir


def _save_lm(run_dir: Path, model: LitLanguageModel) -> None:
    state = model.best_state or {k: v.detach().cpu() for k, v in model.net.state_dict().items()}
    with atomic_write(run_dir / runfolder.LM, "wb") as fh:
        torch.save({"state_dict": state,
                    "textlstm": {"arch_version": ARCH_VERSION, "version": __version__}}, fh)


def _metrics(model: LitLanguageModel, streams: LMStreams, vocab_size: int, seconds: float,
             threads: int, batch_size: int) -> dict:
    best = min(model.history, key=lambda h: h["perplexity"])
    steps_per_epoch = math.ceil(len(streams.train) / batch_size)
    return {
        "task": "language_model",
        "perplexity": best["perplexity"],  # held out, of the weights in lm.ckpt
        "unigram_perplexity": streams.stats["unigram_perplexity"],
        "best_epoch": best["epoch"],
        "epochs": model.history,
        "data": {**streams.stats, "vocab_size": vocab_size,
                 "windows": len(streams.train), "bptt": int(streams.train.shape[1])},
        "train": {"seconds": round(seconds, 2),
                  # from the training steps' rate (a budget may end an epoch early),
                  # validation excluded
                  # 3 places: a small corpus's epoch takes hundredths of a second, and 1
                  # place printed it as 0.0
                  "seconds_per_epoch": round(model.train_seconds / max(1, model.global_step)
                                             * steps_per_epoch, 3),
                  "tokens_per_second": round(model.train_tokens / max(seconds, 1e-9), 1),
                  "threads": threads},
    }
