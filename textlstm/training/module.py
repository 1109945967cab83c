"""The LightningModule: wraps an injected `TextClassifier`, owns loss, metrics, optimiser."""

from __future__ import annotations

import math
import time

import lightning as L
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from textlstm import __version__
from textlstm.core.errors import UserError
from textlstm.models.classifier import ARCH_VERSION

COSINE_NEEDS_LENGTH = ("optim.scheduler=cosine needs the number of training steps, and the training stream's length "
                       "is unknown; use optim.scheduler=plateau or none, or set trainer.limit_train_batches to a "
                       "number of batches.")


def _summary_metrics(n: int) -> MetricCollection:
    return MetricCollection({
        "acc": MulticlassAccuracy(n, average="micro"),
        "f1_macro": MulticlassF1Score(n, average="macro"),
    })


def _report_metrics(n: int) -> MetricCollection:
    return MetricCollection({
        "precision": MulticlassPrecision(n, average=None),
        "recall": MulticlassRecall(n, average=None),
        "f1": MulticlassF1Score(n, average=None),
        "confusion": MulticlassConfusionMatrix(n),
    })


def metrics_report(metrics: MetricCollection, report: MetricCollection, loss_metric: MeanMetric,
                   labels: list[str]) -> dict:
    """metrics.json's shape for one split (also what `textlstm evaluate` prints)."""
    m = {k.split("/", 1)[-1]: float(v) for k, v in metrics.compute().items()}
    r = report.compute()
    support = r["confusion"].sum(1)
    return {
        "accuracy": m["acc"],
        "f1_macro": m["f1_macro"],
        "loss": float(loss_metric.compute()),
        "per_class": {
            lab: {"precision": float(r["precision"][i]), "recall": float(r["recall"][i]),
                  "f1": float(r["f1"][i]), "support": int(support[i])}
            for i, lab in enumerate(labels)
        },
        "confusion_matrix": r["confusion"].long().tolist(),
    }


def score_logits(logits: torch.Tensor, targets: torch.Tensor, labels: list[str]) -> dict:
    """The same report from logits (N, C) and label ids (N,) computed elsewhere (a bundle on
    onnxruntime): the metric objects a test epoch uses, the unweighted cross-entropy."""
    n = len(labels)
    metrics, report, loss = _summary_metrics(n), _report_metrics(n), MeanMetric()
    preds = logits.argmax(-1)
    metrics(preds, targets)
    report(preds, targets)
    loss(nn.functional.cross_entropy(logits.float(), targets), weight=targets.numel())
    return metrics_report(metrics, report, loss, labels)


class LitTextClassifier(L.LightningModule):
    def __init__(self, net: nn.Module, labels: list[str], optim: dict, class_weights: list[float] | None = None,
                 config: dict | None = None):
        super().__init__()
        # the net is injected (and saved in the state dict); the config rebuilds it on load
        self.save_hyperparameters({"labels": list(labels), "optim": dict(optim), "config": config or {}})
        self.net = net
        self.labels = list(labels)
        self.optim_cfg = optim
        n = len(labels)
        w = torch.tensor(class_weights, dtype=torch.float) if class_weights is not None else None
        self.criterion = nn.CrossEntropyLoss(weight=w)
        # one metric object per split, as in lightning-hydra-template
        self.train_metrics = _summary_metrics(n).clone(prefix="train/")
        self.val_metrics = _summary_metrics(n).clone(prefix="val/")
        self.test_metrics = _summary_metrics(n).clone(prefix="test/")
        self.val_report, self.test_report = _report_metrics(n), _report_metrics(n)
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.val_f1_best = MaxMetric()
        self.reports: dict[str, dict] = {}
        self._tokens = torch.zeros((), dtype=torch.long)
        self._epoch_t0 = 0.0
        self.tokens_per_second: list[float] = []

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net(ids, lengths)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # what the weights mean: loaders refuse a checkpoint from another architecture version
        checkpoint["textlstm"] = {"arch_version": ARCH_VERSION, "version": __version__}

    def _step(self, batch):
        logits = self(batch["ids"], batch["lengths"])  # (B, C)
        loss = self.criterion(logits, batch["labels"])
        return loss, logits.argmax(-1), logits

    # ---- train
    def on_train_epoch_start(self) -> None:
        self._tokens = torch.zeros((), dtype=torch.long, device=self.device)
        self._epoch_t0 = time.perf_counter()

    def training_step(self, batch, batch_idx):
        loss, preds, _ = self._step(batch)
        # reading the loss on the host syncs a GPU: check every step on CPU, at log steps on GPU
        check = loss.device.type == "cpu" or batch_idx % max(1, self.trainer.log_every_n_steps) == 0
        if check and not torch.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss.item()} at step {self.global_step}")
        self._tokens += batch["lengths"].sum()  # stays on device: no host sync per step
        self.train_loss(loss)
        self.train_metrics(preds, batch["labels"])
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        # the global gradient norm before clipping: what `trainer.gradient_clip_val` acts on
        norms = [p.grad.detach().norm(2) for p in self.net.parameters() if p.grad is not None]
        if norms:
            self.log("train/grad_norm", torch.stack(norms).norm(2), on_step=True, on_epoch=False)

    def on_train_epoch_end(self) -> None:
        seconds = time.perf_counter() - self._epoch_t0
        tps = float(self._tokens) / max(seconds, 1e-9)
        self.tokens_per_second.append(tps)
        self.log("train/tokens_per_second", tps, sync_dist=True)

    # ---- validation / test
    def _eval_step(self, batch, metrics, report, loss_metric, split):
        loss, preds, _ = self._step(batch)
        loss_metric(loss, weight=batch["labels"].numel())
        metrics(preds, batch["labels"])
        report(preds, batch["labels"])
        self.log(f"{split}/loss", loss_metric, on_step=False, on_epoch=True)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=split == "val")

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics, self.val_report, self.val_loss, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metrics, self.test_report, self.test_loss, "test")

    def _report(self, metrics, report, loss_metric, prefix) -> dict:
        return metrics_report(metrics, report, loss_metric, self.labels)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.val_report.reset()
            return
        self.reports["validation"] = self._report(self.val_metrics, self.val_report, self.val_loss, "val")
        self.val_report.reset()
        self.val_f1_best(self.val_metrics["f1_macro"].compute())
        self.log("val/f1_macro_best", self.val_f1_best.compute())

    def on_test_epoch_end(self) -> None:
        self.reports["test"] = self._report(self.test_metrics, self.test_report, self.test_loss, "test")
        self.test_report.reset()

    # ---- optimisation
    def configure_optimizers(self):
        o = self.optim_cfg
        params = [p for p in self.parameters() if p.requires_grad]
        opt_cls = torch.optim.AdamW if o["name"] == "adamw" else torch.optim.Adam
        opt = opt_cls(params, lr=o["lr"], weight_decay=o["weight_decay"])
        if o["scheduler"] == "none":
            return opt
        if o["scheduler"] == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=1)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val/f1_macro"}}
        steps = self.trainer.estimated_stepping_batches
        # a stream of unknown length (data.streaming=true): Lightning says inf, or max_steps (-1)
        if not math.isfinite(steps) or steps < 1:
            raise UserError(COSINE_NEEDS_LENGTH)
        total = max(1, int(steps))
        warm = min(o["warmup_steps"], total - 1)

        def lr_at(step: int) -> float:  # linear warm-up, then cosine to 5 % of the peak
            if step < warm:
                return (step + 1) / (warm + 1)
            p = (step - warm) / max(1, total - warm)
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
