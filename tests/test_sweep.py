"""`textlstm sweep`: two tiny Optuna trials end to end, and sweep-file mistakes."""

import csv
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY, run_cli
from textlstm.commands.sweep import load_sweep
from textlstm.core.config import load_config
from textlstm.tracking.wandb_reader import summarize

pytestmark = pytest.mark.slow


def _sweep_file(tmp_path, body: str):
    f = tmp_path / "s.yaml"
    f.write_text(f"config: {ROOT / 'configs' / 'bbc_news.yaml'}\n" + body)
    return f


def test_two_trial_sweep_end_to_end(small_csvs, tmp_path):
    f = _sweep_file(tmp_path, "metric: val/f1_macro\ntrials: 2\nseed: 1\nparameters:\n"
                              "  optim.lr: {low: 0.001, high: 0.01, log: true}\n"
                              "  model.pooling: {choices: [max, mean]}\n")
    code, out, err = run_cli(
        "sweep", f, f"data.train_file={small_csvs / 'train.csv'}",
        f"data.validation_file={small_csvs / 'validation.csv'}",
        f"data.test_file={small_csvs / 'test.csv'}", "data.text_field=review",
        "data.label_field=stars",
        f"data.data_dir={tmp_path / 'data'}", f"run_root={tmp_path / 'runs'}",
        "model.embedding.vectors=null",
        "wandb.mode=offline", *TINY, "trainer.max_epochs=1")
    assert code == 0, err
    results = next((tmp_path / "runs" / "sweeps" / "s").iterdir())
    rows = list(csv.DictReader(open(results / "summary.csv")))
    assert [r["trial"] for r in rows] == ["0", "1"]
    assert all(
        r["model.pooling"] in ("max", "mean") and 0.001 <= float(r["optim.lr"]) <= 0.01
        for r in rows
    )
    best = max(rows, key=lambda r: float(r["val/f1_macro"]))
    cfg = load_config(results / "best.yaml")  # a config you can train as it is
    assert cfg.model.pooling == best["model.pooling"] and cfg.optim.lr == pytest.approx(
        float(best["optim.lr"])
    )
    page = (results / "report.html").read_text()
    metrics_table = page.split("<h2>Metrics</h2>", 1)[1].split("</table>", 1)[0]
    # a header row and one row per trial, each naming its run, the best one marked
    assert metrics_table.count("<tr>") == 1 + len(rows), metrics_table
    assert (
        all(Path(r["run_dir"]).name in metrics_table for r in rows)
        and metrics_table.count("<b>(best)</b>") == 1
    )
    # each trial is its own run and W&B run, all in one group
    groups = set()
    for r in rows:
        wb = list((Path(r["run_dir"]) / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(wb) == 1
        groups.add(summarize(wb[0])["group"])
    assert groups == {"sweep-s"}
    assert "sweep results:" in out


@pytest.mark.parametrize("body,needle", [
    ("parameters:\n  model.encoder.hiden_size: {choices: [8]}\n", "did you mean"),
    ("parameters:\n  optim.lr: {low: 0.1}\n", "needs {low, high}"),
    ("metric: val/auc\nparameters:\n  optim.lr: {low: 0.1, high: 0.2}\n", "not supported"),
    ("parameters: {}\n", "no parameters"),
    ("budget: 3\nparameters:\n  optim.lr: {low: 0.1, high: 0.2}\n", "unknown key"),
])
def test_sweep_file_mistakes(tmp_path, body, needle):
    code, _, err = run_cli("sweep", _sweep_file(tmp_path, body))
    assert code == 2 and needle in err and "Traceback" not in err, err


@pytest.mark.parametrize("name", ["bbc_news", "tweets_sentiment"])
def test_shipped_sweep_files_are_valid(name):
    spec = load_sweep(ROOT / "configs" / "sweeps" / f"{name}.yaml")
    assert (
        spec["base"] == ROOT / "configs" / f"{name}.yaml"
        and spec["trials"] >= 4
        and spec["parameters"]
    )
