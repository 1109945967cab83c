"""The auto recipe's data-driven decisions (configs/auto.yaml): read from the training split's
token lengths, before the splits are encoded, so one config fits tweets and long articles.

Every `auto` left in the config is replaced by a number here, and `pick` returns what it chose
and why (the lengths it saw), which the run logs to the console, metrics.json and W&B. The
rules and the measurements behind them are in docs/accuracy.md.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from textlstm.core.config import chunk_span

# the longest window: its length is the LSTM's sequential critical path, and more windows of
# it make a wider batch instead (a choice, not a measured optimum; docs/accuracy.md)
LONGEST_WINDOW = 128
SHORTEST_WINDOW = 16
MOST_CHUNKS = 64
# optim.lr=auto (an option; configs/auto.yaml keeps 0.003): the presets' hand-tuned rate at
# about the optimizer steps of BBC's recipe run (8 epochs of 119-120 batches), and
# 1 / sqrt(planned steps) from there, the step size that is optimal for a fixed horizon in the
# classic SGD analysis. On validation (docs/accuracy.md) a fixed 0.0015 beat 0.003 on tweets
# (3,832 steps; 5 of 6 seeds), but auto lost to 0.003 on the imbalanced tweets stand-in (2,864
# steps; all 4 seeds), so the recipe does not use it.
BASE_LR, BASE_STEPS = 3e-3, 1000
LOWEST_LR = 3e-4
# data.class_sampling=auto: a class with at most RARE_TEXTS training texts is rare. Then each
# epoch draws sqrt-balanced (sampler.py) and the run trains longer at a higher rate, since a
# class seen a few times an epoch needs many epochs to be learned: on debian-rare (50 classes,
# 34 with 2-10 texts) 3 seeds gave validation macro-F1 0.32 against 0.19 for the recipe without
# it, rare-class test F1 0.17 against 0.05; sqrt alone, 40 epochs alone or lr 0.01 alone each
# reached 0.23-0.27 (docs/accuracy.md, "Stand-ins").
RARE_TEXTS, RARE_LR, RARE_EPOCHS, RARE_PATIENCE = 10, 0.01, 40, 8
# model.regions=auto: long documents (read in windows) are max-pooled in LONG_REGIONS pieces
# (Johnson and Zhang 2016). On validation, 3 seeds each, one thread: BBC 0.9877 against 0.9817,
# debian-long 0.9626 against 0.9364; on the tweets (one window) 0.7673 against 0.7699, so short
# texts keep one max (docs/accuracy.md, "Region pooling").
LONG_REGIONS = 4
# optim.adversarial_eps=auto: adversarial steps (about 2x the time of a plain one) for texts read
# in one window, none for documents read in windows. Validation macro-F1, 3 seeds, 2 threads:
# BBC's answers 0.9895 without against 0.9865 with (the network alone 0.9909 against 0.9895),
# training in 53 s against 93-96 s; debian-long's 1.0 either way, though the network alone
# loses 0.015 there (docs/accuracy.md, "Adversarial steps on long documents"). Short texts keep
# them: they gained 0.015 on the tweets, 0.013 on the 2,000-tweet stand-in, 0.02 on debian-rare.
SHORT_EPS, LONG_EPS = 1.0, 0.0

log = logging.getLogger("textlstm")


def _round_up(x: float, to: int) -> int:
    return int(math.ceil(x / to) * to)


def pick(d, long_text: str, lengths: np.ndarray) -> dict:
    """Fill the `auto` keys of the data section `d` (in place) and decide `long_text`.

    `lengths` are the training texts' token counts. Returns the decisions, with the length
    percentiles they came from."""
    lengths = np.maximum(np.asarray(lengths), 1)
    p50, p75, p90, p99 = (float(np.percentile(lengths, q)) for q in (50, 75, 90, 99))
    longest = int(lengths.max())
    if d.chunk_length == "auto":
        # short texts: one window holds (nearly) all of them; long ones: the longest window
        d.chunk_length = int(min(LONGEST_WINDOW, max(SHORTEST_WINDOW, _round_up(p99, 8))))
    decided = long_text == "auto"
    if decided:
        long_text = "chunks" if longest > d.chunk_length else "truncate"
    if d.max_chunks == "auto":
        step = d.chunk_length - d.chunk_overlap
        need = 1 + math.ceil(max(0.0, p99 - d.chunk_length) / step)
        d.max_chunks = int(min(MOST_CHUNKS, max(1, need)))
    if decided and d.max_chunks == 1:
        long_text = "truncate"  # one window is truncation at its length: keep the plain model
    if long_text == "chunks":
        d.max_length = chunk_span(d)
    elif decided:
        d.max_length = int(d.chunk_length)  # one window: 99% of the texts are read whole
    if d.batch_size == "auto":
        # steps per epoch grow as sqrt(texts): a rule close to the batch sizes tuned by hand for
        # BBC (16 for 1,701 texts; it gives 16) and tweets (64 for 29,785; it gives 66)
        d.batch_size = int(min(128, max(8, round(math.sqrt(len(lengths)) / 2.6))))
    if d.max_tokens_per_batch == "auto":
        # room for data.batch_size texts of the 75th-percentile length: longer documents come
        # in smaller batches, so no step costs more memory than a typical one
        d.max_tokens_per_batch = int(max(d.max_length,
                                         d.batch_size * min(p75, d.max_length)))
    return {"long_text": long_text, "batch_size": int(d.batch_size),
            "chunk_length": int(d.chunk_length),
            "max_chunks": int(d.max_chunks), "max_length": int(d.max_length),
            "max_tokens_per_batch": d.max_tokens_per_batch,
            "train_tokens": {"p50": p50, "p75": p75, "p90": p90, "p99": p99,
                             "longest": longest,
                             "cut_off_fraction": round(float((lengths > d.max_length).mean()), 4)}}


def pick_lr(planned_steps: int) -> float:
    """optim.lr=auto: BASE_LR x sqrt(BASE_STEPS / planned steps), between LOWEST_LR and
    BASE_LR (a faster rate than the presets' was never measured, so short runs keep it)."""
    lr = BASE_LR * math.sqrt(BASE_STEPS / max(1, planned_steps))
    return float(min(BASE_LR, max(LOWEST_LR, round(lr, 6))))


def resolve_lr(cfg, dm) -> None:
    """Replace optim.lr=auto (in place) by `pick_lr` of the planned optimizer steps:
    trainer.max_epochs x the training batches of one epoch (on one device). `dm` is set up;
    the decision joins its `picked` (console, metrics.json, W&B)."""
    if cfg.optim.lr != "auto":
        return
    per_epoch = len(dm.loader("train").batch_sampler)
    steps = int(cfg.trainer.max_epochs) * per_epoch
    cfg.optim.lr = pick_lr(steps)
    dm.picked = {**dm.picked, "lr": cfg.optim.lr, "planned_steps": steps}
    log.info("auto recipe: optim.lr=%s for %d planned optimizer steps", cfg.optim.lr, steps)


def resolve_class_sampling(cfg, dm) -> None:
    """Replace data.class_sampling=auto (in place): sqrt with the rare-class schedule
    (RARE_EPOCHS, RARE_PATIENCE, RARE_LR) when the rarest training class of a multi-class task
    has at most RARE_TEXTS texts, else none. Before anything builds the training loader; the
    decision joins `dm.picked` (console, metrics.json, W&B)."""
    if cfg.data.class_sampling != "auto":
        return
    counts = dm.train_class_counts() if cfg.task == "multiclass" and not cfg.data.streaming \
        else None
    rarest = int(min(counts)) if counts is not None and len(counts) else None
    rare = rarest is not None and rarest <= RARE_TEXTS
    cfg.data.class_sampling = "sqrt" if rare else "none"
    decided = {"class_sampling": cfg.data.class_sampling, "rarest_class_texts": rarest}
    if rare:
        cfg.trainer.max_epochs, cfg.trainer.patience = RARE_EPOCHS, RARE_PATIENCE
        cfg.optim.lr = RARE_LR
        decided |= {"max_epochs": RARE_EPOCHS, "patience": RARE_PATIENCE, "lr": RARE_LR}
        log.info("auto recipe: the rarest class has %d training texts: sqrt class sampling, "
                 "%d epochs (patience %d) at lr %s", rarest, RARE_EPOCHS, RARE_PATIENCE, RARE_LR)
    dm.picked = {**dm.picked, **decided}


def resolve_regions(cfg, dm) -> None:
    """Replace model.regions=auto (in place, after model.long_text is decided): LONG_REGIONS
    pieces when documents are read in windows, else one max; the decision joins `dm.picked`
    (console, metrics.json, W&B)."""
    if cfg.model.regions != "auto":
        return
    cfg.model.regions = LONG_REGIONS if cfg.model.long_text == "chunks" else 1
    log.info("auto recipe: model.regions=%d (long_text=%s)", cfg.model.regions,
             cfg.model.long_text)
    dm.picked = {**dm.picked, "regions": cfg.model.regions}


def resolve_adversarial(cfg, dm) -> None:
    """Replace optim.adversarial_eps=auto (in place, after model.long_text is decided):
    LONG_EPS when documents are read in windows, else SHORT_EPS; the decision joins `dm.picked`
    (console, metrics.json, W&B)."""
    if cfg.optim.adversarial_eps != "auto":
        return
    cfg.optim.adversarial_eps = LONG_EPS if cfg.model.long_text == "chunks" else SHORT_EPS
    log.info("auto recipe: optim.adversarial_eps=%s (long_text=%s)", cfg.optim.adversarial_eps,
             cfg.model.long_text)
    dm.picked = {**dm.picked, "adversarial_eps": cfg.optim.adversarial_eps}
