"""What training shows while it runs: Rich's progress bar on a terminal, one plain line per
epoch elsewhere (CI logs, `make train > log`), where a live bar cannot redraw itself and Rich
prints its metrics wrapped into a narrow column, one value per line."""

from __future__ import annotations

import sys
import time

import lightning as L
from lightning.pytorch.callbacks import Callback, RichProgressBar


class EpochLines(Callback):
    """`epoch 3/10  train/loss 0.412  val/accuracy 0.931 ...  (12.3 s)`: the metrics the bar
    would show (those logged with prog_bar=True), epoch means rather than the last step."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        shown = {k.removesuffix("_epoch"): v for k, v in trainer.progress_bar_metrics.items()
                 if not k.endswith("_step")}
        of = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        values = "  ".join(f"{k} {float(v):.4f}" for k, v in sorted(shown.items()))
        print(f"epoch {trainer.current_epoch + 1}{of}  {values}  "
              f"({time.perf_counter() - self._t0:.1f} s)", flush=True)


def progress_callbacks(show: bool) -> list[Callback]:
    """trainer.progress_bar: a bar on a terminal, a line per epoch when stdout is not one."""
    if not show:
        return []
    return [RichProgressBar(leave=True)] if sys.stdout.isatty() else [EpochLines()]
