"""Does textlstm's own training path cost accuracy against the naive padded path? (issue 16's
lead, docs/accuracy.md has the results).

`make bench` trains both paths for 2 epochs from one initialisation and one seed. This script
repeats that comparison over several seeds (each seed: a fresh initialisation shared by every
variant) and adds the variant that separates the two suspects, batch composition and the
encoder call: textlstm's encoder with random batches (bucket_factor=1: each batch is sorted by
length only within itself, so composition is random as in the naive path).

    .venv/bin/python -m benchmarks.experiments.gap_study bbc_news 42,1,2 2
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.bench import NaiveLSTMClassifier, Stepper, accuracy, naive_loader
from textlstm.batches.collate import collate
from textlstm.batches.datamodule import TextDataModule
from textlstm.batches.sampler import BucketBatchSampler
from textlstm.core.config import load_config, preset_path
from textlstm.core.hardware import set_threads
from textlstm.models.classifier import TextClassifier
from textlstm.tokens.vectors import load_vectors


def main(name: str, seeds: list[int], epochs: int) -> None:
    set_threads(0)
    cfg = load_config(preset_path(name), [])
    dm = TextDataModule(cfg.data, seed=cfg.seed)
    dm.prepare_data()
    dm.setup()
    train = dm.splits["train"]
    vecs, found, _ = load_vectors(cfg.model.embedding.vectors, dm.vocab)

    def bucketed(bucket_factor: int, seed: int, epoch: int) -> DataLoader:
        s = BucketBatchSampler(train["length"], cfg.data.batch_size, seed=seed,
                               bucket_factor=bucket_factor)
        s.set_epoch(epoch)
        return DataLoader(train, batch_sampler=s, collate_fn=collate)

    variants = {
        "textlstm (buckets of 50 batches)": lambda seed, ep: bucketed(50, seed, ep),
        "textlstm, random batches": lambda seed, ep: bucketed(1, seed, ep),
        "naive": lambda seed, ep: naive_loader(train, cfg.data.batch_size, cfg.data.max_length,
                                               seed + ep),
    }
    scores: dict[str, list[float]] = {k: [] for k in variants}
    for seed in seeds:
        torch.manual_seed(seed)
        start = TextClassifier(len(dm.vocab), len(dm.labels), cfg.model)
        start.load_vectors(torch.from_numpy(vecs), torch.from_numpy(found))
        for variant, loader in variants.items():
            cls = NaiveLSTMClassifier if variant == "naive" else TextClassifier
            net = cls(len(dm.vocab), len(dm.labels), cfg.model)
            net.load_state_dict(start.state_dict())
            torch.manual_seed(seed)  # the same dropout draws for every variant
            t0 = time.perf_counter()
            stepper = None
            for ep in range(epochs):
                batches = loader(seed, ep)
                if stepper is None:
                    stepper = Stepper(net, batches, cfg.optim.lr)
                else:
                    stepper.batches = iter(batches)
                stepper.run(len(batches), timed=False)
            acc = accuracy(net, dm.loader("test"))
            scores[variant].append(acc)
            print(f"seed {seed}: {variant}: test accuracy {acc:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    for variant, accs in scores.items():
        print(f"{variant}: mean {np.mean(accs):.4f}, sd {np.std(accs, ddof=1):.4f} over "
              f"{len(accs)} seeds")


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2].split(",")], int(sys.argv[3]))
