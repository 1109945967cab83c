"""The classifier learns: a few hundred synthetic texts whose words decide the label, trained
with the real Lightning Trainer through `train()`, reach high test accuracy in seconds. This is
also the run with W&B switched off (wandb.mode=disabled, WANDB_MODE unset): no wandb/ folder,
but report.html still written."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, TINY

LABELS = {"sport": "goal match team coach league striker",
          "money": "bank shares profit market stock bond",
          "music": "band album guitar song concert singer"}
NOISE = "the a of and to in it was on for with said".split()


def synthetic_texts(n: int, seed: int) -> list[tuple[str, str]]:
    """n texts of 6-14 words: 2-4 words from the label's own set, the rest shared noise."""
    rng = np.random.default_rng(seed)
    names = sorted(LABELS)
    rows = []
    for i in range(n):
        label = names[i % len(names)]
        own = LABELS[label].split()
        words = list(rng.choice(own, size=int(rng.integers(2, 5)))) + list(
            rng.choice(NOISE, size=int(rng.integers(4, 11)))
        )
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """One run on 300/60/60 synthetic texts, W&B disabled by the config alone."""
    from textlstm.commands.train import train
    from textlstm.core.config import load_config
    from textlstm.training.checkpoints import AtomicCheckpointIO

    mp = pytest.MonkeyPatch()
    mp.delenv("WANDB_MODE",
              raising=False)  # conftest's WANDB_MODE=offline would win over the config
    saved = []  # every checkpoint train() writes goes through the atomic writer
    real_save = AtomicCheckpointIO.save_checkpoint
    mp.setattr(AtomicCheckpointIO, "save_checkpoint",
               lambda self, ckpt, path, *a,
               **k: saved.append(Path(path).name) or real_save(self, ckpt, path, *a, **k))
    d = tmp_path_factory.mktemp("learn")
    files = {s: write_csv(d / f"{s}.csv", synthetic_texts(n, seed)) for s, n, seed in
             (("train", 300, 0), ("validation", 60, 1), ("test", 60, 2))}
    cfg = load_config(ROOT / "configs" / "bbc_news.yaml", [
        *(f"data.{s}_file={p}" for s, p in files.items()), f"data.data_dir={d / 'data'}",
        f"run_root={d / 'runs'}",
        "model.embedding.vectors=null", "wandb.mode=disabled", *TINY, "trainer.max_epochs=4",
        "optim.lr=0.01",
        "trainer.patience=10"])
    try:
        run = train(cfg)
    finally:
        mp.undo()
    return run, saved


def test_words_that_decide_the_label_are_learned(learned):
    learned, _ = learned
    m = json.loads((learned / "metrics.json").read_text())
    assert m["test"]["accuracy"] >= 0.9, m["test"]
    assert m["validation"]["accuracy"] >= 0.9, m["validation"]


def test_without_wandb_no_wandb_folder_but_a_report(learned):
    learned, _ = learned
    assert not (learned / "wandb").exists() and not (learned / "wandb_id").exists()
    page = (learned / "report.html").read_text()
    m = json.loads((learned / "metrics.json").read_text())
    for split in ("validation", "test"):  # the results table shows this run's numbers
        assert f"<td class=\"l\">{split}</td><td>{m[split]['accuracy']:.4f}</td>" in page, split
    assert (learned / "errors.json").is_file()


def test_the_tiny_bbc_run_beats_chance(tiny_run):
    m = json.loads((tiny_run / "metrics.json").read_text())
    chance = 1 / len(m["data"]["labels"])  # five balanced topics
    assert m["test"]["accuracy"] >= 1.75 * chance, m["test"][
        "accuracy"
    ]  # 0.45 measured; shuffled labels: ~0.2


def test_train_writes_its_checkpoints_through_the_atomic_writer(learned):
    run, saved = learned
    assert {"best.ckpt",
            "last.ckpt"} <= set(saved) and saved.count("last.ckpt") == 4  # one per epoch
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
    ]  # no .tmp left


