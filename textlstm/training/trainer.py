"""The Lightning Trainer a run uses: its callbacks, fitting, and the best checkpoint's scores.

Checkpoints (`checkpoints/` in the run folder):
- `best.ckpt`: highest validation macro-F1, the one tested and shipped;
- `last.ckpt`: every epoch, for `--resume` (Lightning's `save_last` rewrites it only when the
  best improves, so a resume would go back to the last improvement instead of the last epoch);
- `step.ckpt`: every `trainer.checkpoint_every_n_steps` steps, for long epochs.

With `trainer.average_from_epoch`, best.ckpt is overwritten after fit with the average of the
weights at the end of every epoch from that one on (`EpochAverage`, `ship_average`), or with
`trainer.average_epochs=greedy` of those epochs that do not lower the validation score
(`GreedySoup`).

With `trainer.ema_decay`, validation (and so early stopping and the choice of `best.ckpt`) sees
the moving average of the weights, and every checkpoint's `state_dict` holds the average (the
raw weights ride along for `--resume`), so what is tested, exported and served is the average.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    EMAWeightAveraging,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
)
from lightning.pytorch.loggers import CSVLogger
from torch.optim.swa_utils import AveragedModel

from textlstm.batches.datamodule import TextDataModule
from textlstm.core.errors import UserError
from textlstm.core.runfolder import RUN_DIR_ENV
from textlstm.training.calibration import fit_temperature, nll, reliability
from textlstm.training.checkpoints import AtomicCheckpointIO, RNGState
from textlstm.training.module import COSINE_NEEDS_LENGTH, LitTextClassifier, summary_metrics
from textlstm.training.multilabel import multilabel_report, tune_thresholds
from textlstm.training.progress import progress_callbacks
from textlstm.training.wide import fit_wide

MONITOR = "val/f1_macro"
log = logging.getLogger("textlstm")


def batch_limit(x: float) -> float | int:
    """trainer.limit_*_batches: a fraction up to 1.0, or a whole number of batches (Lightning
    wants an int for a count, and the config stores a float)."""
    return int(x) if x > 1 else x


def check_schedule(cfg, dm: TextDataModule) -> None:
    """A cosine schedule needs the epoch length; an unmeasured stream has none. Checked before
    a run folder exists (LitTextClassifier checks again when Lightning asks)."""
    if (cfg.optim.scheduler == "cosine" and cfg.data.streaming
            and dm.stats.get("train_size") is None and cfg.trainer.limit_train_batches <= 1):
        raise UserError(COSINE_NEEDS_LENGTH)


@dataclass
class Checkpoints:
    best: ModelCheckpoint
    last: ModelCheckpoint

    def best_path(self) -> str:
        path = self.best.best_model_path or self.last.best_model_path
        if not path:
            raise UserError("training produced no checkpoint; check trainer.limit_train_batches "
                            "and max_epochs.")
        return path


class ShippedAverage(EMAWeightAveraging):
    """Lightning's EMA callback, active while fitting only. After fit, `score_best` validates
    and tests best.ckpt, whose `state_dict` already holds the average; the stock callback would
    load the raw weights back from it and swap only around validation, so the test split
    would score the raw weights."""

    @staticmethod
    def _fitting(trainer) -> bool:
        return trainer.state.fn == "fit"

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self._fitting(trainer):
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._fitting(trainer):
            super().on_validation_epoch_end(trainer, pl_module)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self._fitting(trainer):
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class EpochAverage(Callback):
    """`trainer.average_from_epoch`: the equal-weight average (torch's AveragedModel, as in
    stochastic weight averaging) of the weights at the end of every epoch from `start` (1-based)
    to the last one trained.

    Lightning's WeightAveraging validates the average and writes it into every checkpoint, so
    the average would also choose best.ckpt and the epoch to stop at. Here validation, early
    stopping and that choice keep seeing each epoch's own weights, and `ship_average` puts the
    finished average into best.ckpt: picking the best of ten epochs on a small validation split
    (BBC: 212 articles) picks noise, and there the average of the late epochs scores higher on
    validation texts the choice did not see. Where a class is still being learned in the late
    epochs (an imbalanced set) the average lags behind (docs/accuracy.md)."""

    def __init__(self, start: int):
        self.start = start
        self.average: AveragedModel | None = None
        self.epochs: list[int] = []  # 1-based, in the average
        self._restored: dict | None = None  # a resumed run's state, before setup made the average

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and self.average is None:
            # the copy stays where the weights are now; update_parameters copies across devices
            self.average = AveragedModel(pl_module.net, use_buffers=True)
            if self._restored is not None:
                self.load_state_dict(self._restored)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # runs after the epoch's validation and before its checkpoints (Lightning calls
        # ModelCheckpoint last), so last.ckpt holds this epoch in the average for --resume
        epoch = trainer.current_epoch + 1
        if epoch >= self.start and epoch not in self.epochs:
            self.average.update_parameters(pl_module.net)
            self.epochs.append(epoch)

    def state_dict(self) -> dict:
        return {"epochs": list(self.epochs),
                "average": None if self.average is None else self.average.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.average is None:
            self._restored = state
            return
        self.epochs = list(state["epochs"])
        if state["average"] is not None:
            self.average.load_state_dict(state["average"])


class GreedySoup(Callback):
    """`trainer.average_epochs=greedy`: a greedy soup (Wortsman et al. 2022, "Model soups",
    recipe 1) of the epochs from `start` on. Each epoch's weights are kept with its validation
    score; after fit they are tried best first, and an epoch joins the average only if the
    average's validation macro-F1 does not fall. If the soup scores below the best validated
    epoch (one from before `start`), best.ckpt stays that epoch.

    Why not every late epoch (`EpochAverage`): on BBC the mean of epochs 4-10 cut the seed
    spread from 2.4 to 0.9 points, but where a class is still being learned in the late
    epochs (the imbalanced stand-in) it lost 0.0085 of validation macro-F1 on every seed;
    letting validation reject the epochs that pull the average down keeps the first and avoids
    the second (docs/accuracy.md). The kept weights (net only, on the CPU) ride in last.ckpt's
    callback state for --resume."""

    def __init__(self, start: int):
        self.start = start
        self.epochs: dict[int, dict] = {}  # 1-based epoch -> {"f1", "loss", "state"}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # after the epoch's validation, before its checkpoints (as EpochAverage)
        epoch = trainer.current_epoch + 1
        score = trainer.callback_metrics.get(MONITOR)
        if epoch < self.start or epoch in self.epochs or score is None:
            return
        loss = trainer.callback_metrics.get("val/loss")
        self.epochs[epoch] = {
            "f1": float(score), "loss": float("inf") if loss is None else float(loss),
            "state": {k: v.detach().to("cpu", copy=True)
                      for k, v in pl_module.net.state_dict().items()}}

    def state_dict(self) -> dict:
        return {"epochs": self.epochs}

    def load_state_dict(self, state: dict) -> None:
        self.epochs = {int(k): v for k, v in state["epochs"].items()}

    def cook(self, trainer: L.Trainer, model: LitTextClassifier) -> tuple[list[int], float]:
        """The soup's epochs (in the order they joined) and its validation macro-F1; the
        model's net holds the soup's weights afterwards."""
        # best first; ties go to the lower validation loss, then to the later epoch
        order = sorted(self.epochs, key=lambda e: (-self.epochs[e]["f1"],
                                                   self.epochs[e]["loss"], -e))
        soup, score = [order[0]], self.epochs[order[0]]["f1"]
        for epoch in order[1:]:
            trial = validation_f1(trainer, model, mean_state(
                [self.epochs[e]["state"] for e in (*soup, epoch)]))
            joins = trial >= score
            log.info("greedy soup: epoch %d %s (validation macro-F1 %.4f with it, %.4f without)",
                     epoch, "joins" if joins else "left out", trial, score)
            if joins:
                soup, score = [*soup, epoch], trial
        model.net.load_state_dict(mean_state([self.epochs[e]["state"] for e in soup]))
        return soup, score


def mean_state(states: list[dict]) -> dict:
    """The equal-weight mean of state dicts; integer buffers (counters) come from the last."""
    return {k: torch.stack([s[k] for s in states]).mean(0) if states[-1][k].is_floating_point()
            else states[-1][k] for k in states[-1]}


def validation_f1(trainer: L.Trainer, model: LitTextClassifier, state: dict) -> float:
    """Validation macro-F1, the checkpoint monitor, of the net with `state` loaded: the same
    metric object a validation epoch uses, without a Lightning loop, whose every call would
    log another validation point to the CSV log and W&B (metrics sync across DDP ranks)."""
    model.net.load_state_dict(state)
    model.train(False)  # dropout off (evaluation mode) before scoring this candidate
    metrics = summary_metrics(len(model.labels), model.multilabel).to(model.device)
    with torch.inference_mode(), trainer.precision_plugin.val_step_context():
        for batch in trainer.datamodule.val_dataloader():
            batch = model.transfer_batch_to_device(batch, model.device, 0)
            logits = model(batch["ids"], batch["lengths"])  # (B, C)
            metrics.update(model._predict(logits), model._targets(batch["labels"]))
    return float(metrics.compute()["f1_macro"])


def ship_average(trainer: L.Trainer, model: LitTextClassifier,
                 ckpts: Checkpoints) -> dict | None:
    """After fit: with `trainer.average_from_epoch` and at least one epoch averaged, best.ckpt is
    rewritten with the average, so it is what is tested, exported and served. Returns what
    metrics.json's `train` records: `averaged_epochs`, the average's first and last epoch ([]
    when there is no average: best.ckpt stays the best validated epoch, e.g. when early
    stopping came before `average_from_epoch`), and for a greedy soup `soup_epochs`, every
    epoch in it, in the order they joined. None when the option is off."""
    avg = next((c for c in trainer.callbacks if isinstance(c, EpochAverage | GreedySoup)),
               None)
    if avg is None:
        return None
    if not avg.epochs:
        return {"averaged_epochs": []}
    if isinstance(avg, GreedySoup):
        soup, score = avg.cook(trainer, model)
        best = ckpts.best.best_model_score
        avg.epochs = {}  # what best.ckpt's callback state would carry: not needed to serve
        if len(soup) == 1 or (best is not None and score < float(best)):
            return {"averaged_epochs": [], "soup_epochs": []}  # best.ckpt stays as it is
        trainer.save_checkpoint(ckpts.best_path())
        return {"averaged_epochs": [min(soup), max(soup)], "soup_epochs": soup}
    model.net.load_state_dict(avg.average.module.state_dict())
    trainer.save_checkpoint(ckpts.best_path())
    return {"averaged_epochs": [avg.epochs[0], avg.epochs[-1]]}


def add_wide(trainer: L.Trainer, model: LitTextClassifier, dm: TextDataModule,
             ckpt_path: str) -> dict:
    """`model.wide`: fit the TF-IDF part and the mix on best.ckpt's network (after the soup),
    and write them into best.ckpt, which is tested, exported and served. Every DDP rank fits
    the same numbers from the same whole splits. Returns metrics.json's `wide`."""
    state = torch.load(ckpt_path, map_location=model.device, weights_only=True)["state_dict"]
    model.load_state_dict(state)
    report = fit_wide(model, dm)
    trainer.save_checkpoint(ckpt_path)
    return report


