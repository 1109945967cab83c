"""Training batches per epoch, as the sampler packs them, for a config and overrides.

With a token budget (`data.max_tokens_per_batch`) the count changes with each epoch's shuffle;
the trainer reloads and recounts the loader every epoch for that reason (training/trainer.py).
docs/history/accuracy-sessions.md, "Third session", quotes these counts.

    python benchmarks/experiments/epoch_batches.py configs/auto.yaml seed=42                 # BBC
    python benchmarks/experiments/epoch_batches.py configs/auto.yaml seed=42 \
        data.source=tweets_sentiment
"""

from __future__ import annotations

import sys

from textlstm.batches.datamodule import TextDataModule
from textlstm.core.config import load_config


def counts(config: str, overrides: list[str], epochs: int | None = None) -> list[int]:
    cfg = load_config(config, overrides)
    dm = TextDataModule(cfg.data, seed=cfg.seed, long_text=cfg.model.long_text)
    dm.prepare_data()
    dm.setup()  # the auto recipe's batch size and budget are decided here
    sampler = dm.loader("train").batch_sampler
    out = []
    for epoch in range(epochs or cfg.trainer.max_epochs):
        sampler.set_epoch(epoch)
        out.append(len(sampler))
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(counts(sys.argv[1], sys.argv[2:]))