def test_the_best_checkpoint_is_the_epoch_with_the_highest_validation_f1(learned):
    run, _ = learned
    m = json.loads((run / "metrics.json").read_text())
    with open(run / "logs" / "metrics.csv") as fh:
        f1 = [float(r["val/f1_macro"]) for r in csv.DictReader(fh) if r.get("val/f1_macro")]
    # one row per epoch, then the final validation of the best checkpoint
    epochs, final = f1[:-1], f1[-1]
    assert len(epochs) == m["train"]["epochs"] == 4
    assert (
        m["train"]["best_epoch"] == epochs.index(max(epochs)) + 1
    )  # the first epoch reaching the maximum
    assert m["validation"]["f1_macro"] == pytest.approx(max(epochs), abs=1e-6) == final


@pytest.fixture(scope="module")
def averaged(tmp_path_factory):
    """The synthetic run again, with an exponential moving average of the weights."""
    return _synthetic_run(tmp_path_factory.mktemp("ema"), "trainer.max_epochs=3",
                          "trainer.ema_decay=0.7")


def test_ema_validates_tests_and_ships_the_averaged_weights(averaged):
    import torch

    from textlstm.commands.evaluate import evaluate

    m = json.loads((averaged / "metrics.json").read_text())
    ckpt = torch.load(averaged / "checkpoints" / "best.ckpt", map_location="cpu",
                      weights_only=True)
    shipped, raw = ckpt["state_dict"], ckpt["current_model_state"]  # raw: for --resume
    assert any(not torch.equal(shipped[k], raw[k]) for k in shipped)
    # the test split was scored with the weights a user loads from the run (the average)
    again = evaluate(averaged)
    for k in ("accuracy", "f1_macro"):
        assert again[k] == pytest.approx(m["test"][k], abs=1e-6), k
    with open(averaged / "logs" / "metrics.csv") as fh:
        f1 = [float(r["val/f1_macro"]) for r in csv.DictReader(fh) if r.get("val/f1_macro")]
    # the epochs' validation (early stopping, best.ckpt) saw the same average
    assert m["validation"]["f1_macro"] == pytest.approx(max(f1[:-1]), abs=1e-6) == f1[-1]


def _synthetic_run(d, *extra):
    from textlstm.commands.train import train
    from textlstm.core.config import load_config

    d.mkdir(parents=True, exist_ok=True)
    files = {s: write_csv(d / f"{s}.csv", synthetic_texts(n, seed)) for s, n, seed in
             (("train", 300, 0), ("validation", 60, 1), ("test", 60, 2))}
    cfg = load_config(ROOT / "configs" / "bbc_news.yaml", [
        *(f"data.{s}_file={p}" for s, p in files.items()), f"data.data_dir={d / 'data'}",
        f"run_root={d / 'runs'}", "model.embedding.vectors=null", "wandb.mode=disabled", *TINY,
        "optim.lr=0.01", "trainer.patience=10", *extra])
    return train(cfg)


def test_average_from_epoch_ships_and_tests_the_mean_of_the_late_epochs(tmp_path):
    import torch

    from textlstm.commands.evaluate import evaluate

    # no schedule, so the 2-epoch run is the first two epochs of the 3-epoch one
    fixed = ("optim.scheduler=none", "trainer.average_from_epoch=2")
    run = _synthetic_run(tmp_path / "three", "trainer.max_epochs=3", *fixed)
    two = _synthetic_run(tmp_path / "two", "trainer.max_epochs=2", *fixed)
    m = json.loads((run / "metrics.json").read_text())
    assert m["train"]["averaged_epochs"] == [2, 3]
    assert 1 <= m["train"]["best_epoch"] <= 3  # the best validated epoch, still reported

    def weights(r, name):
        return torch.load(r / "checkpoints" / name, map_location="cpu",
                          weights_only=True)["state_dict"]

    shipped, w3 = weights(run, "best.ckpt"), weights(run, "last.ckpt")  # last: raw weights
    w2 = weights(two, "last.ckpt")
    assert shipped.keys() == w3.keys()
    for k in shipped:
        assert torch.allclose(shipped[k], (w2[k] + w3[k]) / 2, atol=1e-6), k
    assert any(not torch.equal(shipped[k], w3[k]) for k in shipped)
    # the test split was scored with what a user loads from the run: the average
    again = evaluate(run)
    for k in ("accuracy", "f1_macro"):
        assert again[k] == pytest.approx(m["test"][k], abs=1e-6), k


