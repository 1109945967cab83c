"""`data.class_sampling` (batches/sampler.py): the drawn class frequencies follow the rule
(share of class c proportional to n_c ** (1 - q)), the draw is deterministic per (seed, epoch)
and still length-bucketed, and a real Lightning run on a Zipf-sized stand-in learns the classes
with 2-3 training texts that the plain shuffle leaves unlearned."""

import csv
import json

import numpy as np
import pytest

from tests.conftest import ROOT, TINY
from textlstm.batches.sampler import BucketBatchSampler, class_sampling_weights
from textlstm.core.config import load_config
from textlstm.core.errors import UserError

COUNTS = (1000, 100, 10)


def _drawn_share(rule: str, epochs: int = 20, **kw) -> np.ndarray:
    labels = np.repeat(np.arange(len(COUNTS)), COUNTS)
    lengths = np.random.default_rng(0).integers(1, 60, len(labels))
    s = BucketBatchSampler(lengths, 32, seed=3, weights=class_sampling_weights(labels, rule), **kw)
    drawn = np.zeros(len(COUNTS))
    for epoch in range(epochs):
        s.set_epoch(epoch)
        idx = np.concatenate([np.asarray(b) for b in s.batches()])
        assert len(idx) == len(labels)  # the same epoch size as without re-sampling
        drawn += np.bincount(labels[idx], minlength=len(COUNTS))
    return drawn


@pytest.mark.parametrize("rule,q", [("sqrt", 0.5), ("balanced", 1.0)])
@pytest.mark.parametrize("kw", [{}, {"max_tokens": 400}, {"exact": True}],
                         ids=["batch_size", "token_budget", "exact"])
def test_drawn_class_shares_follow_the_rule(rule, q, kw):
    drawn = _drawn_share(rule, **kw)
    expected = np.asarray(COUNTS, float) ** (1 - q)
    expected /= expected.sum()
    total = drawn.sum()
    sd = np.sqrt(total * expected * (1 - expected))  # binomial spread of each class's count
    assert np.all(np.abs(drawn - total * expected) < 5 * sd), (drawn / total, expected)


def test_none_is_the_plain_permutation_and_the_draw_is_deterministic():
    labels = np.repeat(np.arange(3), COUNTS)
    assert class_sampling_weights(labels, "none") is None
    w = class_sampling_weights(labels, "balanced")
    lengths = np.arange(len(labels)) % 50 + 1
    a = BucketBatchSampler(lengths, 16, seed=1, weights=w)
    b = BucketBatchSampler(lengths, 16, seed=1, weights=w)
    assert a.batches() == b.batches()
    b.set_epoch(1)
    assert a.batches() != b.batches()
    # still bucketed: the texts of a batch are of similar length (sorted inside windows)
    spread = np.mean([np.ptp(lengths[x]) for x in a.batches()])
    assert spread < 10, spread


@pytest.mark.parametrize("override,needs", [("task=multilabel", "task=multiclass"),
                                            ("data.streaming=true", "prepared data path"),
                                            (None, "use none, sqrt, balanced or auto")],
                         ids=["multilabel", "streaming", "unknown_rule"])
def test_class_sampling_refuses_what_it_cannot_do(override, needs):
    rule = "balanced" if override else "inverse"
    with pytest.raises(UserError, match=needs):
        load_config(ROOT / "configs" / "bbc_news.yaml",
                    [f"data.class_sampling={rule}", *([override] if override else [])])


# ---------------------------------------------------------------- a real run on a Zipf stand-in

# class -> (training texts, its own words); every class has its own keywords, noise is shared
ZIPF = {"alpha": (150, "goal match team"), "beta": (50, "bank shares profit"),
        "gamma": (15, "band album guitar"), "delta": (3, "rain cloud storm"),
        "omega": (2, "engine piston valve")}
RARE = ("delta", "omega")
NOISE = "the a of and to in it was on for with said".split()


