"""The bad-input matrix: every mistake a user can make ends in exit code 2 and one sentence
that names the thing and the fix, no traceback, and none of the user's files touched.

Cases run the real CLI entry point in-process (the subprocess path is covered in
test_end_to_end.py); each gets a fresh folder holding the inputs it needs.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY
from textlstm.cli import main

CONFIG = str(ROOT / "configs" / "bbc_news.yaml")


def _csv(path: Path, rows, header=("text", "label")) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _good_rows(n=40):
    words = {"a": "profits shares market bank", "b": "match goal team season"}
    return [(f"{words['ab'[i % 2]]} {i}", "ab"[i % 2]) for i in range(n)]


def _train(d: Path, *extra) -> list[str]:
    return ["train", "--config", CONFIG, f"run_root={d / 'runs'}", f"data.data_dir={d / 'data'}",
            "model.embedding.vectors=null", "wandb.mode=disabled", *TINY, *extra]


def _files(d: Path, train=None, validation=None, test=None) -> list[str]:
    train = train or _csv(d / "train.csv", _good_rows())
    validation = validation or _csv(d / "validation.csv", _good_rows(10))
    test = test or _csv(d / "test.csv", _good_rows(10))
    return [f"data.train_file={train}", f"data.validation_file={validation}",
            f"data.test_file={test}"]


def _copy_run(tiny_run, d: Path) -> Path:
    run = d / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("wandb"))
    return run


class Evil:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(run: Path) -> Path:
    ck = run / "checkpoints" / "best.ckpt"
    torch.save({"state_dict": Evil(run.parent / "pwned")}, ck)
    return ck


# each case: (id, build(d, tiny_run) -> argv, words the message must contain)
CASES = [
    # ---- data files
    ("missing file", lambda d, r: _train(d, f"data.train_file={d / 'nope.csv'}"),
     ["does not exist"]),
    ("empty file", lambda d, r: _train(d, *_files(d, train=_touch(d / "t.csv"))), ["is empty"]),
    ("directory as file", lambda d, r: _train(d, f"data.train_file={_mkdir(d / 'dir.csv')}"),
     ["does not exist"]),
    ("unknown format", lambda d, r: _train(d, *_files(d, train=_write(d / "t.xlsx", "x"))),
     ["xlsx"]),
    ("header only", lambda d, r: _train(d, *_files(d, train=_write(d / "t.csv", "text,label\n"))),
     ["no rows"]),
    ("binary garbage",
     lambda d, r: _train(d, *_files(d, train=_write_bytes(
         d / "t.jsonl", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8))),
     ["not UTF-8"]),
    ("missing text column", lambda d, r: _train(d, *_files(d), "data.text_field=body"),
     ["no column 'body'", "data.text_field"]),
    ("missing label column", lambda d, r: _train(d, *_files(d), "data.label_field=stars"),
     ["no column 'stars'"]),
    ("empty labels",
     lambda d, r: _train(d, *_files(d, train=_csv(d / "t.csv", _good_rows() + [("text", "")]))),
     ["empty label"]),
    ("NaN labels in JSONL",
     lambda d, r: _train(d, *_files(d, train=_jsonl(
         d / "t.jsonl", _good_rows(), [{"text": "x", "label": None}]))),
     ["empty label"]),
    ("single class",
     lambda d, r: _train(d,
                         *_files(d, train=_csv(d / "t.csv", [(f"w {i}", "a") for i in range(30)]))),
     ["only one label"]),
    ("label unseen in train",
     lambda d, r: _train(d, *_files(d, test=_csv(d / "te.csv", _good_rows(10) + [("x", "zzz")]))),
     ["'zzz'", "never occur in train"]),
    ("all texts empty",
     lambda d, r: _train(d,
                         *_files(d,
                                 train=_csv(d / "t.csv",
                                            [("  ", "ab"[i % 2]) for i in range(30)]))),
     ["no text"]),
    ("non-UTF-8 CSV",
     lambda d, r: _train(d, *_files(d, train=_write_bytes(
         d / "t.csv", b"text,label\ncaf\xe9 \xff\xfe,a\n" * 20))),
     ["UTF-8"]),
    ("unknown embedded set", lambda d, r: _train(d, "data.source=imdbb"), ["data.source"]),
    # ---- config
    ("unknown key", lambda d, r: _train(d, "model.encoder.hiden_size=3"),
     ["did you mean 'model.encoder.hidden_size'"]),
    ("unknown section", lambda d, r: _train(d, "optimizer.lr=0.1"), ["optimizer"]),
    ("wrong type", lambda d, r: _train(d, "model.encoder.hidden_size=big"),
     ["model.encoder.hidden_size"]),
    ("negative size", lambda d, r: _train(d, "model.encoder.hidden_size=-4"),
     ["model.encoder.hidden_size"]),
    ("dropout >= 1", lambda d, r: _train(d, "model.embedding.dropout=1.0"),
     ["model.embedding.dropout"]),
    ("bad choice", lambda d, r: _train(d, "model.pooling=median"), ["model.pooling", "median"]),
    ("zero epochs", lambda d, r: _train(d, "trainer.max_epochs=0"), ["trainer.max_epochs"]),
    ("missing config file", lambda d, r: ["train", "--config", str(d / "nope.yaml")],
     ["does not exist"]),
    ("broken YAML",
     lambda d, r: ["train", "--config", str(_write(d / "c.yaml", "model: [unclosed\n"))], ["YAML"]),
    ("YAML not a mapping",
     lambda d, r: ["train", "--config", str(_write(d / "c.yaml", "- a\n- b\n"))], ["mapping"]),
    ("override without value", lambda d, r: _train(d, "model.encoder.hidden_size="),
     ["model.encoder.hidden_size"]),
    ("run_root is a file",
     lambda d, r: _train(d, *_files(d), f"run_root={_write(d / 'afile', 'x')}"), ["run_root"]),
    ("vectors file missing",
     lambda d, r: _train(d, *_files(d), f"model.embedding.vectors={d / 'vec.txt'}"),
     ["does not exist"]),
    ("vectors dim mismatch",
     lambda d, r: _train(d, *_files(d), "model.embedding.vectors=glove-6b-50d",
                         "model.embedding.dim=16"),
     ["model.embedding.dim=50"]),
    ("class weights count", lambda d, r: _train(d, *_files(d), "model.class_weights=[1.0]"),
     ["model.class_weights"]),
    ("resume and config", lambda d, r: ["train", "--config", CONFIG, "--resume", str(r)],
     ["not both"]),
    # ---- checkpoints and run directories
    ("run dir missing", lambda d, r: ["predict", str(d / "nope"), "hi"], ["does not exist"]),
    ("not a run dir", lambda d, r: ["predict", str(_mkdir(d / "empty")), "hi"],
     ["not a run directory"]),
    ("truncated checkpoint", lambda d, r: ["predict", str(_truncate(_copy_run(r, d))), "hi"],
     ["truncated or corrupt"]),
    ("checkpoint with code", lambda d, r: ["predict", str(_evil(_copy_run(r, d))), "hi"],
     ["refused"]),
    ("resume a run whose checkpoint carries code",
     lambda d, r: ["train", "--resume", str(_evil_last(_copy_run(r, d)))], ["refused"]),
    ("vocab.json missing", lambda d, r: ["predict", str(_rm(_copy_run(r, d), "vocab.json")), "hi"],
     ["vocab"]),
    ("labels.json missing",
     lambda d, r: ["predict", str(_rm(_copy_run(r, d), "labels.json")), "hi"], ["labels"]),
    ("labels do not match the model",
     lambda d, r: ["predict", str(_more_labels(_copy_run(r, d))), "hi"],
     ["does not match"]),
    ("vocab.json corrupt",
     lambda d, r: ["predict", str(_corrupt(_copy_run(r, d), "vocab.json")), "hi"], ["vocab"]),
    # ---- predict input
    ("predict: no texts", lambda d, r: ["predict", str(r)], ["needs texts"]),
    ("predict: texts and --input",
     lambda d, r: ["predict", str(r), "hi", "--input", str(_write(d / "i.txt", "x\n"))],
     ["not both"]),
    ("predict: input missing", lambda d, r: ["predict", str(r), "--input", str(d / "nope.txt")],
     ["does not exist"]),
    ("predict: CSV without the column",
     lambda d, r: ["predict", str(r), "--input", str(_csv(d / "i.csv", [("x",)], ("body",)))],
     ["no column 'review'", "data.text_field"]),  # the tiny run was trained on a 'review' column
    ("predict: non-string JSON value",
     lambda d, r: ["predict", str(r), "--input", str(_write(d / "i.jsonl", '{"review": 5}\n'))],
     ["not a string"]),
    ("predict: invalid JSON line",
     lambda d, r: ["predict", str(r), "--input",
                   str(_write(d / "i.jsonl", '{"review": "a"}\n{oops\n'))],
     ["line 2", "not valid JSON"]),
    ("predict: output exists",
     lambda d, r: ["predict", str(r), "hi", "--output", str(_write(d / "o.jsonl", "mine\n"))],
     ["already exists", "--overwrite"]),
    # ---- training
    ("class weights all zero", lambda d, r: _train(d, *_files(d), "model.class_weights=[0,0]"),
     ["model.class_weights"]),
    ("absurd learning rate", lambda d, r: _train(d, "optim.lr=1e38"), ["optim.lr"]),
]


def _touch(p):
    p.write_text("")
    return p


def _write(p, text):
    p.write_text(text, encoding="utf-8")
    return p


def _write_bytes(p, data):
    p.write_bytes(data)
    return p


def _mkdir(p):
    p.mkdir()
    return p


def _jsonl(p, rows, extra=()):
    with open(p, "w", encoding="utf-8") as fh:
        for t, lab in rows:
            fh.write(json.dumps({"text": t, "label": lab}) + "\n")
        for obj in extra:
            fh.write(json.dumps(obj) + "\n")
    return p


def _truncate(run):
    ck = run / "checkpoints" / "best.ckpt"
    ck.write_bytes(ck.read_bytes()[:2000])
    return run


def _evil(run):
    _evil_checkpoint(run)
    return run


def _evil_last(run):
    (run / "metrics.json").unlink()
    torch.save({"state_dict": Evil(run.parent / "pwned")}, run / "checkpoints" / "last.ckpt")
    return run


def _rm(run, name):
    (run / name).unlink()
    return run


def _corrupt(run, name):
    (run / name).write_text("{not json")
    return run


def _more_labels(run):
    labels = json.loads((run / "labels.json").read_text())
    (run / "labels.json").write_text(json.dumps(labels + ["extra"]))
    return run


def _snapshot(d: Path) -> dict[str, str]:
    """Every user file under d with its content hash (the run folders textlstm makes excluded)."""
    out = {}
    for p in d.rglob("*"):
        rel = p.relative_to(d).as_posix()
        if p.is_file() and not rel.startswith(("runs/", "data/")):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("name,build,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, build, words, tiny_run, tmp_path, capsys):
    argv = build(tmp_path, tiny_run)
    before = _snapshot(tmp_path)
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("textlstm: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    assert _snapshot(tmp_path) == before  # nothing of the user's changed or vanished
    assert not (tmp_path / "pwned").exists()  # no code from a checkpoint ran


def test_the_matrix_is_the_size_the_docs_say():
    import re

    # docs/operations.md states the same count
    assert len(CASES) == len({c[0] for c in CASES}) == 49
    docs = (ROOT / "docs" / "operations.md").read_text()
    assert re.search(rf"table of {len(CASES)} such mistakes", docs)


# ---- documented warn-and-continue cases
def _run_dir(d: Path) -> Path:
    runs = [p for p in (d / "runs").glob("*/*") if (p / "metrics.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


def test_long_documents_are_truncated_not_fatal(tmp_path, capsys, monkeypatch):
    import textlstm.batches.datamodule as dm_mod

    rows = _good_rows()
    rows[0] = ("word " * 200_000, "a")  # a 1 MB document
    encoded = {}
    real = dm_mod.encode

    def spy(ds, *args, **kwargs):
        out = real(ds, *args, **kwargs)
        encoded.setdefault("train", out)  # train is encoded first
        return out

    monkeypatch.setattr(dm_mod, "encode", spy)
    code = main([str(a) for a in _train(tmp_path,
                                        *_files(tmp_path, train=_csv(tmp_path / "t.csv", rows)))])
    assert code == 0, capsys.readouterr().err
    lengths = list(encoded["train"]["length"])
    # data.max_length=40 (TINY): the 200,000 words cut to 40
    assert 40 in lengths and max(lengths) == 40
    assert max(len(x) for x in encoded["train"]["ids"]) == 40
    vocab = json.loads((_run_dir(tmp_path) / "vocab.json").read_text())["itos"]
    assert "word" in vocab


def test_huge_vocab_limit_is_fine(tmp_path, capsys):
    from textlstm.tokens.tokenize import tokenize_texts

    code = main([str(a) for a in _train(tmp_path, *_files(tmp_path),
                                        "data.max_vocab_size=1000000000")])
    assert code == 0, capsys.readouterr().err
    # the limit is far above the corpus: every distinct training token is in, nothing else
    distinct = {w for t in tokenize_texts([t for t, _ in _good_rows()]) for w in t}
    vocab = json.loads((_run_dir(tmp_path) / "vocab.json").read_text())["itos"]
    assert (vocab[:2] == ["<pad>", "<unk>"] and set(vocab[2:]) == distinct
            and len(vocab) == len(distinct) + 2)


def test_predict_odd_texts(tiny_run, capsys):
    code = main(["predict", str(tiny_run), "", "   ", "🙂🙂", "x" * 1_000_000, "naïve café 東京"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(out) == 5
    labels = json.loads((tiny_run / "labels.json").read_text())
    assert all(json.loads(x)["label"] in labels for x in out)


def test_nan_loss_stops_training_and_names_the_step(tmp_path, capsys, monkeypatch):
    from torch import nn

    calls = {"n": 0}
    real = nn.CrossEntropyLoss.forward

    def goes_nan(self, logits, target):  # a loss that diverges at the 4th training step
        calls["n"] += 1
        loss = real(self, logits, target)
        return loss * float("nan") if calls["n"] >= 4 and self.training else loss

    monkeypatch.setattr(nn.CrossEntropyLoss, "forward", goes_nan)
    # wandb.mode=disabled for real (conftest's WANDB_MODE=offline would win): otherwise, when this
    # is the first W&B run in the process, wandb's one-time warning lands on stderr too
    monkeypatch.delenv("WANDB_MODE", raising=False)
    argv = [str(a) for a in _train(tmp_path, *_files(tmp_path))]
    before = _snapshot(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "loss became nan at step 3" in err and "optim.lr" in err
    assert _snapshot(tmp_path) == before


def test_empty_training_texts_are_dropped_with_a_warning(tmp_path, capsys, caplog):
    rows = _good_rows() + [("", "a"), ("   \t ", "b")]
    code = main([str(a) for a in _train(tmp_path,
                                        *_files(tmp_path, train=_csv(tmp_path / "t.csv", rows)))])
    assert code == 0, capsys.readouterr().err
    assert "dropped 2 empty or whitespace-only training text(s) of 42" in caplog.text