def test_a_greedy_soup_adds_epochs_best_first_and_only_while_validation_does_not_fall(
        monkeypatch):
    """The rule itself, with a stand-in for the validation pass: a "net" whose one weight is w
    scores 1 - |w - 2| / 10, so an epoch pulls the average towards 2 or away from it."""
    import torch
    from torch import nn

    from textlstm.training import trainer as T

    def f1(w):
        return 1 - abs(w - 2.0) / 10

    soup = T.GreedySoup(start=2)
    # epoch: (weight, validation loss); 3 and 4 tie on score (0.9), 4 has the lower loss
    for e, (w, loss) in {2: (9.0, 1.0), 3: (1.0, 0.6), 4: (3.0, 0.5), 5: (2.6, 0.4),
                         6: (-6.0, 1.0)}.items():
        soup.epochs[e] = {"f1": f1(w), "loss": loss,
                          "state": {"weight": torch.tensor([[w]]), "steps": torch.tensor(e)}}
    tried = []

    def score(trainer, model, state):
        tried.append(round(float(state["weight"]), 4))
        return f1(float(state["weight"]))

    monkeypatch.setattr(T, "validation_f1", score)
    model = type("M", (), {"net": nn.Linear(1, 1, bias=False)})()
    model.net.register_buffer("steps", torch.tensor(0))
    epochs, best = soup.cook(None, model)
    # 5 first (0.94); + 4 (the tie's lower loss): mean 2.8 scores 0.92, left out; + 3: mean 1.8
    # scores 0.98, joins; + 2 (0.3) and + 6 (0.2) pull the mean to 4.2 and -0.8, left out
    assert tried == [2.8, 1.8, 4.2, -0.8]
    assert epochs == [5, 3] and best == pytest.approx(0.98)
    assert float(model.net.weight.detach()) == pytest.approx(1.8)
    assert int(model.net.steps) == 3  # an integer buffer comes from the last, not a mean


def test_greedy_soup_ships_the_mean_of_the_epochs_it_kept(tmp_path):
    import torch

    run = _synthetic_run(tmp_path / "soup", "optim.scheduler=none", "trainer.max_epochs=4",
                         "trainer.average_from_epoch=2", "trainer.average_epochs=greedy")
    m = json.loads((run / "metrics.json").read_text())
    ckpt = {n: torch.load(run / "checkpoints" / n, map_location="cpu", weights_only=False)
            for n in ("best.ckpt", "last.ckpt")}
    kept = ckpt["last.ckpt"]["callbacks"]["GreedySoup"]["epochs"]
    assert sorted(kept) == [2, 3, 4]  # every epoch from average_from_epoch, for --resume
    assert not ckpt["best.ckpt"]["callbacks"]["GreedySoup"]["epochs"]  # not shipped
    soup = m["train"]["soup_epochs"]
    assert soup, m["train"]  # this data: the late epochs tie on validation, so they average
    assert m["train"]["averaged_epochs"] == [min(soup), max(soup)]
    assert soup[0] == max(kept, key=lambda e: (kept[e]["f1"], -kept[e]["loss"], e))
    shipped = ckpt["best.ckpt"]["state_dict"]
    for k, v in kept[soup[0]]["state"].items():
        if v.is_floating_point():
            mean = torch.stack([kept[e]["state"][k] for e in soup]).mean(0)
            assert torch.allclose(shipped["net." + k], mean, atol=1e-6), k
    # the shipped soup scores no lower on validation than any epoch did
    assert m["validation"]["f1_macro"] >= max(v["f1"] for v in kept.values()) - 1e-6