def _texts(per_class: dict[str, int], seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for label, n in per_class.items():
        own = ZIPF[label][1].split()
        for _ in range(n):
            words = [*rng.choice(own, size=3), *rng.choice(NOISE, size=int(rng.integers(4, 9)))]
            rng.shuffle(words)
            rows.append((" ".join(words), label))
    rng.shuffle(rows)
    return rows


def _write(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def zipf_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("zipf")
    even = dict.fromkeys(ZIPF, 10)
    return d, {"train": _write(d / "train.csv", _texts({k: v[0] for k, v in ZIPF.items()}, 0)),
               "validation": _write(d / "validation.csv", _texts(even, 1)),
               "test": _write(d / "test.csv", _texts(even, 2))}


def _rare_recall(zipf_files, rule: str) -> dict[str, float]:
    from textlstm.commands.train import train

    d, files = zipf_files
    cfg = load_config(ROOT / "configs" / "bbc_news.yaml", [
        *(f"data.{s}_file={p}" for s, p in files.items()), f"data.data_dir={d / 'data'}",
        f"run_root={d / ('runs-' + rule)}", "model.embedding.vectors=null", "wandb.mode=disabled",
        *TINY, "trainer.max_epochs=3", "optim.lr=0.01", "trainer.patience=10",
        "model.calibration=none", f"data.class_sampling={rule}", "seed=0"])
    run = train(cfg)
    per_class = json.loads((run / "metrics.json").read_text())["test"]["per_class"]
    return {c: per_class[c]["recall"] for c in RARE}


def test_class_balanced_sampling_learns_classes_with_two_or_three_texts(zipf_files):
    """3 epochs of ~220 texts: the plain shuffle shows the two rare classes 5 times in all and
    never predicts them; balanced sampling draws each about 44 times an epoch."""
    plain = _rare_recall(zipf_files, "none")
    balanced = _rare_recall(zipf_files, "balanced")
    assert all(r > 0.3 for r in balanced.values()), (balanced, plain)
    assert sum(plain.values()) < sum(balanced.values()), (balanced, plain)


def test_auto_turns_on_sqrt_and_the_long_schedule_only_for_rare_classes(zipf_files):
    """data.class_sampling=auto (configs/auto.yaml): the Zipf stand-in's rarest class has 2
    texts, so it draws sqrt and trains RARE_EPOCHS at RARE_LR; with every class at 11 texts or
    more, and for multi-label or streamed data, it is none and the schedule is left alone."""
    from textlstm.batches import make_datamodule
    from textlstm.batches.recipe import (
        RARE_EPOCHS,
        RARE_LR,
        RARE_PATIENCE,
        RARE_TEXTS,
        resolve_class_sampling,
    )

    d, files = zipf_files
    common = [f"data.validation_file={files['validation']}", f"data.test_file={files['test']}",
              f"data.data_dir={d / 'data'}", "model.embedding.vectors=null",
              "data.class_sampling=auto", "optim.lr=0.002", "trainer.max_epochs=5"]

    def resolved(train_file, *extra):
        cfg = load_config(ROOT / "configs" / "bbc_news.yaml",
                          [f"data.train_file={train_file}", *common, *extra])
        dm = make_datamodule(cfg.data, seed=0, task=cfg.task)
        dm.prepare_data()
        dm.setup()
        resolve_class_sampling(cfg, dm)
        return cfg, dm.picked

    cfg, picked = resolved(files["train"])
    assert picked["rarest_class_texts"] == 2 <= RARE_TEXTS
    assert (cfg.data.class_sampling, cfg.trainer.max_epochs, cfg.trainer.patience,
            cfg.optim.lr) == ("sqrt", RARE_EPOCHS, RARE_PATIENCE, RARE_LR)
    common_rows = _texts(dict.fromkeys(ZIPF, RARE_TEXTS + 1), 3)
    cfg, picked = resolved(_write(d / "even.csv", common_rows))
    assert picked["rarest_class_texts"] == RARE_TEXTS + 1
    assert (cfg.data.class_sampling, cfg.trainer.max_epochs, cfg.optim.lr) == ("none", 5, 0.002)
    cfg, _ = resolved(files["train"], "data.streaming=true")
    assert (cfg.data.class_sampling, cfg.trainer.max_epochs) == ("none", 5)


def test_every_ddp_rank_takes_its_share_of_the_same_draw(monkeypatch):
    """Each rank computes the same weighted plan (same seed and epoch) and takes every
    world-th batch, so the ranks' batches together are the single-process epoch."""
    labels = np.repeat(np.arange(3), COUNTS)
    w = class_sampling_weights(labels, "sqrt")
    lengths = np.arange(len(labels)) % 40 + 1
    single = BucketBatchSampler(lengths, 16, seed=2, weights=w).batches()
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(BucketBatchSampler, "_world", staticmethod(lambda r=rank: (r, 2)))
        shares.append(BucketBatchSampler(lengths, 16, seed=2, weights=w).batches())
    assert len(shares[0]) == len(shares[1])
    assert {tuple(b) for b in shares[0] + shares[1]} == {tuple(b) for b in single}
