"""`textlstm train`: data -> model -> Lightning Trainer -> best checkpoint on test -> metrics.json."""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
)
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from textlstm.config import to_yaml
from textlstm.data.columns import column_array
from textlstm.data.datamodule import TextDataModule
from textlstm.data.streaming import make_datamodule
from textlstm.data.vectors import load_vectors
from textlstm.data.vocab import Vocab
from textlstm.errors import UserError
from textlstm.hardware import set_threads
from textlstm.models.classifier import TextClassifier
from textlstm.models.lit import COSINE_NEEDS_LENGTH, LitTextClassifier
from textlstm.predictor import Predictor, load_labels, read_state_dict
from textlstm.tracking.dashboard import log_dashboard, predictions
from textlstm.tracking.gates import log_gate_examples
from textlstm.tracking.report import run_report, worst_errors
from textlstm.tracking.wandb_logger import make_wandb_logger
from textlstm.training.checkpoints import AtomicCheckpointIO, RNGState, latest_checkpoint

log = logging.getLogger("textlstm")
RUN_DIR_ENV = "TEXTLSTM_RUN_DIR"


def new_run_dir(root: str | Path, name: str) -> Path:
    """runs/<name>/<timestamp>[-k]: created atomically, so two runs never share a folder."""
    base = Path(root) / name
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the run folder {base} ({e.strerror}); set run_root to a folder "
                        "you can write to.") from None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        d = base / (stamp if k == 0 else f"{stamp}-{k}")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise UserError(f"could not create a new run directory under {base}; clean it up.")


def class_weights(cfg, labels: list[str], train_label_ids) -> list[float] | None:
    cw = cfg.model.class_weights
    if cw in (None, "none"):
        return None
    if cw == "balanced":  # n / (k * count), as scikit-learn's "balanced"
        counts = np.bincount(np.asarray(train_label_ids), minlength=len(labels)).astype(float)
        return (counts.sum() / (len(labels) * np.maximum(counts, 1))).tolist()
    cw = list(cw)
    if len(cw) != len(labels) or not all(isinstance(x, int | float) and x >= 0 for x in cw):
        raise UserError(f"model.class_weights has {len(cw)} value(s) but there are {len(labels)} labels "
                        f"({', '.join(labels)}); give one non-negative number per label.")
    if not any(x > 0 for x in cw):
        raise UserError("model.class_weights are all zero, so the loss would be 0/0; give at least one positive weight.")
    return [float(x) for x in cw]


def build_model(cfg: DictConfig, vocab_size: int, labels: list[str], weights=None) -> LitTextClassifier:
    net = TextClassifier(vocab_size, len(labels), cfg.model)
    return LitTextClassifier(net, labels, OmegaConf.to_container(cfg.optim), weights,
                             config=OmegaConf.to_container(cfg, resolve=True))


def write_text(path: Path, text: str) -> None:
    """Write then rename: readers see the old file or the new one, never a torn one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False))


def resume_target(run_dir: Path) -> tuple[Path, Path]:
    """The run directory to continue and its latest checkpoint, or a clear error."""
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"cannot resume {run_dir}: it is not a run directory (no config.yaml); "
                        "pass a folder printed by `textlstm train`.")
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise UserError(f"cannot resume {run_dir}: it has no checkpoint yet (it stopped before its first "
                        "epoch ended); start it again with `textlstm train`.")
    read_state_dict(ckpt)  # refuses a corrupt checkpoint, or one carrying code, in one sentence
    if (run_dir / "metrics.json").is_file():
        raise UserError(f"cannot resume {run_dir}: it already finished (metrics.json exists); "
                        "raise trainer.max_epochs in a new run instead.")
    return run_dir, ckpt


def batch_limit(x: float) -> float | int:
    """trainer.limit_*_batches: a fraction up to 1.0, or a whole number of batches (Lightning
    wants an int for a count, and the config stores a float)."""
    return int(x) if x > 1 else x


def quiet_lightning() -> None:
    """Lightning sets its loggers to INFO when imported; keep only warnings and errors."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)