def varying_epochs(d) -> bool:
    """Whether the count of training batches may change from epoch to epoch: with a token
    budget it does (batches/sampler.py); a stream has no count to begin with."""
    return d.max_tokens_per_batch is not None and not d.streaming


def build_trainer(cfg, run_dir: Path, wandb_logger=None) -> tuple[L.Trainer, Checkpoints]:
    t = cfg.trainer
    ckpt_dir = run_dir / "checkpoints"
    ckpts = Checkpoints(
        best=ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=MONITOR, mode="max",
                             save_top_k=1,
                             enable_version_counter=False),
        # listed after `best` so the state it stores already holds this epoch's best score
        last=ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                             enable_version_counter=False),
    )
    callbacks = [ckpts.best, ckpts.last,
                 EarlyStopping(monitor=MONITOR, mode="max", patience=t.patience),
                 LearningRateMonitor(logging_interval="step"), RNGState()]
    if t.ema_decay is not None:
        callbacks.append(ShippedAverage(decay=t.ema_decay))
    if t.average_from_epoch is not None:
        callbacks.append(GreedySoup(t.average_from_epoch) if t.average_epochs == "greedy"
                         else EpochAverage(t.average_from_epoch))
    if t.checkpoint_every_n_steps:
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="step", monitor=None,
                                         save_top_k=1,
                                         every_n_train_steps=t.checkpoint_every_n_steps,
                                         enable_version_counter=False))
    shown = progress_callbacks(t.progress_bar)  # a bar, or one line per epoch if not a tty
    callbacks += shown
    loggers = [CSVLogger(run_dir, name="",
                         version="logs")] + ([wandb_logger] if wandb_logger else [])
    trainer = L.Trainer(
        max_epochs=t.max_epochs, max_time=_max_time(t.max_minutes), accelerator=t.accelerator,
        devices=t.devices, strategy=t.strategy,
        num_nodes=t.num_nodes, precision=t.precision, gradient_clip_val=t.gradient_clip_val,
        limit_train_batches=batch_limit(t.limit_train_batches),
        limit_val_batches=batch_limit(t.limit_val_batches),
        limit_test_batches=batch_limit(t.limit_test_batches), log_every_n_steps=t.log_every_n_steps,
        callbacks=callbacks, logger=loggers,
        enable_progress_bar=any(isinstance(c, RichProgressBar) for c in shown),
        enable_model_summary=False, deterministic=False, default_root_dir=str(run_dir),
        num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # BucketBatchSampler shards itself under torch.distributed
        # Lightning counts the training batches once and validates when that many have run; a
        # token budget packs a different count each epoch (BBC: 119 or 120), and an epoch
        # shorter than the first was never validated while early stopping counted it as a
        # non-improving epoch. Reloading recounts every epoch (datamodule.loader).
        reload_dataloaders_every_n_epochs=int(varying_epochs(cfg.data)),
    )
    return trainer, ckpts


