"""`textlstm train`: data -> model -> Lightning Trainer -> best checkpoint on test -> run folder.

`train(cfg)` only assembles the steps; each lives in the stage it belongs to (batches,
training, tracking). It returns the run folder (see core/runfolder.py for its layout)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from textlstm.batches import make_datamodule
from textlstm.batches.datamodule import TextDataModule
from textlstm.batches.recipe import (
    resolve_adversarial,
    resolve_class_sampling,
    resolve_lr,
    resolve_regions,
)
from textlstm.core import runfolder
from textlstm.core.config import resolve_wide, to_yaml
from textlstm.core.errors import UserError
from textlstm.core.hardware import set_threads
from textlstm.core.io import write_json, write_text
from textlstm.core.logs import quiet_libraries
from textlstm.models.predictor import Predictor
from textlstm.tokens.vocab import Vocab
from textlstm.tracking.outputs import write_run_outputs
from textlstm.tracking.wandb_logger import start_wandb
from textlstm.training.build import build_model
from textlstm.training.trainer import (
    add_wide,
    build_trainer,
    check_schedule,
    checkpoint_epoch,
    fit,
    run_metrics,
    score_best,
    ship_average,
)

log = logging.getLogger("textlstm")


def train(cfg: DictConfig, datamodule: TextDataModule | None = None) -> Path:
    """Train, test the best checkpoint, write the run folder; returns its path.

    `datamodule`: one already set up from `cfg.data` (`bench-scale` times preparation apart
    from training); by default it is built here."""
    quiet_libraries()
    threads = set_threads(cfg.trainer.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    start = _starting_point(cfg)
    # data and model first: a mistake found here leaves no half-made run folder behind
    dm = datamodule or make_datamodule(cfg.data, seed=cfg.seed, vocab=start.vocab,
                                       labels=start.labels, task=cfg.task,
                                       long_text=cfg.model.long_text,
                                       wide_words=resolve_wide(cfg) == "tfidf")
    dm.prepare_data()
    dm.setup()
    # the auto recipe decides from the training split (batches/recipe.py); the run's
    # config.yaml records the decisions, so loading the run needs no data
    cfg.model.long_text = getattr(dm, "long_text", cfg.model.long_text)
    resolve_regions(cfg, dm)
    resolve_adversarial(cfg, dm)
    if getattr(dm, "network_vocab_size", None) is not None:  # model.wide=tfidf
        cfg.model.network_vocab_size = dm.network_vocab_size
        log.info("model.wide: the vocabulary keeps %d words, the network reads the %d seen at "
                 "least data.min_freq=%d times", len(dm.vocab) - 2, dm.network_vocab_size - 2,
                 cfg.data.min_freq)
    resolve_class_sampling(cfg, dm)  # before resolve_lr, which builds the training loader
    resolve_lr(cfg, dm)
    check_schedule(cfg, dm)
    model = build_model(cfg, dm)
    main = rank_zero_only.rank == 0
    run_dir = _open_run_dir(cfg, dm, start) if main else start.run_dir
    wb = start_wandb(cfg, run_dir) if main else None
    trainer, checkpoints = build_trainer(cfg, run_dir, wb)
    seconds = fit(trainer, model, dm, run_dir, start.checkpoint)
    best = checkpoints.best_path()
    best_epoch = checkpoint_epoch(best)  # before ship_average may rewrite best.ckpt
    averaged = ship_average(trainer, model, checkpoints)
    if averaged and averaged.get("soup_epochs"):
        log.info("best.ckpt: the average of the weights of epochs %s (greedy soup)",
                 ", ".join(map(str, sorted(averaged["soup_epochs"]))))
    elif averaged and averaged["averaged_epochs"]:
        log.info("best.ckpt: the average of the weights of epochs %d-%d",
                 *averaged["averaged_epochs"])
    wide = add_wide(trainer, model, dm, best) if model.net.wide is not None else None
    validation, test, calibration = score_best(trainer, model, dm, best, cfg.model.calibration)
    if not main:  # metrics are synced across ranks; rank 0 writes the results
        return run_dir
    metrics = run_metrics(dm, trainer, model, best_epoch, seconds, threads, validation, test,
                          calibration, averaged)
    if wide is not None:
        metrics["wide"] = wide
    write_json(run_dir / runfolder.METRICS, metrics)
    pred = Predictor(model.net, dm.vocab, dm.labels, cfg, run_dir, device="cpu",
                     temperature=model.temperature, thresholds=model.thresholds)
    write_run_outputs(wb, run_dir, dm, pred, metrics, best)
    return run_dir


@dataclass
class _Start:
    """Where a run starts: a new folder, a resumed one, or (DDP ranks > 0) rank 0's."""
    run_dir: Path | None = None
    checkpoint: Path | None = None
    vocab: Vocab | None = None
    labels: list[str] | None = None


def _starting_point(cfg: DictConfig) -> _Start:
    if cfg.resume:
        run_dir, ckpt = runfolder.resume_target(cfg.resume)
        return _Start(run_dir, ckpt, Vocab.load(run_dir / runfolder.VOCAB),
                      runfolder.load_labels(run_dir))
    if rank_zero_only.rank == 0:
        return _Start()
    # Under DDP, Lightning starts the other ranks by running the same command again; they join
    # the folder rank 0 made (TEXTLSTM_RUN_DIR, set by rank 0 before it launches them, or by
    # the job script for torchrun/SLURM) and write nothing themselves.
    shared = os.environ.get(runfolder.RUN_DIR_ENV)
    if not shared:
        raise UserError(f"this is rank {rank_zero_only.rank} of a distributed job started outside "
                        f"textlstm; set {runfolder.RUN_DIR_ENV}=<a shared folder> for every "
                        "process.")
    run_dir = Path(shared)
    for _ in range(600):  # rank 0 may still be writing them
        if (run_dir / runfolder.LABELS).is_file():
            break
        time.sleep(0.1)
    return _Start(run_dir, None, Vocab.load(run_dir / runfolder.VOCAB),
                  runfolder.load_labels(run_dir))


def _open_run_dir(cfg: DictConfig, dm: TextDataModule, start: _Start) -> Path:
    """Rank 0: the run folder with its vocabulary, labels and resolved config."""
    if start.run_dir is not None:
        run_dir = start.run_dir
        log.info("resuming %s from %s", run_dir, start.checkpoint.name)
    elif shared := os.environ.get(runfolder.RUN_DIR_ENV):  # a launcher named the folder
        run_dir = Path(shared)
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        run_dir = runfolder.new_run_dir(cfg.run_root, cfg.name)
    if start.checkpoint is None:
        dm.vocab.save(run_dir / runfolder.VOCAB)
        write_json(run_dir / runfolder.LABELS, dm.labels)
    saved = cfg.copy()
    saved.resume = None  # the run folder's config describes the run, not how it was started
    write_text(run_dir / runfolder.CONFIG, to_yaml(saved))
    return run_dir