def train(cfg: DictConfig, datamodule: TextDataModule | None = None) -> Path:
    """Train, test the best checkpoint, write the run directory; returns its path.

    `datamodule`: one already set up from `cfg.data` (`make bench-scale` times preparation
    apart from training); by default it is built here."""
    quiet_lightning()
    threads = set_threads(cfg.trainer.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    resume_ckpt = None
    vocab = labels = None
    # Under DDP, Lightning starts the other ranks by running the same command again; they join
    # the run directory rank 0 made (TEXTLSTM_RUN_DIR, set by rank 0 before it launches them, or
    # by the job script for torchrun/SLURM) and write nothing themselves.
    main = rank_zero_only.rank == 0
    shared = os.environ.get(RUN_DIR_ENV)
    if cfg.resume:
        run_dir, resume_ckpt = resume_target(Path(cfg.resume))
        vocab, labels = Vocab.load(run_dir / "vocab.json"), load_labels(run_dir)
    elif not main:
        if not shared:
            raise UserError(f"this is rank {rank_zero_only.rank} of a distributed job started outside textlstm; "
                            f"set {RUN_DIR_ENV}=<a shared folder> for every process.")
        run_dir = Path(shared)
        for _ in range(600):  # rank 0 may still be writing them
            if (run_dir / "labels.json").is_file():
                break
            time.sleep(0.1)
        vocab, labels = Vocab.load(run_dir / "vocab.json"), load_labels(run_dir)

    # data and model first: a mistake found here leaves no half-made run directory behind
    dm = datamodule or make_datamodule(cfg.data, seed=cfg.seed, vocab=vocab, labels=labels)
    dm.prepare_data()
    dm.setup()
    if (cfg.optim.scheduler == "cosine" and cfg.data.streaming and dm.stats.get("train_size") is None
            and cfg.trainer.limit_train_batches <= 1):
        raise UserError(COSINE_NEEDS_LENGTH)  # before a run folder exists (LitTextClassifier checks too)
    model = build_model(cfg, len(dm.vocab), dm.labels,
                        class_weights(cfg, dm.labels, column_array(dm.splits["train"], "label_id")))
    if cfg.model.embedding.vectors:
        vecs, found, coverage = load_vectors(cfg.model.embedding.vectors, dm.vocab)
        if vecs.shape[1] != cfg.model.embedding.dim:
            raise UserError(f"model.embedding.vectors has {vecs.shape[1]}-d vectors but model.embedding.dim "
                            f"is {cfg.model.embedding.dim}; set model.embedding.dim={vecs.shape[1]}.")
        model.net.load_vectors(torch.from_numpy(vecs), torch.from_numpy(found), cfg.model.embedding.freeze)
        dm.stats["vectors_coverage"] = round(coverage, 4)
        log.info("embedding: %.1f%% of the vocabulary found in %s", 100 * coverage, cfg.model.embedding.vectors)

    if main:
        if resume_ckpt is None:
            if shared:
                run_dir = Path(shared)
                run_dir.mkdir(parents=True, exist_ok=True)
            else:
                run_dir = new_run_dir(cfg.run_root, cfg.name)
            dm.vocab.save(run_dir / "vocab.json")
            write_json(run_dir / "labels.json", dm.labels)
        else:
            log.info("resuming %s from %s", run_dir, resume_ckpt.name)
        saved = cfg.copy()
        saved.resume = None  # the run directory's config describes the run, not how it was started
        write_text(run_dir / "config.yaml", to_yaml(saved))

    t = cfg.trainer
    ckpt_dir = run_dir / "checkpoints"
    best_ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/f1_macro", mode="max",
                                save_top_k=1, enable_version_counter=False)
    # last.ckpt after every epoch: Lightning's save_last only rewrites it when the best improved,
    # so a resume would go back to the last improvement instead of the last epoch. Listed after
    # `best_ckpt` so the state it stores already holds this epoch's best score.
    last_ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                                enable_version_counter=False)
    callbacks = [best_ckpt, last_ckpt, EarlyStopping(monitor="val/f1_macro", mode="max", patience=t.patience),
                 LearningRateMonitor(logging_interval="step"), RNGState()]
    if t.checkpoint_every_n_steps:  # for long epochs: step.ckpt, overwritten every n steps
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="step", every_n_train_steps=t.checkpoint_every_n_steps,
                                         save_top_k=1, monitor=None, enable_version_counter=False))
    if t.progress_bar:
        callbacks.append(RichProgressBar(leave=True))
    loggers = [CSVLogger(run_dir, name="", version="logs")]
    id_file = run_dir / "wandb_id"
    wb = make_wandb_logger(cfg, run_dir, id_file.read_text().strip() if id_file.is_file() else None) if main else None
    if wb is not None:
        loggers.append(wb)
        write_text(id_file, wb.experiment.id)  # a resumed run continues this W&B run
        wb.experiment.define_metric("val/f1_macro", summary="max")
        wb.experiment.define_metric("val/loss", summary="min")
    trainer = L.Trainer(
        max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices, strategy=t.strategy,
        num_nodes=t.num_nodes, precision=t.precision, gradient_clip_val=t.gradient_clip_val,
        limit_train_batches=batch_limit(t.limit_train_batches), limit_val_batches=batch_limit(t.limit_val_batches),
        limit_test_batches=batch_limit(t.limit_test_batches), log_every_n_steps=t.log_every_n_steps,
        callbacks=callbacks, logger=loggers, enable_progress_bar=t.progress_bar,
        enable_model_summary=False, deterministic=False, default_root_dir=str(run_dir),
        num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # BucketBatchSampler shards itself under torch.distributed
    )
    t0 = time.perf_counter()
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)  # for the DDP ranks Lightning starts from here
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=str(resume_ckpt) if resume_ckpt else None, weights_only=True)
    except FloatingPointError as e:
        raise UserError(f"{e}; lower optim.lr or keep trainer.gradient_clip_val on.") from None
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous
    seconds = time.perf_counter() - t0
    ckpt_path = best_ckpt.best_model_path or last_ckpt.best_model_path
    if not ckpt_path:
        raise UserError("training produced no checkpoint; check trainer.limit_train_batches and max_epochs.")
    # the best epoch's validation numbers, and the best checkpoint on test
    trainer.validate(model, datamodule=dm, ckpt_path=ckpt_path, verbose=False, weights_only=True)
    validation = model.reports["validation"]
    trainer.test(model, datamodule=dm, ckpt_path=ckpt_path, verbose=False, weights_only=True)
    test = model.reports["test"]
    if not main:  # metrics are synced across ranks; rank 0 writes the results
        return run_dir

    best_epoch = _best_epoch(ckpt_path)  # 1-based, like "epochs"
    metrics = {
        "data": {k: dm.stats[k] for k in ("name", "train_size", "validation_size", "test_size", "vocab_size", "labels")}
        | {k: v for k, v in dm.stats.items() if k.endswith("oov_rate") or k in ("vectors_coverage", "train_sample_size")},
        "train": {
            "seconds": round(seconds, 2),
            "epochs": trainer.current_epoch,
            "best_epoch": best_epoch,
            "tokens_per_second": round(float(np.mean(model.tokens_per_second)), 1) if model.tokens_per_second else None,
            "threads": threads,
        },
        "validation": {k: validation[k] for k in ("accuracy", "f1_macro", "loss")},
        "test": test,
    }
    write_json(run_dir / "metrics.json", metrics)
    # what the gates did on a few validation texts (misclassified first): PNGs in the run
    # directory and images on the W&B run
    pred = Predictor(model.net, dm.vocab, dm.labels, cfg, run_dir, device="cpu")
    try:
        val = dm.tokens["validation"].select(range(min(200, len(dm.tokens["validation"]))))
        log_gate_examples(wb, pred, val["text"], val["label"], run_dir / "gates")
    except Exception as e:  # a figure must never cost the user a finished run
        log.warning("gate figures skipped: %s", e)
    test_preds = None
    try:  # the local report: worst test errors, then report.html (all plots inline)
        test_preds = predictions(pred, dm, "test")  # reused by the W&B dashboard below
        write_json(run_dir / "errors.json", worst_errors(test_preds, dm.labels))
        if wb is None:
            run_report(run_dir)
    except Exception as e:
        log.warning("report.html skipped: %s", e)
    if wb is not None:
        try:
            log_dashboard(wb, run_dir, dm, pred, metrics, ckpt_path, test_preds)
        except Exception as e:  # the dashboard must never cost the user a finished run
            log.warning("W&B dashboard items skipped: %s", e)
        wb.experiment.summary.update({f"{split}/{k}": metrics[split][k] for split in ("validation", "test")
                                      for k in ("accuracy", "f1_macro", "loss")})
        wb.experiment.finish()
        try:  # after the dashboard, which drew confusion_matrix.png
            run_report(run_dir)
        except Exception as e:
            log.warning("report.html skipped: %s", e)
    return run_dir


def _best_epoch(ckpt_path: str) -> int | None:
    try:
        return int(torch.load(ckpt_path, map_location="cpu", weights_only=True)["epoch"]) + 1
    except Exception:
        return None
