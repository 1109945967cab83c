"""The LightningModule: wraps an injected `TextClassifier`, owns loss, metrics, optimiser."""

from __future__ import annotations

import math
import time

import lightning as L
import torch
from torch import nn
from torchmetrics import CatMetric, MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MultilabelExactMatch,
    MultilabelF1Score,
)

from textlstm import __version__
from textlstm.core.errors import UserError
from textlstm.models.classifier import ARCH_VERSION
from textlstm.training.calibration import ece, ece_floor
from textlstm.training.multilabel import binarize, multilabel_report

COSINE_NEEDS_LENGTH = ("optim.scheduler=cosine needs the number of training steps, and the "
                       "training stream's length is unknown; use optim.scheduler=plateau or none, "
                       "or set trainer.limit_train_batches to a number of batches.")


def summary_metrics(n: int, multilabel: bool = False) -> MetricCollection:
    if multilabel:  # fed 0/1 predictions (see _predict)
        return MetricCollection({
            "f1_macro": MultilabelF1Score(n, average="macro"),
            "f1_micro": MultilabelF1Score(n, average="micro"),
            "subset_accuracy": MultilabelExactMatch(n),
        })
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


def score_logits(logits: torch.Tensor, targets: torch.Tensor, labels: list[str],
                 temperature: float = 1.0) -> dict:
    """The same report from logits (N, C) and label ids (N,) computed elsewhere (a bundle on
    onnxruntime): the metric objects a test epoch uses, the unweighted cross-entropy of the
    calibrated logits, and the ECE with and without the temperature."""
    n = len(labels)
    metrics, report, loss = summary_metrics(n), _report_metrics(n), MeanMetric()
    preds = logits.argmax(-1)
    metrics(preds, targets)
    report(preds, targets)
    loss(nn.functional.cross_entropy(logits.float() / temperature, targets), weight=targets.numel())
    return metrics_report(metrics, report, loss, labels) | {
        "ece": ece(logits, targets, temperature), "ece_uncalibrated": ece(logits, targets),
        "ece_floor": ece_floor(logits, temperature)}


