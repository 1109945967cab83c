"""DDP on CPU (gloo, 2 processes): training end to end, evaluation equal to 1 process, and the
distributed bucket sampler."""

import json

import numpy as np
import pytest

from tests.conftest import ROOT, TINY, alike, run_cli, same_weights
from textlstm.batches.sampler import BucketBatchSampler

DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
       "trainer.num_threads=1"]


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
    args = [f"data.train_file={small_csvs / 'train.csv'}",
            f"data.validation_file={small_csvs / 'validation.csv'}",
            f"data.test_file={small_csvs / 'test.csv'}", "data.text_field=review",
            "data.label_field=stars",
            f"data.data_dir={tmp_path / 'data'}", f"run_root={tmp_path}",
            "model.embedding.vectors=null",
            "wandb.mode=offline", "name=ddp", *TINY]
    code, out, err = run_cli("train", "--config", ROOT / "configs/bbc_news.yaml", *args, *DDP)
    assert code == 0, err[-3000:]
    runs = list((tmp_path / "ddp").iterdir())
    assert len(runs) == 1  # one run directory, written by rank 0
    run = runs[0]
    assert out.count("run directory:") == 1
    m = json.loads((run / "metrics.json").read_text())
    assert (
        m["train"]["epochs"] == 2
        and sum(map(sum, m["test"]["confusion_matrix"])) == m["data"]["test_size"]
    )
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


@pytest.mark.slow
def test_ddp_run_killed_then_resumed_equals_the_uninterrupted_run(small_csvs, tmp_path):
    """Both ranks killed at once (a preempted job), resumed under DDP: same metrics and weights."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    def args(root):
        return ["train", "--config", str(ROOT / "configs/bbc_news.yaml"),
                f"data.train_file={small_csvs / 'train.csv'}",
                f"data.validation_file={small_csvs / 'validation.csv'}",
                f"data.test_file={small_csvs / 'test.csv'}", "data.text_field=review",
                "data.label_field=stars",
                f"data.data_dir={root / 'data'}", f"run_root={root}",
                "model.embedding.vectors=null",
                "wandb.mode=disabled", "name=ddp", *TINY, "trainer.max_epochs=4",
                "trainer.patience=10", *DDP]

    def comparable(run):
        m = json.loads((run / "metrics.json").read_text())
        m["train"].pop("seconds")
        m["train"].pop("tokens_per_second")
        return m

    code, _, err = run_cli(*args(tmp_path / "base"))
    assert code == 0, err[-3000:]
    base = next((tmp_path / "base" / "ddp").iterdir())

    root = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "textlstm", *args(root)], cwd=ROOT,
                            start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        ckpt = next(iter(root.glob("ddp/*/checkpoints/last.ckpt")), None)
        try:
            if ckpt and torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"] >= 1:
                os.killpg(proc.pid, signal.SIGKILL)  # rank 0 and the rank it started
                break
        except Exception:
            pass  # being renamed into place
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    run = next((root / "ddp").iterdir())
    assert not (run / "metrics.json").exists()

    code, out, err = run_cli("train", "--resume", run)  # the run's config holds the DDP settings
    assert code == 0, err[-3000:]
    assert out.count("run directory:") == 1 and len(list((root / "ddp").iterdir())) == 1
    assert comparable(run) == alike(comparable(base))
    final, ref = (torch.load(r / "checkpoints" / "last.ckpt",
                             weights_only=True)["state_dict"] for r in (run, base))
    assert same_weights(final, ref)


@pytest.mark.slow
def test_ddp_training_from_a_stream(small_csvs, tmp_path):
    """data.streaming=true under DDP: every rank forms the same batches, steps equally often."""
    import random

    head, *rows = (small_csvs / "train.csv").read_text().splitlines(keepends=True)
    random.Random(0).shuffle(rows)
    train = tmp_path / "train.csv"
    train.write_text(head + "".join(rows))
    code, out, err = run_cli("train", "--config", ROOT / "configs/bbc_news.yaml",
                             f"data.train_file={train}",
                             f"data.validation_file={small_csvs / 'validation.csv'}",
                             f"data.test_file={small_csvs / 'test.csv'}", "data.text_field=review",
                             "data.label_field=stars", f"data.data_dir={tmp_path / 'data'}",
                             f"run_root={tmp_path}",
                             "model.embedding.vectors=null", "wandb.mode=disabled", "name=ddp",
                             "data.streaming=true",
                             *TINY, *DDP)
    assert code == 0, err[-3000:]
    run = next((tmp_path / "ddp").iterdir())
    m = json.loads((run / "metrics.json").read_text())
    assert m["data"]["train_size"] == 300 and m["train"]["epochs"] == 2
    import torch

    # 300 rows in batches of 16 = 19 batches an epoch, 10 per rank (one repeated), 2 epochs
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 20
