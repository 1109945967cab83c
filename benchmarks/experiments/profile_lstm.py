"""Profiles behind docs/benchmarks.md "Training speed" (torch.profiler, 2 threads). Run from
the project root:

    .venv/bin/python -m benchmarks.experiments.profile_lstm packed  # packed vs padded, fwd + bwd
    .venv/bin/python -m benchmarks.experiments.profile_lstm step bbc_news  # a step, naive vs ours
"""

import sys
import time

import torch
from torch.profiler import profile

torch.set_num_threads(2)


def packed() -> None:
    from textlstm.models.encoders import RNNEncoder

    torch.manual_seed(0)
    B, T, E, H = 64, 256, 128, 256
    enc = RNNEncoder(E, H)
    x = torch.randn(B, T, E, requires_grad=True)
    lengths = torch.randint(T // 4, T + 1, (B,))
    lengths[0] = T
    for impl in ("padded", "packed"):
        enc.impl = impl
        out, _ = enc(x, lengths)
        out.sum().backward()  # warm-up
        t0 = time.perf_counter()
        out, _ = enc(x, lengths)
        t1 = time.perf_counter()
        out.sum().backward()
        print(f"{impl}: forward {t1 - t0:.2f} s, backward {time.perf_counter() - t1:.2f} s")
        with profile() as p:
            out, _ = enc(x, lengths)
            out.sum().backward()
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def step(name: str) -> None:
    from benchmarks.bench import NaiveLSTMClassifier, Stepper, naive_loader
    from textlstm.batches.datamodule import TextDataModule
    from textlstm.core.config import load_config
    from textlstm.models.classifier import TextClassifier

    cfg = load_config(f"configs/{name}.yaml", [])
    dm = TextDataModule(cfg.data, seed=cfg.seed)
    dm.prepare_data()
    dm.setup()
    V, C = len(dm.vocab), len(dm.labels)
    paths = {"naive": Stepper(NaiveLSTMClassifier(V, C, cfg.model),
                              naive_loader(dm.splits["train"], cfg.data.batch_size,
                                           cfg.data.max_length, 0), 1e-3),
             "textlstm": Stepper(TextClassifier(V, C, cfg.model), dm.loader("train"), 1e-3)}
    for s in paths.values():
        s.run(3, timed=False)
    for label, s in paths.items():
        with profile() as p:
            s.run(6)
        print(f"{label}: {s.tokens_per_second:,.0f} real tokens/s")
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


if __name__ == "__main__":
    if sys.argv[1:2] == ["packed"]:
        packed()
    elif sys.argv[1:2] == ["step"] and len(sys.argv) == 3:
        step(sys.argv[2])
    else:
        sys.exit(__doc__)
