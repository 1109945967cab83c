"""DDP on CPU (gloo, 2 processes): training end to end, evaluation equal to 1 process, and the
distributed bucket sampler."""

import json

import numpy as np
import pytest

from tests.conftest import ROOT, TINY, run_cli
from textlstm.data.batching import BucketBatchSampler

DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "trainer.num_threads=1"]


def test_bucket_sampler_shards(monkeypatch):
    lengths = np.random.default_rng(0).integers(1, 50, size=333)
    shards = {}
    for rank in (0, 1):
        for train in (True, False):
            s = BucketBatchSampler(lengths, 16, shuffle=train, seed=5)
            monkeypatch.setattr(BucketBatchSampler, "_world", staticmethod(lambda r=rank: (r, 2)))
            shards[rank, train] = list(s)
            assert len(s) == len(shards[rank, train])
    # training: the same number of batches on both ranks (DDP steps together)
    assert len(shards[0, True]) == len(shards[1, True])
    # evaluation: disjoint shards that together hold every text exactly once
    seen = [i for r in (0, 1) for b in shards[r, False] for i in b]
    assert sorted(seen) == list(range(333))


@pytest.mark.slow
def test_ddp_training_and_evaluation_match_one_process(small_csvs, tmp_path):
    args = [f"data.train_file={small_csvs / 'train.csv'}", f"data.validation_file={small_csvs / 'validation.csv'}",
            f"data.test_file={small_csvs / 'test.csv'}", "data.text_field=review", "data.label_field=stars",
            f"data.data_dir={tmp_path / 'data'}", f"run_root={tmp_path}", "model.embedding.vectors=null",
            "wandb.mode=offline", "name=ddp", *TINY]
    code, out, err = run_cli("train", "--config", ROOT / "configs/bbc_news.yaml", *args, *DDP)
    assert code == 0, err[-3000:]
    runs = list((tmp_path / "ddp").iterdir())
    assert len(runs) == 1  # one run directory, written by rank 0
    run = runs[0]
    assert out.count("run directory:") == 1
    m = json.loads((run / "metrics.json").read_text())
    assert m["train"]["epochs"] == 2 and sum(map(sum, m["test"]["confusion_matrix"])) == m["data"]["test_size"]
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1  # one W&B run

    code1, out1, err1 = run_cli("evaluate", run, "trainer.accelerator=cpu", "trainer.devices=1")
    code2, out2, err2 = run_cli("evaluate", run, *DDP)
    assert code1 == 0 and code2 == 0, (err1[-2000:], err2[-2000:])
    one, two = json.loads(out1), json.loads(out2.strip().splitlines()[-1])
    assert out2.strip().count("\n") == 0  # printed once
    assert one["confusion_matrix"] == two["confusion_matrix"]  # every test text counted once
    assert one["accuracy"] == pytest.approx(two["accuracy"], abs=1e-7)
    assert one["f1_macro"] == pytest.approx(two["f1_macro"], abs=1e-7)
    assert one["loss"] == pytest.approx(two["loss"], abs=1e-5)
