"""A real tiny training run (Trainer, wandb offline) and the CLI verbs on it."""

import json
import os
import subprocess
import sys

import pytest

import textlstm
from tests.conftest import ROOT, TINY, run_cli


def test_run_directory_contents(tiny_run):
    for f in ("config.yaml", "vocab.json", "labels.json", "metrics.json", "checkpoints/best.ckpt",
              "checkpoints/last.ckpt"):
        assert (tiny_run / f).is_file(), f
    assert list((tiny_run / "wandb").glob("offline-run-*/run-*.wandb"))
    m = json.loads((tiny_run / "metrics.json").read_text())
    assert set(m) >= {"data", "train", "validation", "test"}
    assert set(m["data"]) >= {"name", "train_size", "validation_size", "test_size",
                              "vocab_size", "labels"}
    assert set(m["train"]) >= {"seconds", "epochs", "best_epoch", "tokens_per_second"}
    assert set(m["validation"]) == {"accuracy", "f1_macro", "loss"}
    t = m["test"]
    assert set(t["per_class"]) == set(m["data"]["labels"])
    assert all(set(v) == {"precision", "recall", "f1", "support"} for v in t["per_class"].values())
    assert sum(map(sum, t["confusion_matrix"])) == m["data"]["test_size"]
    assert m["train"]["epochs"] == 2


def test_python_api_predict(tiny_run):
    model = textlstm.load(tiny_run)
    out = model.predict(["Shares in the bank fell sharply", "", "🙂"])
    assert len(out) == 3
    labels = json.loads((tiny_run / "labels.json").read_text())
    for row in out:
        assert row["label"] in labels
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-4


def test_cli_predict_and_evaluate(tiny_run, small_csvs, tmp_path):
    code, out, err = run_cli("predict", tiny_run, "the film won an award", "the match ended 2-1")
    assert code == 0, err
    lines = [json.loads(x) for x in out.strip().splitlines()]
    assert len(lines) == 2 and "probabilities" in lines[0]

    src = tmp_path / "texts.csv"
    src.write_text("review\nprofits rose\nthe band played\n")
    dst = tmp_path / "preds.jsonl"
    code, _, err = run_cli("predict", tiny_run, "--input", src, "--output", dst,
                           "data.text_field=review")
    assert code == 0, err
    assert len(dst.read_text().splitlines()) == 2

    code, out, err = run_cli("evaluate", tiny_run, "--data", small_csvs / "test.csv")
    assert code == 0, err
    report = json.loads(out)
    assert set(report) == {"accuracy", "f1_macro", "loss", "per_class", "confusion_matrix", "ece",
                           "ece_uncalibrated", "ece_floor"}
    # evaluating on the run's own test split gives metrics.json's test numbers
    code, out, err = run_cli("evaluate", tiny_run)
    assert code == 0, err
    saved = json.loads((tiny_run / "metrics.json").read_text())["test"]
    assert json.loads(out)["accuracy"] == pytest.approx(saved["accuracy"], abs=1e-6)


@pytest.mark.parametrize("args,needle", [
    (["train", "--config", "configs/bbc_news.yaml", "model.encoder.hiden_size=3"],
     "did you mean 'model.encoder.hidden_size'"),
    (["train", "--config", "configs/nope.yaml"], "does not exist"),
    (["train", "--config", "configs/bbc_news.yaml", "data.train_file=/nonexistent.csv"],
     "does not exist"),
    (["predict", "/nonexistent/run", "hello"], "does not exist"),
    (["evaluate", "/nonexistent/run"], "does not exist"),
])
def test_cli_errors_are_one_line_exit_2(args, needle):
    # the CLI's main() in a fresh interpreter that then says whether torch was loaded: these
    # mistakes are refused before the training stack loads (1 s, not the 8 s its imports take)
    probe = ("import sys; from textlstm.cli import main; rc = main(sys.argv[1:]); "
             "print('torch' in sys.modules); sys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    code, out, err = p.returncode, p.stdout, p.stderr
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert out.strip() == "False", "the mistake was found only after torch had loaded"


def test_cli_error_empty_file_and_single_class(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, err = run_cli("train", "--config", "configs/bbc_news.yaml", f"data.train_file={empty}",
                           f"run_root={tmp_path}")
    assert code == 2 and "is empty" in err and "Traceback" not in err
    one = tmp_path / "one.csv"
    one.write_text("text,label\n" + "".join(f"text {i},a\n" for i in range(30)))
    code, _, err = run_cli("train", "--config", "configs/bbc_news.yaml", f"data.train_file={one}",
                           f"run_root={tmp_path}", *TINY)
    assert code == 2 and "only one label" in err


def test_corrupt_checkpoint_is_refused(tiny_run, tmp_path):
    import shutil

    bad = tmp_path / "run"
    shutil.copytree(tiny_run, bad)
    ck = bad / "checkpoints" / "best.ckpt"
    ck.write_bytes(ck.read_bytes()[:1000])
    code, _, err = run_cli("predict", bad, "hello")
    assert code == 2 and "corrupt" in err and "Traceback" not in err


def test_train_cli_on_custom_columns(small_csvs, tmp_path):
    code, out, err = run_cli(
        "train", "--config", ROOT / "configs" / "bbc_news.yaml", "data.source=files",
        f"data.train_file={small_csvs / 'train.csv'}", "data.text_field=review",
        "data.label_field=stars",
        f"run_root={tmp_path}", f"data.data_dir={tmp_path / 'data'}", "wandb.mode=disabled",
        "model.embedding.vectors=null", *TINY)
    assert code == 0, err
    last = out.strip().splitlines()
    assert last[-2].startswith("run directory: ") and last[-1].startswith("test: accuracy=")


def test_a_run_trained_on_a_gpu_predicts_on_a_machine_without_one(tiny_run, tmp_path):
    import shutil

    import torch
    import yaml

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    run = tmp_path / "from_gpu"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("wandb", "gates"))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["trainer"]["accelerator"] = "gpu"  # as written by a run trained on a GPU
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    texts = ["profits rose at the bank", "the band played a new album"]
    moved = textlstm.load(run)
    assert moved.device.type == "cpu"
    assert moved.predict(texts) == textlstm.load(tiny_run).predict(texts)
