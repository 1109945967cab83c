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
    for key in ("train/loss_step", "train/loss_epoch", "val/loss", "val/acc", "val/f1_macro", "val/f1_macro_best",
                "lr-AdamW", "train/grad_norm", "train/tokens_per_second"):
        assert key in h and h[key], key
    assert all(g > 0 for g in h["train/grad_norm"])


def test_summary_has_best_and_test_metrics(offline):
    s = offline[0]["summary"]
    assert set(s["val/f1_macro"]) == {"max"}
    assert 0 <= s["test/accuracy"] <= 1 and "test/f1_macro" in s
    for k in ("data/train_size", "data/validation_size", "data/test_size", "data/vocab_size", "data/test_oov_rate"):
        assert k in s, k


def test_tables_plots_images_and_artifact(offline, tiny_run):
    s, files = offline
    h = s["history"]
    assert h["data/class_balance/_type"] == ["table-file"]
    assert h["data/train_token_length/_type"] == ["histogram"]
    for key in ("test/per_class", "test/confusion_matrix_table", "test/pr_curve_table", "predictions"):
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
    # metrics.json carries what the loader reads besides weights: temperature, multi-label thresholds
    assert set(model[0]["files"]) == {"checkpoints/best.ckpt", "vocab.json", "labels.json", "config.yaml",
                                      "metrics.json"}
