"""Keeping the terminal for what matters: textlstm's own lines and the progress bar.

Lightning, datasets and wandb each log at INFO or print warnings a user cannot act on; one
place decides what is shown (called by the CLI and by the library entry points that train)."""

from __future__ import annotations

import logging
import os
import sys
import warnings

NOISY = ("lightning", "lightning.pytorch", "lightning.fabric",
         "lightning.pytorch.utilities.rank_zero",
         "datasets", "wandb")


def quiet_libraries() -> None:
    """Only warnings and errors from Lightning (it resets itself to INFO when imported)."""
    for name in NOISY:
        level = logging.WARNING if name.startswith("lightning") else logging.ERROR
        logging.getLogger(name).setLevel(level)


def quiet_everything() -> None:
    """What the CLI shows: our lines, progress bars and errors; not library chatter."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_SILENT", "true")
    # a W&B service inherited from a parent process (wandb exports its address) would tie this
    # run to it: a killed sibling's run id stays "in use" there and blocks `train --resume`
    os.environ.pop("WANDB_SERVICE", None)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore",
                            message=r".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    # data.streaming: StreamBatches shares batches among workers itself, so its length is exact
    warnings.filterwarnings("ignore", message=r".*`IterableDataset` has `__len__` defined.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    quiet_libraries()
    if "datasets" not in sys.modules:
        # the same two settings, read by `datasets` when something imports it: a bundle's
        # predict never does (and importing it costs seconds)
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("DATASETS_VERBOSITY", "critical")
        return
    import datasets

    datasets.disable_progress_bars()
    # its loaders log an ERROR line before raising; we turn the exception into one sentence
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