def test_a_greedy_soup_needs_a_first_epoch():
    from textlstm.core.config import load_config
    from textlstm.core.errors import UserError

    with pytest.raises(UserError, match=r"trainer\.average_epochs.*trainer\.average_from_epoch"):
        load_config(None, ["trainer.average_epochs=greedy"])
    # the recipe's soup turned off: the error names the second key to set
    with pytest.raises(UserError, match=r"average_epochs=all as well"):
        load_config(Path(__file__).parents[1] / "configs" / "auto.yaml",
                    ["trainer.average_from_epoch=null"])
    cfg = load_config(Path(__file__).parents[1] / "configs" / "auto.yaml",
                      ["trainer.average_from_epoch=null", "trainer.average_epochs=all"])
    assert cfg.trainer.average_from_epoch is None
    with pytest.raises(UserError, match=r"trainer\.average_epochs.*all or greedy"):
        load_config(None, ["trainer.average_epochs=best", "trainer.average_from_epoch=2"])


def test_average_and_ema_together_are_refused():
    from textlstm.core.config import load_config
    from textlstm.core.errors import UserError

    with pytest.raises(UserError, match=r"trainer\.average_from_epoch.*trainer\.ema_decay"):
        load_config(None, ["trainer.average_from_epoch=3", "trainer.ema_decay=0.9"])


def test_every_epoch_is_validated_when_a_token_budget_changes_the_batch_count(tmp_path):
    """With data.max_tokens_per_batch the count of batches changes with each epoch's shuffle.
    Lightning counted them once, so an epoch shorter than the first was never validated and
    early stopping took it for an epoch without improvement (BBC recipe runs: 119 or 120)."""
    from textlstm.batches.datamodule import TextDataModule
    from textlstm.commands.train import train
    from textlstm.core.config import load_config

    files = {s: write_csv(tmp_path / f"{s}.csv", synthetic_texts(n, seed)) for s, n, seed in
             (("train", 300, 0), ("validation", 60, 1), ("test", 60, 2))}
    base = [*(f"data.{s}_file={p}" for s, p in files.items()),
            f"data.data_dir={tmp_path / 'data'}", f"run_root={tmp_path / 'runs'}",
            "model.embedding.vectors=null", "wandb.mode=disabled", *TINY,
            "trainer.max_epochs=3", "trainer.patience=10",
            # buckets of 50 batches: 200 texts, so the shuffle decides what is packed together
            "data.batch_size=4", "data.max_length=16", "data.max_tokens_per_batch=30"]

    def counts(seed: int) -> list[int]:
        cfg = load_config(ROOT / "configs" / "bbc_news.yaml", [*base, f"seed={seed}"])
        dm = TextDataModule(cfg.data, seed=seed)
        dm.setup()
        sampler = dm.loader("train").batch_sampler
        out = []
        for epoch in range(3):
            sampler.set_epoch(epoch)
            out.append(len(sampler))
        return out

    # a seed whose first epoch has more batches than a later one (the case that went wrong)
    seed, per_epoch = next((s, c) for s in range(100) if (c := counts(s))[0] > min(c[1:]))
    run = train(load_config(ROOT / "configs" / "bbc_news.yaml", [*base, f"seed={seed}"]))
    with open(run / "logs" / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("val/f1_macro")]
    # one validation at the end of each epoch, after exactly that epoch's batches, then the
    # final validation of the best checkpoint
    ends = [int(r["step"]) + 1 for r in rows[:-1]]
    assert ends == list(np.cumsum(per_epoch)), (per_epoch, ends)
