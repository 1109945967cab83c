"""Multi-label classification (task=multilabel) end to end.

The data set is synthetic with a learnable rule per label: a text is `sport` iff it holds one
of the sport words, `money` iff one of the money words, `tech` iff one of the tech words; a
text has any number of labels, none included. One real `textlstm train` run (subprocess, W&B
offline) is checked against a direct numpy computation on its own predictions.
"""

import csv
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

import textlstm
from tests.conftest import ROOT, run_cli
from textlstm.cli import main
from textlstm.core.errors import UserError

RULES = {"sport": ["match", "goal", "team", "striker"], "money": ["shares", "bank", "profit",
                                                                  "market"],
         "tech": ["phone", "software", "chip", "laptop"]}
LABELS = sorted(RULES)
FILLER = ("the a of and to in on with was is for it at by from this that they we you said new "
          "day week year people time way city house car road water food music book film").split()


def _rows(n: int, seed: int) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choices(FILLER, k=rng.randint(4, 9))
        labels = [lab for lab in LABELS if rng.random() < 0.35]
        for lab in labels:
            for w in rng.sample(RULES[lab], rng.randint(1, 2)):
                words.insert(rng.randrange(len(words) + 1), w)
        out.append((" ".join(words), labels))
    return out


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps({"text": t, "tags": labs}) + "\n" for t, labs in rows))
    return path