class LitTextClassifier(L.LightningModule):
    def __init__(self, net: nn.Module, labels: list[str], optim: dict,
                 class_weights: list[float] | None = None,
                 config: dict | None = None, task: str = "multiclass"):
        super().__init__()
        # the net is injected (and saved in the state dict); the config rebuilds it on load
        self.save_hyperparameters({"labels": list(labels), "optim": dict(optim),
                                   "config": config or {}, "task": task})
        self.net = net
        self.labels = list(labels)
        self.optim_cfg = optim
        self.multilabel = task == "multilabel"
        n = len(labels)
        w = torch.tensor(class_weights, dtype=torch.float) if class_weights is not None else None
        # multi-label: one sigmoid per label, the weights are each label's pos_weight
        self.criterion = (nn.BCEWithLogitsLoss(pos_weight=w) if self.multilabel
                          else nn.CrossEntropyLoss(weight=w))
        # multi-label decision thresholds, one per label, tuned on validation after training
        # (training/multilabel.py); test and every reader of the run use them, 0.5 until then
        self.thresholds: list[float] | None = None
        # one metric object per split, as in lightning-hydra-template
        self.train_metrics = summary_metrics(n, self.multilabel).clone(prefix="train/")
        self.val_metrics = summary_metrics(n, self.multilabel).clone(prefix="val/")
        self.test_metrics = summary_metrics(n, self.multilabel).clone(prefix="test/")
        self.val_report, self.test_report = _report_metrics(n), _report_metrics(n)
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.val_f1_best = MaxMetric()
        # every evaluated logit and label (synced across ranks): calibration is fitted on the
        # validation ones and measured on the test ones
        self.val_outputs, self.test_outputs = (CatMetric(), CatMetric()), (CatMetric(), CatMetric())
        self.outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        # logits are divided by it in validation/test (and by the Predictor); set after fitting
        self.temperature = 1.0
        self.reports: dict[str, dict] = {}
        self._tokens = torch.zeros((), dtype=torch.long)
        self._epoch_t0 = 0.0
        self.tokens_per_second: list[float] = []

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net(ids, lengths)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # what the weights mean: loaders refuse a checkpoint from another architecture version
        checkpoint["textlstm"] = {"arch_version": ARCH_VERSION, "version": __version__}

    def _predict(self, logits: torch.Tensor, thresholds: list[float] | None = None):
        """Predictions in the form the metrics take: (B,) class ids, or (B, C) 0/1."""
        return binarize(logits, thresholds) if self.multilabel else logits.argmax(-1)

    def _targets(self, labels: torch.Tensor) -> torch.Tensor:
        return labels.int() if self.multilabel else labels  # torchmetrics wants int targets

    def _step(self, batch):
        logits = self(batch["ids"], batch["lengths"])  # (B, C)
        loss = self.criterion(logits, batch["labels"])
        return loss, self._predict(logits), logits

    # ---- train
    def on_train_epoch_start(self) -> None:
        self._tokens = torch.zeros((), dtype=torch.long, device=self.device)
        self._epoch_t0 = time.perf_counter()

    def _adversarial_step(self, batch, eps: float):
        """Adversarial training on the word vectors (Miyato et al. 2017, "Adversarial Training
        Methods for Semi-Supervised Text Classification"): the loss on the text plus the loss on
        the text with its vectors moved by eps (L2 norm per text) in the direction that raises
        the loss the most, to first order. Returns the loss to back-propagate, the clean
        predictions and logits, and the clean loss (what train/loss logs)."""
        net, y = self.net, batch["labels"]
        ids = net.drop_words(batch["ids"])  # (B, T): one word-dropout draw for both passes
        x = net.embedding(ids)  # (B, T, E)
        frozen = not x.requires_grad
        if frozen:  # frozen vectors: the direction is still taken on them
            x = x.requires_grad_()
        logits = net.forward_embedded(x, batch["lengths"])  # (B, C)
        loss = self.criterion(logits, y)
        params = [p for p in net.parameters() if p.requires_grad]
        # one backward pass gives the direction (the gradient on x) and the clean loss's
        # gradients on the weights; the latter re-enter below through a linear term whose
        # gradient is exactly them, so the step costs 2 forward + 2 backward passes, not 3
        # backward (Lightning's automatic optimisation back-propagates one returned loss)
        grads = torch.autograd.grad(loss, [x, *params])
        g = grads[0].detach()  # (B, T, E), zero on padding
        r = eps * g / g.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]
        # the graph behind x was freed by autograd.grad: look the vectors up again
        x_adv = (x.detach() if frozen else net.embedding(ids)) + r
        adv_loss = self.criterion(net.forward_embedded(x_adv, batch["lengths"]), y)
        linear = sum((p * gp).sum() for p, gp in zip(params, grads[1:], strict=True))
        total = adv_loss + (linear - linear.detach())  # value: adv_loss; gradient: both losses
        return total, self._predict(logits), logits, loss.detach()

    def training_step(self, batch, batch_idx):
        eps = float(self.optim_cfg.get("adversarial_eps") or 0.0)  # runs from before it: 0
        if eps > 0:
            loss, preds, _, clean = self._adversarial_step(batch, eps)
        else:
            loss, preds, _ = self._step(batch)
            clean = loss
        # reading the loss on the host syncs a GPU: check every step on CPU, at log steps on GPU
        check = loss.device.type == "cpu" or batch_idx % max(1, self.trainer.log_every_n_steps) == 0
        if check and not torch.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss.item()} at step "
                                     f"{self.global_step}")
        self._tokens += batch["lengths"].sum()  # stays on device: no host sync per step
        self.train_loss(clean)
        self.train_metrics(preds, self._targets(batch["labels"]))
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
        logits = self(batch["ids"], batch["lengths"])  # (B, C)
        scaled = logits / self.temperature
        loss = self.criterion(scaled, batch["labels"])
        # test predicts multi-label texts at the tuned thresholds, validation (the
        # checkpoint monitor) at 0.5: thresholds are tuned only once training is done
        preds = self._predict(logits, self.thresholds if split == "test" else None)
        store = self.val_outputs if split == "val" else self.test_outputs
        store[0].update(logits.detach().float())
        store[1].update(batch["labels"].float())
        loss_metric(loss, weight=batch["labels"].numel())
        metrics(preds, self._targets(batch["labels"]))
        if not self.multilabel:  # the multi-label report is computed from the stored outputs
            report(preds, batch["labels"])
        self.log(f"{split}/loss", loss_metric, on_step=False, on_epoch=True)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=split == "val")

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics, self.val_report, self.val_loss, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metrics, self.test_report, self.test_loss, "test")

    def _report(self, metrics, report, loss_metric, prefix) -> dict:
        return metrics_report(metrics, report, loss_metric, self.labels)

    def _collect(self, store, split: str) -> None:
        """Keep the split's (N, C) logits and (N,) labels ((N, C) 0/1 for multi-label), all
        ranks gathered."""
        logits, labels = store[0].compute(), store[1].compute()
        n = len(self.labels)
        labels = labels.reshape(-1, n) if self.multilabel else labels.reshape(-1).long()
        self.outputs[split] = (logits.reshape(-1, n).cpu(), labels.cpu())
        store[0].reset()
        store[1].reset()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.val_report.reset()
            return
        self._collect(self.val_outputs, "validation")
        if self.multilabel:
            logits, labels = self.outputs["validation"]
            self.reports["validation"] = (multilabel_report(logits, labels, self.labels)
                                          | {"loss": float(self.val_loss.compute())})
        else:
            self.reports["validation"] = self._report(self.val_metrics, self.val_report,
                                                      self.val_loss, "val")
        self.val_report.reset()
        self.val_f1_best(self.val_metrics["f1_macro"].compute())
        self.log("val/f1_macro_best", self.val_f1_best.compute())

    def on_test_epoch_end(self) -> None:
        self._collect(self.test_outputs, "test")
        logits, labels = self.outputs["test"]
        if self.multilabel:  # no temperature (T = 1), so no calibration error either
            self.reports["test"] = (multilabel_report(logits, labels, self.labels, self.thresholds)
                                    | {"loss": float(self.test_loss.compute())})
            return
        report = self._report(self.test_metrics, self.test_report, self.test_loss, "test")
        self.reports["test"] = report | {"ece": ece(logits, labels, self.temperature),
                                         "ece_uncalibrated": ece(logits, labels),
                                         "ece_floor": ece_floor(logits, self.temperature)}
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
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5,
                                                               patience=1)
            return {"optimizer": opt,
                    "lr_scheduler": {"scheduler": sched, "monitor": "val/f1_macro"}}
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
