"""`textlstm pretrain` and `model.init_from`: a bidirectional language model on the training
(+ unlabelled) texts learns the text's regularities without peeking, and its word vectors and
encoder start a classifier. Real spaCy tokenization and real Lightning runs on tiny corpora."""

import csv
import json
import random

import pytest
import torch
from conftest import run_cli

from textlstm.core.config import load_config

ANIMALS = ["cat", "dog", "fox", "owl"]
THINGS = ["mat", "rug", "box", "bed", "sofa", "chair"]
RANDOM_WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
TINY = ["model.embedding.dim=16", "model.encoder.hidden_size=24", "model.embedding.vectors=null",
        "model.embedding.dropout=0.0", "data.min_freq=1", "data.batch_size=16",
        "trainer.progress_bar=false", "wandb.mode=disabled", "trainer.num_threads=2",
        "pretrain.bptt=16", "pretrain.batch_size=16", "pretrain.lr=0.01",
        "pretrain.holdout_fraction=0.1"]


def _template(rng: random.Random) -> tuple[str, str]:
    a, t, u = rng.choice(ANIMALS), rng.choice(THINGS), rng.choice(THINGS)
    return f"the {a} sat on the {t} and then looked at the {u} .", a


def _random_words(rng: random.Random) -> tuple[str, str]:
    return " ".join(rng.choice(RANDOM_WORDS) for _ in range(12)), rng.choice("ab")


def _corpus(folder, make, n=240, seed=0, name="train"):
    """train/validation/test CSVs (text,label) of `make`'s texts; returns the overrides."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, size in ((name, n), ("validation", 40), ("test", 40)):
        with open(folder / f"{split}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "label"])
            w.writerows(make(rng) for _ in range(size))
    return [f"data.train_file={folder / f'{name}.csv'}",
            f"data.validation_file={folder / 'validation.csv'}",
            f"data.test_file={folder / 'test.csv'}", f"data.data_dir={folder / 'data'}"]


def _pretrain(tmp_path, data, *extra):
    from textlstm.commands.pretrain import pretrain

    cfg = load_config(None, [*data, *TINY, f"run_root={tmp_path / 'runs'}", "name=lm", *extra])
    run = pretrain(cfg)
    return run, json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A language model pretrained on the repetitive corpus plus 60 unlabelled texts (.txt)."""
    tmp = tmp_path_factory.mktemp("pretrain")
    data = _corpus(tmp / "data", _template)
    rng = random.Random(7)
    (tmp / "unlabeled.txt").write_text("\n".join(_template(rng)[0] for _ in range(60)) + "\n")
    return _pretrain(tmp, data, "pretrain.epochs=8", f"data.unlabeled_file={tmp / 'unlabeled.txt'}")


def test_pretraining_brings_held_out_perplexity_well_below_the_unigram(lm_run):
    run, m = lm_run
    assert (run / "lm.ckpt").is_file() and (run / "vocab.json").is_file()
    assert (run / "config.yaml").is_file() and run.parent.name == "lm-pretrain"
    d = m["data"]
    # the training split only (less the held-out slice), plus every unlabelled text
    assert d["train_texts"] + d["held_out_texts"] == 240 and d["held_out_texts"] == 24
    assert d["unlabeled_texts"] == 60
    assert len(m["epochs"]) == 8 and all(e["perplexity"] > 1 for e in m["epochs"])
    assert m["perplexity"] == min(e["perplexity"] for e in m["epochs"])
    assert m["train"]["seconds_per_epoch"] > 0 and m["train"]["tokens_per_second"] > 0
    # the slots (animal, thing) are random, the rest is fixed: a model of context gets far
    # below the word frequencies alone
    assert m["unigram_perplexity"] > 6
    assert m["perplexity"] < 0.5 * m["unigram_perplexity"], m
    assert m["epochs"][-1]["forward"] < 0.6 * m["unigram_perplexity"]
    assert m["epochs"][-1]["backward"] < 0.6 * m["unigram_perplexity"]


def test_on_random_words_neither_direction_beats_the_unigram(tmp_path):
    """Words drawn at random: no context helps, so a direction that reads the token it predicts
    (the backward half aimed at the next token, say) would show as a perplexity near 1."""
    data = _corpus(tmp_path / "data", _random_words, n=200)
    _, m = _pretrain(tmp_path, data, "pretrain.epochs=10")
    last = m["epochs"][-1]
    assert last["forward"] > 0.85 * m["unigram_perplexity"], m
    assert last["backward"] > 0.85 * m["unigram_perplexity"], m


def test_init_from_copies_the_word_vectors_and_the_encoder(lm_run, tmp_path):
    from textlstm.batches import make_datamodule
    from textlstm.commands.train import train
    from textlstm.core.runfolder import read_lm, read_metrics
    from textlstm.tokens.vocab import Vocab
    from textlstm.training.build import build_model

    run, _ = lm_run
    _, state = read_lm(run)
    lm_vocab = Vocab.load(run / "vocab.json")
    # another training file, other word frequencies: the same tokens sit at other ids
    data = _corpus(tmp_path / "data", _template, n=120, seed=3)
    with open(tmp_path / "data" / "train.csv", "a", newline="") as fh:
        csv.writer(fh).writerows([["zebra zebra zebra sat sat on on on", "cat"]] * 30)
    cfg = load_config(None, [*data, *TINY, f"run_root={tmp_path / 'runs'}",
                             f"model.init_from={run}", "trainer.max_epochs=1"])
    dm = make_datamodule(cfg.data, seed=cfg.seed)
    dm.prepare_data()
    dm.setup()
    net = build_model(cfg, dm).net
    shared = [t for t in dm.vocab.itos[1:] if t in lm_vocab]
    assert "zebra" not in lm_vocab and len(shared) == len(dm.vocab) - 2
    assert [dm.vocab.stoi[t] for t in shared] != [lm_vocab.stoi[t] for t in shared]
    for t in shared:
        assert torch.equal(net.embedding.weight[dm.vocab.stoi[t]],
                           state["embedding.weight"][lm_vocab.stoi[t]]), t
    assert not torch.equal(net.embedding.weight[dm.vocab.stoi["zebra"]][:4],
                           torch.zeros(4))  # a word the LM lacks keeps its own init
    for k, v in net.encoder.state_dict().items():
        assert torch.equal(v, state[f"encoder.{k}"]), k

    trained = train(cfg)
    init = read_metrics(trained)["init_from"]
    assert init == {"from": str(run), "embedding_rows": len(shared),
                    "vocab_size": len(dm.vocab), "encoder": True}
    assert f"init_from: {run}" in (trained / "config.yaml").read_text()


def test_a_missing_unlabeled_file_ends_in_one_line(tmp_path):
    data = _corpus(tmp_path / "data", _template, n=40)
    code, out, err = run_cli("pretrain", *data, *TINY, f"run_root={tmp_path / 'runs'}",
                             f"data.unlabeled_file={tmp_path / 'nope.txt'}")
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "data.unlabeled_file" in err and "nope.txt" in err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_an_encoder_of_another_shape_ends_in_one_line(lm_run, tmp_path):
    run, _ = lm_run
    data = _corpus(tmp_path / "data", _template, n=40)
    code, out, err = run_cli("train", *data, *TINY, f"run_root={tmp_path / 'runs'}",
                             f"model.init_from={run}", "model.encoder.hidden_size=8")
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert "24 units" in err and "8 units" in err and "model.encoder" in err