def fit(trainer: L.Trainer, model: LitTextClassifier, dm: TextDataModule, run_dir: Path,
        resume_from: Path | None = None) -> float:
    """Train; returns the seconds it took. The DDP ranks Lightning starts from here find the
    run folder in TEXTLSTM_RUN_DIR."""
    t0 = time.perf_counter()
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=str(resume_from) if resume_from else None,
                    weights_only=True)
    except FloatingPointError as e:
        raise UserError(f"{e}; lower optim.lr or keep trainer.gradient_clip_val on.") from None
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous
    return time.perf_counter() - t0


def score_best(trainer: L.Trainer, model: LitTextClassifier, dm: TextDataModule, ckpt_path: str,
               calibration: str = "temperature") -> tuple[dict, dict, dict]:
    """The best checkpoint's validation report, its calibration (a temperature fitted on the
    validation logits), then its test report with that temperature (metrics synced across
    ranks, so every rank fits the same T)."""
    trainer.validate(model, datamodule=dm, ckpt_path=ckpt_path, verbose=False, weights_only=True)
    validation = model.reports["validation"]
    logits, labels = model.outputs["validation"]
    if model.multilabel:
        return _score_multilabel(trainer, model, dm, ckpt_path, validation)
    model.temperature = fit_temperature(logits, labels) if calibration == "temperature" else 1.0
    trainer.test(model, datamodule=dm, ckpt_path=ckpt_path, verbose=False, weights_only=True)
    test_logits, test_labels = model.outputs["test"]
    T = model.temperature
    calib = {
        "method": calibration,
        "temperature": round(T, 6),
        "validation_nll": {"uncalibrated": round(nll(logits, labels), 6),
                           "calibrated": round(nll(logits, labels, T), 6)},
        "reliability": {"uncalibrated": reliability(test_logits, test_labels),
                        "calibrated": reliability(test_logits, test_labels, T)},
    }
    return validation, model.reports["test"], calib


