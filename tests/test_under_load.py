"""Under load: predict streams big inputs in constant memory and never leaves a torn output;
two trainings started at once in the same folder keep apart."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, TINY

pytestmark = pytest.mark.slow

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
# run the CLI and report this process's peak RSS (KB) on stderr
PEAK = ("import resource, sys; from textlstm.cli import main; rc = main(sys.argv[1:]); "
        "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        "file=sys.stderr); sys.exit(rc)")


def _texts(path, n):
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(f"shares in company {i} rose after the match report {i % 97}\n")
    return path


def test_predict_streams_in_constant_memory(tiny_run, tmp_path):
    def peak_kb(n):
        src, out = _texts(tmp_path / f"in{n}.txt", n), tmp_path / f"out{n}.jsonl"
        p = subprocess.run([sys.executable, "-c", PEAK, "predict", str(tiny_run),
                            "--input", str(src),
                            "--output", str(out)], capture_output=True, text=True,
                           env=ENV, cwd=ROOT)
        assert p.returncode == 0, p.stderr
        lines = out.read_text().splitlines()
        assert len(lines) == n and json.loads(lines[-1])["text"].startswith(
            f"shares in company {n - 1} "
        )
        return int(re.search(r"PEAK_RSS_KB (\d+)", p.stderr).group(1))

    small, big = peak_kb(20_000), peak_kb(120_000)
    # six times the texts, about the same memory: nothing grows with the input
    assert big < small * 1.10, (small, big)


def test_interrupted_predict_leaves_no_output(tiny_run, tmp_path):
    src, out = _texts(tmp_path / "in.txt", 400_000), tmp_path / "out.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "textlstm", "predict", str(tiny_run),
                          "--input", str(src),
                          "--output", str(out)], env=ENV, cwd=ROOT,
                         stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "out.jsonl.partial"
    deadline = time.time() + 120
    while time.time() < deadline and not (partial.exists() and partial.stat().st_size > 0):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    p.wait(timeout=60)
    assert p.returncode == 130, p.stderr.read()[-500:]
    assert not out.exists() and not partial.exists()


def test_two_trainings_at_once_in_the_same_folder(small_csvs, tmp_path):
    args = [sys.executable, "-m", "textlstm", "train", "--config",
            str(ROOT / "configs/bbc_news.yaml"),
            f"data.train_file={small_csvs / 'train.csv'}",
            f"data.validation_file={small_csvs / 'validation.csv'}",
            f"data.test_file={small_csvs / 'test.csv'}", "data.text_field=review",
            "data.label_field=stars",
            f"data.data_dir={tmp_path / 'data'}", f"run_root={tmp_path}",
            "model.embedding.vectors=null",
            "wandb.mode=offline", "name=same", *TINY, "trainer.max_epochs=1",
            "trainer.num_threads=1"]
    procs = [subprocess.Popen(args, env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    runs = sorted((tmp_path / "same").iterdir())
    assert len(runs) == 2
    for run in runs:
        m = json.loads((run / "metrics.json").read_text())
        assert m["train"]["epochs"] == 1
        assert len(list((run / "wandb").glob("offline-run-*"))) == 1  # each its own W&B run
    assert (runs[0] / "wandb_id").read_text() != (runs[1] / "wandb_id").read_text()
