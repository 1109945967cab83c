"""What a run puts on its W&B dashboard, read back from the offline run file (no upload)."""

import json

import pytest

from textlstm.tracking.wandb_reader import summarize


@pytest.fixture(scope="module")
def offline(tiny_run):
    files = list((tiny_run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    return summarize(files[0]), files[0].parent / "files"


def test_run_identity_and_config(offline, tiny_run):
    s, _ = offline
    assert s["name"] == f"bbc_news/{tiny_run.name}" and s["group"] == "bbc_news"
    assert {"bbc_news", "lstm", "pool-mean"} <= set(s["tags"])
    assert s["config"]["model"]["encoder"]["hidden_size"] == 16  # the resolved config


def test_curves_every_step_and_epoch(offline):
    h = offline[0]["history"]
    for key in ("train/loss_step", "train/loss_epoch", "val/loss", "val/acc", "val/f1_macro",
                "val/f1_macro_best",
                "lr-AdamW", "train/grad_norm", "train/tokens_per_second"):
        assert key in h and h[key], key
    assert all(g > 0 for g in h["train/grad_norm"])


def test_summary_has_best_and_test_metrics(offline):
    s = offline[0]["summary"]
    assert set(s["val/f1_macro"]) == {"max"}
    assert 0 <= s["test/accuracy"] <= 1 and "test/f1_macro" in s
    for k in ("data/train_size", "data/validation_size", "data/test_size", "data/vocab_size",
              "data/test_oov_rate"):
        assert k in s, k


def test_tables_plots_images_and_artifact(offline, tiny_run):
    s, files = offline
    h = s["history"]
    assert h["data/class_balance/_type"] == ["table-file"]
    assert h["data/train_token_length/_type"] == ["histogram"]
    for key in ("test/per_class", "test/confusion_matrix_table", "test/pr_curve_table",
                "predictions"):
        assert h[f"{key}/_type"] == ["table-file"], key
    assert h["test/confusion_matrix_png/_type"] == ["image-file"]
    assert h["inspect/gates/count"] == [3]
    assert (tiny_run / "confusion_matrix.png").stat().st_size > 5_000

    labels = json.loads((tiny_run / "labels.json").read_text())
    per_class = json.loads((files / h["test/per_class/path"][0]).read_text())
    assert per_class["columns"] == ["label", "precision", "recall", "f1", "support"]
    assert [r[0] for r in per_class["data"]] == labels

    pred = json.loads((files / h["predictions/path"][0]).read_text())
    assert pred["columns"][:5] == ["split", "text", "true", "predicted", "correct"]
    assert pred["columns"][5:] == [f"p_{lab}" for lab in labels]
    test_rows = [r for r in pred["data"] if r[0] == "test"]
    correct = [r[4] for r in test_rows]
    assert correct == sorted(correct)  # mistakes first
    assert all(abs(sum(r[5:]) - 1) < 1e-3 for r in test_rows)

    model = [a for a in s["artifacts"] if a["type"] == "model"]
    assert len(model) == 1
    assert set(model[0]["files"]) == {"checkpoints/best.ckpt", "vocab.json", "labels.json",
                                      "config.yaml", "metrics.json"}
    assert set(model[0]["aliases"]) >= {"best", "latest"}
    assert model[0]["metadata"]["labels"] == labels


def _table(files, h, key):
    return json.loads((files / h[f"{key}/path"][0]).read_text())


def test_table_contents_equal_the_run(offline, tiny_run):
    s, files = offline
    h = s["history"]
    m = json.loads((tiny_run / "metrics.json").read_text())
    labels = m["data"]["labels"]
    per_class = _table(files, h, "test/per_class")
    for lab, precision, recall, f1, support in per_class["data"]:
        want = m["test"]["per_class"][lab]
        assert (precision, recall, f1, support) == pytest.approx(
            (want["precision"], want["recall"], want["f1"], want["support"]), abs=1e-6), lab
    balance = _table(files, h, "data/class_balance")
    assert balance["columns"] == ["split", "label", "count", "share"]
    for split in ("train", "validation", "test"):
        rows = [r for r in balance["data"] if r[0] == split]
        assert [r[1] for r in rows] == labels
        assert sum(r[2] for r in rows) == m["data"][f"{split}_size"], split
        assert sum(r[3] for r in rows) == pytest.approx(1, abs=1e-3)
    # the confusion matrix table holds the test confusion matrix, cell by cell
    cm = _table(files, h, "test/confusion_matrix_table")
    seen = {(r[0], r[1]): r[2] for r in cm["data"]}
    for i, a in enumerate(labels):
        for j, b in enumerate(labels):
            assert seen.get((a, b), 0) == m["test"]["confusion_matrix"][i][j], (a, b)


def test_predictions_table_has_both_splits_mistakes_first_most_confident_first(offline, tiny_run):
    s, files = offline
    m = json.loads((tiny_run / "metrics.json").read_text())
    pred = _table(files, s["history"], "predictions")
    for split, size in (("test", m["data"]["test_size"]),
                        ("validation", m["data"]["validation_size"])):
        rows = [r for r in pred["data"] if r[0] == split]
        assert len(rows) == min(size, 500), split  # every row of a small split
        assert all(r[4] == (r[2] == r[3]) for r in rows)
        conf = [max(r[5:]) for r in rows]
        wrong = [c for r, c in zip(rows, conf, strict=True) if not r[4]]
        right = [c for r, c in zip(rows, conf, strict=True) if r[4]]
        assert [r[4] for r in rows] == sorted(r[4] for r in rows)  # mistakes first
        assert wrong == sorted(wrong, reverse=True)  # most confident mistakes at the top
        assert right == sorted(right)  # then the least confident correct ones
    # the test accuracy in the table is the one metrics.json reports
    test_rows = [r for r in pred["data"] if r[0] == "test"]
    assert sum(r[4] for r in test_rows) / len(test_rows) == pytest.approx(
        m["test"]["accuracy"], abs=1e-6
    )


def test_prediction_rows_are_capped_at_500_and_ordered():
    import numpy as np

    from textlstm.tracking.dashboard import MAX_PREDICTION_ROWS, prediction_rows

    rng = np.random.default_rng(0)
    n = 700
    probs = rng.dirichlet([1, 1, 1], size=n).astype(np.float32)
    true = rng.integers(0, 3, size=n)
    p = {"probs": probs, "pred": probs.argmax(1), "true": true, "text": [f"t{i}" for i in range(n)]}
    rows = prediction_rows(p, ["a", "b", "c"], "test")
    assert MAX_PREDICTION_ROWS == 500 and len(rows) == 500
    wrong = np.flatnonzero(p["pred"] != true)
    # every mistake is kept ahead of any correct row, most confident first
    assert [r[1] for r in rows[: len(wrong)]] == [
        f"t{i}" for i in sorted(wrong, key=lambda i: -probs[i].max())
    ]
    assert all(r[4] for r in rows[len(wrong):])


def test_the_wandb_run_starts_without_the_deprecated_anonymous_setting(tmp_path, monkeypatch):
    """Lightning's WandbLogger passes `anonymous` to wandb.init, and wandb warns about it on
    every run (wandb/wandb#10909); textlstm leaves it out and keeps the rest."""
    import wandb

    from textlstm.core.config import load_config
    from textlstm.tracking.wandb_logger import make_wandb_logger

    class Started(Exception):
        pass

    seen = {}

    def fake_init(**kwargs):
        seen.update(kwargs)
        raise Started

    monkeypatch.setattr(wandb, "init", fake_init)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = load_config(None, ["wandb.mode=offline"])
    with pytest.raises(Started):
        _ = make_wandb_logger(cfg, tmp_path).experiment
    assert seen["mode"] == "offline" and seen["dir"] == str(tmp_path)
    assert "anonymous" not in seen