def _score_multilabel(trainer: L.Trainer, model: LitTextClassifier, dm: TextDataModule,
                      ckpt_path: str, validation: dict) -> tuple[dict, dict, dict]:
    """Multi-label: per-label thresholds tuned on the validation logits, then test at them.
    No temperature: one T shared by independent sigmoids would fix none of them well, so
    the probabilities stay as trained (T = 1, calibration method none)."""
    logits, labels = model.outputs["validation"]
    model.thresholds = tune_thresholds(logits, labels)
    tuned = multilabel_report(logits, labels, model.labels, model.thresholds)
    validation = validation | {"f1_macro_tuned": tuned["f1_macro"]}
    trainer.test(model, datamodule=dm, ckpt_path=ckpt_path, verbose=False, weights_only=True)
    return validation, model.reports["test"], {"method": "none", "temperature": 1.0}


VALIDATION_KEYS = {
    "multiclass": ("accuracy", "f1_macro", "loss"),
    # f1_macro at 0.5 (the checkpoint monitor) and at the tuned thresholds
    "multilabel": ("f1_macro", "f1_macro_tuned", "f1_micro", "f1_samples", "hamming_loss",
                   "subset_accuracy", "loss"),
}


def run_metrics(dm: TextDataModule, trainer: L.Trainer, model: LitTextClassifier,
                best_epoch: int | None, seconds: float, threads: int, validation: dict, test: dict,
                calibration: dict, averaged: dict | None = None) -> dict:
    """metrics.json: data set card, training summary, the best checkpoint's scores."""
    stats = dm.stats
    tps = model.tokens_per_second
    task = "multilabel" if model.multilabel else "multiclass"
    thresholds = ({"thresholds": dict(zip(model.labels, model.thresholds, strict=True))}
                  if model.multilabel else {})
    return {
        "task": task,
        "data": {k: stats[k] for k in ("name", "train_size", "validation_size", "test_size",
                                       "vocab_size", "labels")}
        | {k: v for k, v in stats.items()
           if k.endswith("oov_rate") or k in ("vectors_coverage", "train_sample_size")},
        "train": {
            "seconds": round(seconds, 2),
            "epochs": trainer.current_epoch,
            "best_epoch": best_epoch,  # 1-based, like "epochs"; the best validated epoch
            "tokens_per_second": round(float(np.mean(tps)), 1) if tps else None,
            "threads": threads,
        } | (averaged or {}),
        "validation": {k: validation[k] for k in VALIDATION_KEYS[task]},
        "test": test,
        "calibration": calibration,
        **thresholds,
        # what model.init_from copied from a pretrained language model
        **({"init_from": model.initialised} if getattr(model, "initialised", None) else {}),
        # what the auto recipe decided from the training split (configs/auto.yaml), if anything
        **({"recipe": dm.picked} if getattr(dm, "picked", None) else {}),
    }


def _max_time(minutes: float | None) -> dict | None:
    """trainer.max_minutes as Lightning's max_time (checked after every step)."""
    return None if minutes is None else {"seconds": round(60 * float(minutes), 3)}


def checkpoint_epoch(ckpt_path: str) -> int | None:
    """The 1-based epoch a checkpoint was saved at."""
    try:
        return int(torch.load(ckpt_path, map_location="cpu", weights_only=True)["epoch"]) + 1
    except Exception:
        return None
