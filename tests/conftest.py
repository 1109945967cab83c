"""Shared fixtures: tiny real data (a slice of the embedded BBC set) and a trained tiny run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None):
    """The real `textlstm` command in a subprocess: exit code, stdout, stderr."""
    p = subprocess.run([sys.executable, "-m", "textlstm", *map(str, args)],
                       capture_output=True, text=True,
                       cwd=cwd or ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return p.returncode, p.stdout, p.stderr


# Two processes that run the same float work do not always agree to the last bit: MKL and
# oneDNN promise bitwise-equal sums only under Intel's "conditional numerical reproducibility"
# (same code path, alignment and thread split), and a resume test once failed in CI on a 2e-7
# difference in one loss while every count, label and F1 agreed. Tests that compare runs made
# by different processes therefore require counts and strings to be equal and floats to agree
# to RUN_REL. What they guard against (a lost generator state, a forgotten average, another
# batch order) still fails them: scripts/mutants.py -k resume.
RUN_REL = 1e-5


def alike(value):
    """`value` with every float wrapped in pytest.approx(rel=RUN_REL), for `==` with a run's
    numbers (metrics.json dicts and lists nest, which pytest.approx alone does not take)."""
    if isinstance(value, dict):
        return {k: alike(v) for k, v in value.items()}
    if isinstance(value, list):
        return [alike(v) for v in value]
    if isinstance(value, float):
        return pytest.approx(value, rel=RUN_REL, abs=1e-7)
    return value


def same_weights(a: dict, b: dict) -> bool:
    """Two state dicts hold the same parameters, up to last-bit noise: rtol 10 x RUN_REL, as
    the final weights carry every step's rounding while metrics.json's floats are sums over
    many texts."""
    import torch

    return a.keys() == b.keys() and all(
        torch.allclose(a[k].double(), b[k].double(), rtol=RUN_REL * 10, atol=1e-6)
        if a[k].is_floating_point() else torch.equal(a[k], b[k]) for k in b)


@pytest.fixture(scope="session")
def bbc_dir():
    from textlstm.data.sources import prepare_embedded

    return prepare_embedded("bbc_news", ROOT / "data")


@pytest.fixture(scope="session")
def small_csvs(tmp_path_factory, bbc_dir):
    """train/validation/test CSVs with custom column names, cut from real BBC articles."""
    import json

    d = tmp_path_factory.mktemp("csv")
    for split, n in (("train", 300), ("validation", 60), ("test", 60)):
        lines = (bbc_dir / f"{split}.jsonl").read_text().splitlines()
        rows = [json.loads(x) for x in lines[:: max(1, len(lines) // n)][:n]]
        with open(d / f"{split}.csv", "w", newline="") as fh:
            import csv

            w = csv.writer(fh)
            w.writerow(["review", "stars"])
            for r in rows:
                w.writerow([" ".join(r["text"].split()[:60]), r["label"]])
    return d


TINY = [
    "model.embedding.dim=16", "model.encoder.hidden_size=16", "data.max_length=40",
    "data.min_freq=1",
    "trainer.max_epochs=2", "trainer.progress_bar=false", "data.batch_size=16",
]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, small_csvs):
    """A real training run (Trainer, wandb offline) on the CSV slice; returns its run dir."""
    from textlstm.commands.train import train
    from textlstm.core.config import load_config

    root = tmp_path_factory.mktemp("runs")
    cfg = load_config(ROOT / "configs" / "bbc_news.yaml", [
        f"data.train_file={small_csvs / 'train.csv'}",
        f"data.validation_file={small_csvs / 'validation.csv'}",
        f"data.test_file={small_csvs / 'test.csv'}", "data.text_field=review",
        "data.label_field=stars",
        f"data.data_dir={root / 'data'}", f"run_root={root}", "model.embedding.vectors=null",
        "wandb.mode=offline", *TINY,
        "optim.lr=0.02"])  # lr: so that 2 epochs beat chance (test_learning)
    return train(cfg)
