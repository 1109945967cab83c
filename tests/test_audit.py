"""`textlstm audit` (label issues from out-of-fold probabilities), `textlstm suggest` (what to
label next) and `data.extra_train_file` (the labelled texts coming back)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, TINY, run_cli

COLUMNS = ["row", "text", "given_label", "suggested_label", "score"]


def _write_csv(path: Path, rows, header=("text", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _broken_test_file(folder: Path) -> Path:
    """A test file no split reader accepts (no text or label column): an audit that opened
    its test split would fail on it."""
    return _write_csv(folder / "test.csv", [["x", "y"]], header=("foo", "bar"))


def _synthetic(seed: int, n_per_class: int = 100) -> tuple[list[list[str]], list[int]]:
    """Three topics, each with its own words (easy to separate), labels of 10 % flipped."""
    rng = np.random.default_rng(seed)
    words = {"sport": "goal match team coach league striker referee season cup final",
             "money": "bank market shares profit investor bond rates economy trade fund",
             "film": "actor movie director cinema oscar screen drama premiere cast studio"}
    shared = "the a said on in today week new report people".split()
    rows = []
    for label, vocab in words.items():
        for _ in range(n_per_class):
            text = rng.choice(vocab.split(), 6).tolist() + rng.choice(shared, 6).tolist()
            rng.shuffle(text)
            rows.append([" ".join(text), label])
    flips = sorted(rng.choice(len(rows), len(rows) // 10, replace=False).tolist())
    for i in flips:
        rows[i][1] = str(rng.choice([lab for lab in words if lab != rows[i][1]]))
    return rows, flips


def _config(tmp_path: Path, train: Path, validation: Path, test: Path, *extra: str):
    from textlstm.core.config import load_config

    return load_config(ROOT / "configs" / "bbc_news.yaml", [
        f"data.train_file={train}", f"data.validation_file={validation}",
        f"data.test_file={test}", f"data.data_dir={tmp_path / 'data'}",
        f"run_root={tmp_path / 'runs'}", "wandb.mode=disabled", *extra])


def test_fast_audit_recovers_injected_flips_without_reading_the_test_split(tmp_path):
    from textlstm.commands.audit import audit

    rows, flips = _synthetic(0)
    val, _ = _synthetic(1, 20)
    cfg = _config(tmp_path, _write_csv(tmp_path / "train.csv", rows),
                  _write_csv(tmp_path / "validation.csv", val), _broken_test_file(tmp_path),
                  "wandb.mode=offline")
    out = audit(cfg, folds=5, out=tmp_path / "audit", fast=True, log=lambda m: None)
    issues = _read_csv(out / "label_issues.csv")
    assert list(issues[0]) == COLUMNS
    flagged = {int(r["row"]) for r in issues}
    hits = flagged & set(flips)
    assert len(hits) / len(flagged) >= 0.8, (len(hits), len(flagged))  # precision
    assert len(hits) / len(flips) >= 0.8, (len(hits), len(flips))  # recall
    # ranked by self-confidence: the given label's out-of-fold probability, lowest first
    scores = [float(r["score"]) for r in issues]
    assert scores == sorted(scores)
    for r in issues:
        assert r["text"] == rows[int(r["row"])][0] and r["given_label"] == rows[int(r["row"])][1]
    page = (out / "audit.html").read_text()
    assert "Noise per class" in page and "<span title=" in page
    assert "<th>estimated noise</th>" in page  # the per-class table itself, not its heading
    tables = {t.name.split("_0_")[0] for t in (out / "wandb").rglob("*.table.json")}
    assert tables == {"label_issues", "noise"}  # logged to W&B (offline)


@pytest.fixture(scope="module")
def lstm_audit(tmp_path_factory, small_csvs):
    """A 2-fold LSTM audit of the BBC slice (tiny model, one epoch), its test file unreadable."""
    from textlstm.commands.audit import audit

    tmp = tmp_path_factory.mktemp("lstm_audit")
    lines = []
    cfg = _config(tmp, small_csvs / "train.csv", small_csvs / "validation.csv",
                  _broken_test_file(tmp), "data.text_field=review", "data.label_field=stars",
                  "model.embedding.vectors=null", *TINY, "trainer.max_epochs=1",
                  "trainer.num_threads=1")
    out = audit(cfg, folds=2, out=tmp / "audit", log=lines.append)
    return cfg, out, lines


def test_out_of_fold_probabilities_never_come_from_a_model_that_saw_the_text(lstm_audit,
                                                                            small_csvs):
    _, out, _ = lstm_audit
    n = len(_read_csv(small_csvs / "train.csv"))
    scored = []
    for k in (0, 1):
        fold = out / "folds" / str(k)
        train = [json.loads(x) for x in (fold / "train.jsonl").read_text().splitlines()]
        held = [json.loads(x) for x in (fold / "heldout.jsonl").read_text().splitlines()]
        assert {r["text"] for r in train}.isdisjoint({r["text"] for r in held})
        oof = json.loads((fold / "oof.json").read_text())
        assert oof["rows"] == [r["row"] for r in held]
        run = Path(oof["run"])
        # the fold's model trained on train.jsonl and nothing else, scored heldout.jsonl
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["data"]["train_file"] == str(fold / "train.jsonl")
        assert cfg["data"]["test_file"] == str(fold / "heldout.jsonl")
        assert not cfg["data"]["extra_train_file"]
        data = json.loads((run / "metrics.json").read_text())["data"]
        assert data["train_size"] == len(train) and data["test_size"] == len(held)
        scored += oof["rows"]
    assert sorted(scored) == list(range(n))  # every training row scored exactly once


def test_lstm_audit_writes_its_outputs_and_resumes_only_unfinished_folds(lstm_audit):
    from textlstm.commands.audit import audit

    cfg, out, lines = lstm_audit
    assert [x.split(":")[0] for x in lines[:2]] == ["fold 1/2", "fold 2/2"]
    issues = _read_csv(out / "label_issues.csv")
    assert issues and list(issues[0]) == COLUMNS
    page = (out / "audit.html").read_text()
    assert "Noise per class" in page and "<span title=" in page  # integrated gradients shown
    runs0 = sorted((out / "folds" / "0" / "run").iterdir())
    runs1 = sorted((out / "folds" / "1" / "run").iterdir())
    (out / "folds" / "1" / "oof.json").unlink()
    again = []
    audit(cfg, folds=2, out=out, log=again.append)
    assert again[0].startswith("fold 1/2: done before")
    assert not again[1].startswith("fold 2/2: done before")
    assert sorted((out / "folds" / "0" / "run").iterdir()) == runs0  # not trained again
    assert len(list((out / "folds" / "1" / "run").iterdir())) == len(runs1) + 1
    assert (out / "folds" / "1" / "oof.json").is_file()


def _one_line_exit_2(code, err):
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_bad_inputs_get_one_line_and_exit_2(tmp_path, small_csvs):
    base = ["audit", "--config", ROOT / "configs" / "bbc_news.yaml", "--fast",
            f"data.validation_file={small_csvs / 'validation.csv'}", "data.text_field=review",
            "data.label_field=stars", "wandb.mode=disabled", f"run_root={tmp_path}"]
    one = _write_csv(tmp_path / "one.csv", [[f"text {i}", "sport"] for i in range(20)],
                     header=("review", "stars"))
    few = _write_csv(tmp_path / "few.csv", [["a b", "business"], ["c d", "tech"]],
                     header=("review", "stars"))
    test = small_csvs / "test.csv"
    copy = tmp_path / "copy_of_test.csv"
    copy.write_bytes(test.read_bytes())
    for train, extra, says in ((one, [], "only one label"),
                               (few, [], "fewer than --folds"),
                               (small_csvs / "train.csv", ["--folds", "1"], "at least 2 folds"),
                               (test, [], "is the test file"),
                               (copy, [], "is the test file")):
        code, _, err = run_cli(*base, f"data.train_file={train}", f"data.test_file={test}",
                               *extra)
        _one_line_exit_2(code, err)
        assert says in err, err


def test_suggest_refuses_a_missing_pool_and_a_bad_k(tmp_path, tiny_run):
    code, _, err = run_cli("suggest", tiny_run, "--pool", tmp_path / "missing.csv")
    _one_line_exit_2(code, err)
    assert "missing.csv" in err
    code, _, err = run_cli("suggest", tiny_run, "--pool", tmp_path / "missing.csv", "--k", "0")
    _one_line_exit_2(code, err)
    empty = _write_csv(tmp_path / "no_text_column.csv", [["x"]], header=("body",))
    code, _, err = run_cli("suggest", tiny_run, "--pool", empty)
    _one_line_exit_2(code, err)
    assert "'review'" in err


def test_suggest_ranks_by_breaking_ties_and_random_is_seeded(tmp_path, tiny_run, small_csvs):
    import textlstm
    from textlstm.commands.suggest import suggest

    pool = small_csvs / "validation.csv"
    texts = [r["review"] for r in _read_csv(pool)]
    probs = np.sort(textlstm.load(tiny_run).predict_proba(texts).numpy(), axis=1)
    margin = probs[:, -1] - probs[:, -2]
    out, n = suggest(tiny_run, pool, k=20, out=tmp_path / "bt.csv")
    rows = _read_csv(out)
    assert n == 20 and list(rows[0]) == ["row", "review", "predicted", "score", "stars"]
    assert [int(r["row"]) for r in rows] == np.argsort(margin, kind="stable")[:20].tolist()
    assert all(r["stars"] == "" and r["review"] == texts[int(r["row"])] for r in rows)
    with pytest.raises(Exception, match="already exists"):
        suggest(tiny_run, pool, k=20, out=tmp_path / "bt.csv")

    def order(seed, name):
        suggest(tiny_run, pool, k=len(texts), strategy="random", seed=seed, out=tmp_path / name,
                overwrite=True)
        return [int(r["row"]) for r in _read_csv(tmp_path / name)]

    assert order(1, "r1.csv") == order(1, "r1b.csv") != order(2, "r2.csv")
    assert sorted(order(1, "r1.csv")) == list(range(len(texts)))


def test_diverse_ties_spreads_its_picks_over_the_closest_calls():
    from textlstm.commands.suggest import CANDIDATES, diverse_ties, rank_pool

    rng = np.random.default_rng(0)
    k = 10
    # rows 0-19: the closest calls, one text twenty times over; rows 20-39: the next closest,
    # each its own text; rows 40-99: confident calls breaking ties never reaches
    vectors = rng.normal(size=(100, 8))
    vectors[:20] = vectors[0] * 3.0  # copies (a scaled copy: the same direction)
    margin = np.concatenate([np.linspace(0.0, 0.01, 20), np.linspace(0.02, 0.1, 20),
                             np.linspace(0.5, 0.9, 60)])
    assert CANDIDATES * k == 40
    picks = diverse_ties(margin, vectors, k, seed=1)
    assert picks[0] == 0 and len(set(picks.tolist())) == k  # starts from the closest call
    assert sum(p < 20 for p in picks) == 1  # one of the twenty copies, not ten
    assert all(p < 40 for p in picks)  # only among the CANDIDATES * k closest calls
    assert diverse_ties(margin, vectors, k, seed=1).tolist() == picks.tolist()
    assert diverse_ties(margin, vectors, k, seed=2).tolist() != picks.tolist()
    # every candidate the same text: nothing to spread over, so the closest calls in order
    same = np.ones((100, 8))
    assert diverse_ties(margin, same, k).tolist() == list(range(k))
    # rank_pool: the k picks first, then every other row by margin
    probs = np.stack([0.5 + margin / 2, 0.5 - margin / 2], axis=1)
    order, score = rank_pool(probs, "diverse-ties", 1, k, vectors)
    assert order[:k].tolist() == picks.tolist() and np.allclose(score, margin)
    rest = [i for i in np.argsort(margin, kind="stable").tolist() if i not in set(picks)]
    assert order[k:].tolist() == rest


def test_suggest_diverse_ties_reads_the_networks_text_vectors(tmp_path, tiny_run, small_csvs):
    import torch

    import textlstm
    from textlstm.commands.suggest import diverse_ties, suggest

    pool = small_csvs / "validation.csv"
    texts = [r["review"] for r in _read_csv(pool)]
    pred = textlstm.load(tiny_run)
    probs, vectors = pred.proba_and_vectors(texts)
    assert torch.allclose(probs, pred.predict_proba(texts), atol=1e-6)
    # the vectors are what the head's last layer reads: it gives the probabilities back
    with torch.inference_mode():
        again = (pred.net.eval().head[-1](vectors) / pred.temperature).softmax(-1)
    assert torch.allclose(again, probs, atol=1e-5) and vectors.size(1) > len(pred.labels)
    margin = np.sort(probs.numpy(), axis=1)
    margin = margin[:, -1] - margin[:, -2]
    code, out, err = run_cli("suggest", tiny_run, "--pool", pool, "--k", "5", "--strategy",
                             "diverse-ties", "--out", tmp_path / "dt.csv")
    assert code == 0, err
    rows = [int(r["row"]) for r in _read_csv(tmp_path / "dt.csv")]
    closest = np.argsort(margin, kind="stable")
    assert len(set(rows)) == 5 and rows[0] == closest[0] and set(rows) <= set(closest[:20])
    assert rows == diverse_ties(margin, vectors.numpy(), 5, seed=0).tolist()
    # a bundle has no text vectors: one line, exit 2, and the file it would write not there
    bundle = tmp_path / "bundle"
    assert run_cli("export", tiny_run, "--out", bundle)[0] == 0
    code, _, err = run_cli("suggest", bundle, "--pool", pool, "--strategy", "diverse-ties",
                           "--out", tmp_path / "b.csv")
    _one_line_exit_2(code, err)
    assert "run folder" in err and not (tmp_path / "b.csv").exists()
    assert suggest(bundle, pool, k=5, out=tmp_path / "b.csv")[1] == 5  # breaking-ties: fine


def test_extra_train_file_rows_reach_the_training_split_only(tmp_path, small_csvs):
    from textlstm.data.sources import load_splits

    extra = _write_csv(tmp_path / "labelled.csv", [["a freshly labelled text", "tech"],
                                                   ["another one", "sports"]],
                       header=("review", "stars"))
    args = ["data.text_field=review", "data.label_field=stars"]
    plain = load_splits(_config(tmp_path, small_csvs / "train.csv",
                                small_csvs / "validation.csv", small_csvs / "test.csv",
                                *args).data)
    more = load_splits(_config(tmp_path, small_csvs / "train.csv",
                               small_csvs / "validation.csv", small_csvs / "test.csv", *args,
                               f"data.extra_train_file={extra}").data)
    assert len(more["train"]) == len(plain["train"]) + 2
    assert more["train"]["text"][-2:] == ["a freshly labelled text", "another one"]
    assert more["train"]["label"][-2:] == ["tech", "sports"]
    for split in ("validation", "test"):
        assert more[split]["text"] == plain[split]["text"]
    code, _, err = run_cli("train", "--config", ROOT / "configs" / "bbc_news.yaml",
                           f"data.extra_train_file={tmp_path / 'nope.csv'}")
    _one_line_exit_2(code, err)
    assert "nope.csv" in err
