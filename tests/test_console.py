"""What training prints while it runs: a live bar on a terminal, one plain line per epoch
where stdout is a file or a pipe (CI, `make train > log`)."""

import re
import sys

from conftest import TINY, run_cli
from lightning.pytorch.callbacks import RichProgressBar

from textlstm.training.progress import EpochLines, progress_callbacks


def test_output_that_is_not_a_terminal_gets_one_line_per_epoch(small_csvs, tmp_path):
    code, out, err = run_cli(
        "train", "--config", "configs/bbc_news.yaml",
        f"data.train_file={small_csvs / 'train.csv'}",
        f"data.validation_file={small_csvs / 'validation.csv'}",
        f"data.test_file={small_csvs / 'test.csv'}", "data.text_field=review",
        "data.label_field=stars", f"run_root={tmp_path}", "model.embedding.vectors=null",
        "wandb.mode=disabled", *[o for o in TINY if "progress_bar" not in o],
        "trainer.max_epochs=3", "trainer.patience=10", "trainer.progress_bar=true")
    assert code == 0, err
    lines = [x for x in out.splitlines() if x.startswith("epoch ")]
    assert [x.split()[1] for x in lines] == ["1/3", "2/3", "3/3"], out
    for line in lines:  # the bar's metrics, each with its value, on the epoch's one line
        assert re.fullmatch(r"epoch \d/3  train/loss \d\.\d{4}  val/acc \d\.\d{4}  "
                            r"val/f1_macro \d\.\d{4}  \(\d+\.\d s\)", line), line
    # nothing of a bar: no redraws, no metric alone on a line
    assert "\r" not in out and "\x1b[" not in out
    assert not [x for x in out.splitlines() if re.fullmatch(r"\s*[\w/]+: [\d.]+\s*", x)], out


def test_a_terminal_gets_the_live_bar_and_false_gets_nothing(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert [type(c) for c in progress_callbacks(True)] == [RichProgressBar]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert [type(c) for c in progress_callbacks(True)] == [EpochLines]
    assert progress_callbacks(False) == []
