"""Crash safety with real processes: SIGKILL a training run, resume it, compare with a run
that was never interrupted. Also: the same config and seed twice give the same metrics.json."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY, alike, run_cli, same_weights
from textlstm.training.checkpoints import AtomicCheckpointIO

pytestmark = pytest.mark.slow

TIMINGS = {("train", "seconds"), ("train", "tokens_per_second")}


def _overrides(small_csvs, root: Path, *extra: str) -> list[str]:
    return [
        f"data.train_file={small_csvs / 'train.csv'}",
        f"data.validation_file={small_csvs / 'validation.csv'}",
        f"data.test_file={small_csvs / 'test.csv'}", "data.text_field=review",
        "data.label_field=stars",
        f"data.data_dir={root / 'data'}", f"run_root={root}", "model.embedding.vectors=null",
        *TINY, "trainer.max_epochs=5", "trainer.patience=10", "name=resume", *extra]


def _comparable(run_dir: Path) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    for section, key in TIMINGS:
        m[section].pop(key)
    return m


def _run_dir(root: Path) -> Path:
    dirs = sorted((root / "resume").iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def _start(overrides: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "textlstm", "train", "--config",
                             str(ROOT / "configs/bbc_news.yaml"),
                             *overrides], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _ckpt_epoch(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:
        return None


# a token budget makes the trainer reload the training loader every epoch (its batch count may
# change with the shuffle: training/trainer.py), which a resumed run must replay exactly. These
# texts are all 62-64 tokens, so here the count stays 150; tests/test_learning.py covers counts
# that change
BUDGET = ("data.batch_size=4", "data.max_length=64", "data.max_tokens_per_batch=150")


def _uninterrupted(small_csvs, root: Path, *extra: str) -> Path:
    code, _, err = run_cli("train", "--config", ROOT / "configs/bbc_news.yaml",
                           *_overrides(small_csvs, root, "wandb.mode=disabled", *extra))
    assert code == 0, err
    return _run_dir(root)


@pytest.fixture(scope="module")
def uninterrupted(small_csvs, tmp_path_factory):
    return _uninterrupted(small_csvs, tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def uninterrupted_budget(small_csvs, tmp_path_factory):
    return _uninterrupted(small_csvs, tmp_path_factory.mktemp("budget"), *BUDGET)


# trainer.average_from_epoch: the running average lives in last.ckpt's callback state and must
# come back on resume, or the shipped best.ckpt would average fewer epochs
AVERAGE = ("trainer.average_from_epoch=2",)
# trainer.average_epochs=greedy: the kept epochs' weights ride in last.ckpt the same way
GREEDY = ("trainer.average_from_epoch=2", "trainer.average_epochs=greedy")


@pytest.fixture(scope="module")
def uninterrupted_average(small_csvs, tmp_path_factory):
    return _uninterrupted(small_csvs, tmp_path_factory.mktemp("average"), *AVERAGE)


@pytest.fixture(scope="module")
def uninterrupted_greedy(small_csvs, tmp_path_factory):
    return _uninterrupted(small_csvs, tmp_path_factory.mktemp("greedy"), *GREEDY)


def test_same_config_and_seed_give_the_same_metrics(uninterrupted, small_csvs, tmp_path):
    code, _, err = run_cli("train", "--config", ROOT / "configs/bbc_news.yaml",
                           *_overrides(small_csvs, tmp_path, "wandb.mode=disabled"))
    assert code == 0, err
    assert _comparable(_run_dir(tmp_path)) == alike(_comparable(uninterrupted))


@pytest.mark.parametrize(("kill_after_epoch", "variant"), [(0, ""), (2, ""), (0, "budget"),
                                                           (2, "budget"), (2, "average"),
                                                           (2, "greedy")])
def test_sigkill_at_an_epoch_end_then_resume_equals_the_uninterrupted_run(
    small_csvs, tmp_path, kill_after_epoch, variant, request
):
    extra = {"": (), "budget": BUDGET, "average": AVERAGE, "greedy": GREEDY}[variant]
    uninterrupted = request.getfixturevalue("_".join(filter(None, ("uninterrupted", variant))))
    proc = _start(_overrides(small_csvs, tmp_path, "wandb.mode=offline", *extra))
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        ckpt = next(iter(tmp_path.glob("resume/*/checkpoints/last.ckpt")), None)
        epoch = _ckpt_epoch(ckpt) if ckpt else None
        if (
            epoch is not None and epoch >= kill_after_epoch
        ):  # (epoch 0 is a real epoch, not "none yet")
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        f"the run ended before it was killed: {proc.stderr.read()[-500:]}"
    )
    run = _run_dir(tmp_path)
    assert not (run / "metrics.json").exists()
    resumed_from = _ckpt_epoch(run / "checkpoints" / "last.ckpt")
    # killed right after the epoch asked for (or the one after, if the poll was late), with epochs
    # left
    assert (
        resumed_from is not None and kill_after_epoch <= resumed_from <= kill_after_epoch + 1 < 4
    ), resumed_from
    print("killed; last.ckpt holds epoch", resumed_from)
    wandb_id = (run / "wandb_id").read_text()

    code, out, err = run_cli("train", "--resume", run)
    assert code == 0, err
    assert str(run) in out  # the same folder, not a new one
    assert _run_dir(tmp_path) == run
    assert _comparable(run) == alike(_comparable(uninterrupted))
    # stronger than metrics.json (which comes from the best epoch): the final weights are equal
    for name in ("last.ckpt", "best.ckpt"):  # best.ckpt: the shipped average, with one
        final, base = (torch.load(r / "checkpoints" / name, weights_only=True)["state_dict"]
                       for r in (run, uninterrupted))
        assert same_weights(final, base), name
    assert (run / "wandb_id").read_text() == wandb_id  # the same W&B run continues
    assert {p.name.split("-")[-1] for p in (run / "wandb").glob("offline-run-*")} == {wandb_id}


def _global_step(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:
        return None


MID_EPOCH = ("trainer.checkpoint_every_n_steps=5", "data.batch_size=8")
STEPS_PER_EPOCH = 38  # 300 training rows in batches of 8


def test_sigkill_mid_epoch_resumes_from_the_step_checkpoint(small_csvs, tmp_path):
    from textlstm.core.runfolder import latest_checkpoint

    code, _, err = run_cli("train", "--config", ROOT / "configs/bbc_news.yaml",
                           *_overrides(small_csvs, tmp_path / "base", "wandb.mode=disabled",
                                       *MID_EPOCH))
    assert code == 0, err
    base = _run_dir(tmp_path / "base")
    proc = _start(_overrides(small_csvs, tmp_path / "killed", "wandb.mode=disabled", *MID_EPOCH))
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        run = next(iter((tmp_path / "killed").glob("resume/*")), None)
        newest = latest_checkpoint(run) if run else None
        step = _global_step(newest) if newest else None
        # the newest checkpoint is a step.ckpt in the middle of epoch 1 or later
        if (
            newest
            and newest.name == "step.ckpt"
            and step
            and step > STEPS_PER_EPOCH
            and step % STEPS_PER_EPOCH
        ):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    run = _run_dir(tmp_path / "killed")
    newest = latest_checkpoint(run)
    assert newest.name == "step.ckpt" and _global_step(newest) % STEPS_PER_EPOCH, (
        newest
    )  # resume reads this one
    assert _global_step(newest) > _global_step(run / "checkpoints" / "last.ckpt")
    code, out, err = run_cli("train", "--resume", run)
    assert code == 0, err
    m, b = (json.loads((r / "metrics.json").read_text()) for r in (run, base))
    # the same number of epochs and optimiser steps as the uninterrupted run. Not the same
    # weights: Lightning replays an interrupted epoch's remaining steps from the start of the
    # epoch's batch order (the bucket sampler keeps no position; Lightning warns about it)
    assert m["train"]["epochs"] == b["train"]["epochs"] == 5
    assert (
        _global_step(run / "checkpoints" / "last.ckpt")
        == _global_step(base / "checkpoints" / "last.ckpt")
        == 190
    )
    assert m["data"] == b["data"] and m["test"]["per_class"].keys() == b["test"]["per_class"].keys()
    assert sum(map(sum, m["test"]["confusion_matrix"])) == m["data"]["test_size"]


def test_resume_errors_are_one_clear_sentence(small_csvs, tmp_path, uninterrupted):
    code, _, err = run_cli("train", "--resume", tmp_path / "nope")
    assert code == 2 and "it does not exist" in err and "Traceback" not in err
    (tmp_path / "plain").mkdir()
    code, _, err = run_cli("train", "--resume", tmp_path / "plain")
    assert code == 2 and "not a run directory" in err and "Traceback" not in err
    code, _, err = run_cli("train", "--resume", uninterrupted)
    assert code == 2 and "already finished" in err
    empty = tmp_path / "r"
    (empty / "checkpoints").mkdir(parents=True)
    (empty / "config.yaml").write_text((uninterrupted / "config.yaml").read_text())
    code, _, err = run_cli("train", "--resume", empty)
    assert code == 2 and "no checkpoint yet" in err


def test_a_kill_while_saving_never_leaves_a_torn_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def dies_halfway(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # stands in for the kill

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1  # the previous checkpoint, whole