def _csv(path: Path, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "tags"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def ml_files(tmp_path_factory):
    """train as JSON Lines with label lists; validation and test as CSV with `a|b` strings."""
    d = tmp_path_factory.mktemp("ml")
    _jsonl(d / "train.jsonl", _rows(400, 1))
    for split, seed in (("validation", 2), ("test", 3)):
        _csv(d / f"{split}.csv", [(t, "|".join(labs)) for t, labs in _rows(100, seed)])
    return d


def _ml_args(d: Path, files: Path, **more) -> list[str]:
    return ["train", "--config", str(ROOT / "configs" / "base.yaml"), "task=multilabel",
            f"data.train_file={files / 'train.jsonl'}",
            f"data.validation_file={files / 'validation.csv'}",
            f"data.test_file={files / 'test.csv'}", "data.label_field=tags",
            f"data.data_dir={d / 'data'}",
            f"run_root={d / 'runs'}", "model.embedding.dim=16", "model.encoder.hidden_size=16",
            "data.max_length=40", "data.min_freq=1", "data.batch_size=16", "trainer.max_epochs=6",
            "trainer.progress_bar=false", "optim.lr=0.03", *[f"{k}={v}" for k, v in more.items()]]


@pytest.fixture(scope="module")
def ml_run(ml_files, tmp_path_factory):
    d = tmp_path_factory.mktemp("mlrun")
    code, out, err = run_cli(*_ml_args(d, ml_files, **{"wandb.mode": "offline"}))
    assert code == 0, err
    assert "skipped" not in err, err  # every figure, table and report item was made
    return Path(out.split("run directory: ", 1)[1].splitlines()[0])


def _read_test(files: Path) -> tuple[list[str], np.ndarray]:
    with open(files / "test.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    y = np.array([[lab in r["tags"].split("|") for lab in LABELS] for r in rows], dtype=int)
    return [r["text"] for r in rows], y


def _auroc(scores: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney: the chance a positive outscores a negative (ties count half)."""
    pos, neg = scores[y == 1], scores[y == 0]
    return float(((pos[:, None] > neg).sum() + 0.5 * (pos[:, None] == neg).sum())
                 / (len(pos) * len(neg)))


def test_the_run_learns_the_rules_and_its_metrics_equal_a_direct_computation(ml_run, ml_files):
    m = json.loads((ml_run / "metrics.json").read_text())
    assert m["task"] == "multilabel" and m["data"]["labels"] == LABELS
    assert json.loads((ml_run / "labels.json").read_text()) == LABELS
    t = m["test"]
    assert set(t) == {"f1_micro", "f1_macro", "f1_samples", "hamming_loss", "subset_accuracy",
                      "per_label", "loss"}
    assert set(m["validation"]) >= {"f1_macro", "f1_macro_tuned", "loss"}
    assert m["calibration"] == {"method": "none", "temperature": 1.0}
    assert t["f1_micro"] > 0.85 and t["subset_accuracy"] > 0.7  # the rules were learned

    texts, y = _read_test(ml_files)
    probs = textlstm.load(ml_run).predict_proba(texts).numpy()  # (N, C) sigmoid probabilities
    thr = np.array([m["thresholds"][lab] for lab in LABELS])
    p = (probs >= thr).astype(int)
    tp, fp, fn = (p & y).sum(0), (p & (1 - y)).sum(0), ((1 - p) & y).sum(0)
    f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    row_tp, row_wrong = (p & y).sum(1), (p != y).sum(1)
    row_f1 = np.where(row_tp + row_wrong == 0, 1.0,
                      2 * row_tp / np.maximum(2 * row_tp + row_wrong, 1))
    direct = {
        "f1_micro": 2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()),
        "f1_macro": f1.mean(),
        "f1_samples": row_f1.mean(),
        "hamming_loss": (p != y).mean(),
        "subset_accuracy": (p == y).all(1).mean(),
        "loss": -np.mean(y * np.log(probs) + (1 - y) * np.log(1 - probs)),
    }
    for k, v in direct.items():
        assert t[k] == pytest.approx(v, abs=1e-4), k
    for i, lab in enumerate(LABELS):
        r = t["per_label"][lab]
        assert r["support"] == y[:, i].sum()
        assert r["precision"] == pytest.approx(tp[i] / max(1, tp[i] + fp[i]), abs=1e-4)
        assert r["recall"] == pytest.approx(tp[i] / max(1, tp[i] + fn[i]), abs=1e-4)
        assert r["f1"] == pytest.approx(f1[i], abs=1e-4)
        assert r["auroc"] == pytest.approx(_auroc(probs[:, i], y[:, i]), abs=1e-4)


def test_thresholds_are_saved_with_the_run_and_every_reader_uses_them(ml_run, ml_files, tmp_path):
    from textlstm.training.multilabel import CANDIDATES

    m = json.loads((ml_run / "metrics.json").read_text())
    assert list(m["thresholds"]) == LABELS
    assert all(v in CANDIDATES for v in m["thresholds"].values())
    pred = textlstm.load(ml_run)
    assert pred.thresholds == [m["thresholds"][lab] for lab in LABELS]

    copy = tmp_path / "run"
    shutil.copytree(ml_run, copy, ignore=shutil.ignore_patterns("wandb"))
    edited = m | {"thresholds": {"money": 0.99, "sport": 0.01, "tech": 0.5}}
    (copy / "metrics.json").write_text(json.dumps(edited))
    other = textlstm.load(copy)
    texts = ["the striker scored a goal", "shares in the bank fell", "a new phone chip", "the city"]
    for model in (pred, other):
        for row, probs in zip(model.predict(texts), model.predict_proba(texts).tolist(),
                              strict=True):
            want = {lab for lab, q, th in zip(LABELS, probs, model.thresholds,
                                              strict=True) if q >= th}
            assert set(row["labels"]) == want
            assert list(row["probabilities"]) == LABELS
    # evaluate predicts at the thresholds of the run it is given
    code, out, err = run_cli("evaluate", ml_run, "--data", ml_files / "test.csv",
                             "data.label_field=tags",
                             f"data.data_dir={tmp_path / 'data'}")
    assert code == 0, err
    report = json.loads(out)
    for k in ("f1_micro", "f1_macro", "f1_samples", "hamming_loss", "subset_accuracy", "loss"):
        assert report[k] == pytest.approx(m["test"][k], abs=1e-5), k
    (copy / "metrics.json").write_text(json.dumps(m | {"thresholds": {"money": 2}}))
    with pytest.raises(UserError, match="thresholds"):
        textlstm.load(copy)


def test_predict_answers_label_sets_and_min_labels_never_leaves_one_empty(ml_run):
    texts = ["the striker scored a goal and the bank made a profit", "the of and in",
             "city road water",
             "they said it was a day"]
    code, out, err = run_cli("predict", ml_run, *texts)
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["text"] for r in rows] == texts
    assert set(rows[0]["labels"]) == {"sport", "money"}
    assert all(set(r) == {"text", "labels", "probabilities"} for r in rows)
    empty = [i for i, r in enumerate(rows) if not r["labels"]]
    assert empty  # texts without a rule's word get no label ...
    code, out, err = run_cli("predict", ml_run, *texts, "--min-labels", "1")
    assert code == 0, err
    topped = [json.loads(x) for x in out.splitlines()]
    for i, (r, t) in enumerate(zip(rows, topped, strict=True)):
        if i in empty:  # ... unless asked for at least one: then the most probable
            assert t["labels"] == [max(r["probabilities"], key=r["probabilities"].get)]
        else:
            assert t["labels"] == r["labels"]
    api = textlstm.load(ml_run).predict(texts, min_labels=2)
    assert all(len(r["labels"]) >= 2 for r in api)
    with pytest.raises(UserError, match="min_labels"):
        textlstm.load(ml_run).predict(texts, min_labels=-1)


def test_report_errors_and_dashboard_follow_the_multilabel_shape(ml_run):
    from tests.test_report import _parse
    from textlstm.tracking.wandb_reader import summarize

    text, p = _parse(ml_run / "report.html")
    ids = {a.get("id") for _, a in p.tags}
    assert {"curves", "per-class"} <= ids and not {"confusion", "reliability"} & ids
    assert "Per label (test)" in text and "AUROC" in text and "subset accuracy" in text
    assert not (ml_run / "confusion_matrix.png").exists()
    errors = json.loads((ml_run / "errors.json").read_text())
    for e in errors:
        assert isinstance(e["true"], list) and isinstance(e["predicted"], list)
        assert set(e["true"]) != set(e["predicted"]) and e["explained"] in LABELS

    files = list((ml_run / "wandb").glob("offline-run-*/run-*.wandb"))
    s = summarize(files[0])
    h = s["history"]
    for key in ("test/per_label", "test/pr_curve_table", "predictions", "data/class_balance"):
        assert h[f"{key}/_type"] == ["table-file"], key
    assert not [k for k in h if "confusion" in k or "reliability" in k]
    table = json.loads((files[0].parent / "files" / h["test/per_label/path"][0]).read_text())
    assert table["columns"] == ["label", "precision", "recall", "f1", "support", "auroc",
                                "threshold"]
    assert [r[0] for r in table["data"]] == LABELS
    assert "val/f1_macro" in h and 0 <= s["summary"]["test/f1_micro"] <= 1


# ---------------------------------------------------------------- bad inputs: exit 2, one sentence


def _bad(tmp_path, files: dict, *extra) -> list[str]:
    d = tmp_path
    paths = {}
    for split in ("train", "validation", "test"):
        name, content = files.get(split, (f"{split}.csv", None))
        path = d / name
        if content is None:
            seed = ("train", "validation", "test").index(split) + 10
            _csv(path, [(t, "|".join(labs)) for t, labs in _rows(30, seed)])
        else:
            path.write_text(content)
        paths[split] = path
    return ["train", "--config", str(ROOT / "configs" / "base.yaml"), "task=multilabel",
            f"data.train_file={paths['train']}", f"data.validation_file={paths['validation']}",
            f"data.test_file={paths['test']}", "data.label_field=tags",
            f"data.data_dir={d / 'data'}",
            f"run_root={d / 'runs'}", "wandb.mode=disabled", "trainer.progress_bar=false", *extra]


BAD = [
    ("list of numbers", {"train": ("t.jsonl", '{"text": "a b", "tags": [1, 2]}\n' * 5)},
     ["row 1", "not a list of strings", "[1, 2]"]),
    ("JSON list of numbers in a CSV cell", {"train": ("t.csv", 'text,tags\na b,"[1, 2]"\nc d,x\n')},
     ["row 1", "not a list of strings"]),
    ("labels as objects", {"train": ("t.jsonl", '{"text": "a b", "tags": {"x": 1}}\n' * 3)},
     ["not a list of strings"]),
    ("another separator", {"train": ("t.csv",
                                     "text,tags\na b,\"sport,money\"\nc d,tech\ne f,sport\n")},
     ["data.label_separator '|'", "contain ','", "'sport,money'", "data.label_separator=','"]),
    ("label only in validation", {"validation": ("v.csv", "text,tags\na b,sport|chess\n")},
     ["'chess'", "never occur in train"]),
]


@pytest.mark.parametrize("name,files,words", BAD, ids=[b[0] for b in BAD])
def test_bad_multilabel_input(name, files, words, tmp_path, capsys):
    code = main(_bad(tmp_path, files))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)
    assert not (tmp_path / "runs").exists()  # nothing half-made


@pytest.mark.parametrize("override,words", [
    ("data.streaming=true", ["data.streaming", "task=multilabel"]),
    ("task=multilable", ["'task'", "multiclass or multilabel"]),
    ("data.label_separator=", ["data.label_separator", "empty"]),
])
def test_bad_multilabel_config(override, words, tmp_path, capsys):
    code = main(_bad(tmp_path, {}, override))
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err


def test_predict_refuses_negative_min_labels(ml_run):
    code, _, err = run_cli("predict", ml_run, "a text", "--min-labels", "-1")
    assert code == 2 and "--min-labels" in err and "Traceback" not in err


def test_export_refuses_a_multilabel_run_in_one_line(ml_run, tmp_path):
    code, out, err = run_cli("export", ml_run, "--out", tmp_path / "bundle")
    assert code == 2 and out == "" and err.count("\n") == 1 and "multi-class models only" in err
    assert not (tmp_path / "bundle").exists()


# ---------------------------------------------------------------- pieces


def test_label_cells_parse_as_lists_strings_or_nothing():
    from textlstm.data.multilabel import NotAStringList, canonical, parse_labels

    assert parse_labels("sport|money", "|") == ["sport", "money"]
    assert parse_labels(" sport | money |", "|") == ["sport", "money"]
    assert parse_labels('["b", "a"]', "|") == ["b", "a"]
    assert parse_labels(["a", " "], "|") == ["a"]
    for empty in ("", "  ", None, float("nan"), [], "[]"):
        assert parse_labels(empty, "|") == []
    assert parse_labels("a;b", ";") == ["a", "b"] and parse_labels(7, "|") == ["7"]
    for bad in ([1, 2], "[1, 2]", {"a": 1}, True, "[not, json]"):
        with pytest.raises(NotAStringList):
            parse_labels(bad, "|")
    assert canonical(["b", "a", "b"]) == '["a", "b"]' and canonical([]) == "[]"


def test_thresholds_maximise_each_labels_f1():
    import torch

    from textlstm.training.multilabel import tune_thresholds

    p = torch.tensor([[0.32, 0.9], [0.35, 0.2], [0.1, 0.6], [0.12, 0.1]])  # (N, C)
    y = torch.tensor([[1, 0], [1, 0], [0, 0], [0, 0]])
    # label 0: any threshold in (0.12, 0.3] separates perfectly; the nearest 0.5 is taken
    # label 1: no positive in validation, nothing to tune: 0.5
    assert tune_thresholds(torch.logit(p), y) == [0.3, 0.5]


def test_balanced_pos_weight_is_negatives_over_positives():
    from omegaconf import OmegaConf

    from textlstm.training.build import class_weights

    cfg = OmegaConf.create({"task": "multilabel", "model": {"class_weights": "balanced"}})
    hot = np.array([[1, 0], [1, 1], [0, 0], [1, 0]])
    assert class_weights(cfg, ["a", "b"], hot) == pytest.approx([1 / 3, 3.0])


def test_missing_splits_are_stratified_by_the_rarest_label(tmp_path):
    from omegaconf import OmegaConf

    from textlstm.batches import make_datamodule
    from textlstm.core.config import load_config

    rows = _rows(300, 7) + [(f"chess opening {i}", ["chess"]) for i in range(20)]  # a rare label
    train = _jsonl(tmp_path / "train.jsonl", rows)
    cfg = load_config(None, ["task=multilabel", f"data.train_file={train}", "data.label_field=tags",
                             f"data.data_dir={tmp_path / 'data'}", "data.min_freq=1"])
    dm = make_datamodule(cfg.data, seed=0, task=cfg.task)
    dm.setup()
    assert dm.labels == ["chess", *LABELS]
    texts = {s: set(dm.tokens[s]["text"]) for s in ("train", "validation", "test")}
    assert not (texts["train"] & texts["validation"]) and not (texts["train"] & texts["test"])
    for split in ("validation", "test"):
        hot = np.array(dm.splits[split]["label_hot"])  # (N, C)
        assert 25 <= len(hot) <= 40
        assert (hot.sum(0) > 0).all(), split  # every label, the rare one too, in each split
        assert (hot[:, 0].sum()) == 2  # 10 % of the 20 chess texts
    assert OmegaConf.select(cfg, "data.label_separator") == "|"
