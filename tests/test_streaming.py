"""data.streaming=true: the training split read as a `datasets` stream (IterableDataset)."""

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from tests.conftest import ROOT, TINY, run_cli
from textlstm.batches.streaming import StreamBatches, StreamingDataModule, count_rows
from textlstm.core.config import load_config
from textlstm.tokens.vocab import Vocab

N = 203  # rows in the toy stream: not a multiple of the batch size


def _toy(n=N, seed=0):
    """Row i is "t<i>" followed by a random number of "x": its first token id says which row it
    is."""
    rng = np.random.default_rng(seed)
    rows = [{"text": " ".join([f"t{i}"] + ["x"] * int(rng.integers(0, 30))),
             "label": "ab"[i % 2]} for i in range(n)]
    vocab = Vocab(["<pad>", "<unk>", "x"] + [f"t{i}" for i in range(n)])
    return Dataset.from_list(rows), vocab


def _batches(stream, vocab, epoch=0, batch_size=8, rows=N, **cfg_over):
    cfg = load_config(None,
                      [f"data.batch_size={batch_size}", "data.max_length=64", "data.streaming=true",
                             *[f"data.{k}={v}" for k, v in cfg_over.items()]]).data
    sb = StreamBatches(stream, vocab, ["a", "b"], cfg, seed=3, rows=rows)
    sb.set_epoch(epoch)
    return sb, list(sb)


def _rows_of(batches):
    return [int(r) - 3 for b in batches for r in b["ids"][:, 0]]  # "t<i>" has id i + 3


def test_every_row_once_per_epoch_in_length_buckets_and_reshuffled():
    ds, vocab = _toy()
    stream = ds.to_iterable_dataset(num_shards=4)
    sb, b0 = _batches(stream, vocab)
    assert sorted(_rows_of(b0)) == list(range(N)) and len(b0) == len(sb) == -(-N // 8)
    assert all(len(b["labels"]) <= 8 for b in b0)
    # labels travel with their text
    assert all(b["labels"][k].item() == (r % 2) for b in b0 for k, r in enumerate(_rows_of([b])))
    # bucketed: far less padding than batches of random rows
    pad = sum(int(b["lengths"].max()) * len(b["lengths"]) - int(b["lengths"].sum()) for b in b0)
    lengths = np.concatenate([b["lengths"].numpy() for b in b0])
    rnd = np.random.default_rng(0).permutation(lengths)
    pad_rnd = sum(
        int(rnd[i : i + 8].max()) * len(rnd[i : i + 8]) - int(rnd[i : i + 8].sum())
        for i in range(0, N, 8)
    )
    assert pad < pad_rnd / 3
    assert _rows_of(_batches(stream, vocab)[1]) == _rows_of(b0)  # deterministic per (seed, epoch)
    assert _rows_of(_batches(stream, vocab, epoch=1)[1]) != _rows_of(b0)  # and reshuffled per epoch


def test_ranks_and_workers_share_the_batches_evenly(monkeypatch):
    import torch.utils.data as tud

    ds, vocab = _toy()
    stream = ds.to_iterable_dataset()
    batches = {}
    for rank in (0, 1):
        for worker in (0, 1):
            monkeypatch.setattr(StreamBatches, "_world", staticmethod(lambda r=rank: (r, 2)))
            monkeypatch.setattr(tud, "get_worker_info",
                                lambda w=worker: type("W", (), {"id": w, "num_workers": 2}))
            sb, batches[rank, worker] = _batches(stream, vocab)
            assert len(sb) == 13  # ceil(ceil(203 / 8) / 2): what Lightning is told per rank
    # the same number of steps on both ranks (26 batches: 13 each; one repeated where short)
    steps = {r: len(batches[r, 0]) + len(batches[r, 1]) for r in (0, 1)}
    assert steps == {0: 13, 1: 13}
    rows = {r: set(_rows_of(batches[r, 0]) + _rows_of(batches[r, 1])) for r in (0, 1)}
    assert not rows[0] & rows[1] and len(rows[0]) + len(rows[1]) == N  # disjoint and complete


def test_count_rows(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "a", "label": "x"}\n' * 5)
    (tmp_path / "b.csv").write_text("text,label\na,x\nb,y")  # no final newline
    Dataset.from_list([{"text": "a", "label": "x"}] * 7).to_parquet(tmp_path / "c.parquet")
    assert count_rows(tmp_path / "a.jsonl") == 5
    assert count_rows(tmp_path / "b.csv") == 2
    assert count_rows(tmp_path / "c.parquet") == 7


def _shuffled(small_csvs, tmp_path):
    """The training CSV in random order (the slice is grouped by label, a stream rarely is)."""
    import random

    head, *rows = (small_csvs / "train.csv").read_text().splitlines(keepends=True)
    random.Random(0).shuffle(rows)
    path = tmp_path / "train_shuffled.csv"
    path.write_text(head + "".join(rows))
    return path


def _stream_cfg(small_csvs, tmp_path, *extra):
    return [f"data.train_file={_shuffled(small_csvs, tmp_path)}", "data.text_field=review",
            "data.label_field=stars",
            f"data.data_dir={tmp_path / 'data'}", f"run_root={tmp_path}",
            "model.embedding.vectors=null",
            "data.streaming=true", "name=stream", *TINY, *extra]


def test_held_out_splits_come_from_the_sample_and_leave_the_stream(small_csvs, tmp_path):
    cfg = load_config(ROOT / "configs/bbc_news.yaml",
                      _stream_cfg(small_csvs, tmp_path, "data.streaming_sample=200"))
    dm = StreamingDataModule(cfg.data, seed=1)
    dm.setup()
    held = set(dm.tokens["validation"]["text"]) | set(dm.tokens["test"]["text"])
    assert len(dm.splits["validation"]) > 0 and len(dm.splits["test"]) > 0
    assert dm.stats["train_size"] == 300 - len(dm.splits["validation"]) - len(dm.splits["test"])
    seen = [r["text"] for r in dm.stream.stream]
    # the held-out rows left the stream; a copy of one of them further on stays (documented:
    # duplicates are grouped inside the sample only; this slice has one, two articles cut alike)
    import csv
    from collections import Counter

    copies = Counter(r[0] for r in csv.reader(open(tmp_path / "train_shuffled.csv")))
    assert len(seen) == dm.stats["train_size"]
    assert all(copies[t] > 1 for t in held & set(seen))
    # the vocabulary comes from the sample's training rows only
    sample_vocab = Vocab.build(dm.tokens["train"]["tokens"], cfg.data.min_freq,
                               cfg.data.max_vocab_size)
    assert dm.vocab.itos == sample_vocab.itos


@pytest.mark.slow
def test_streaming_trains_end_to_end_and_evaluates(small_csvs, tmp_path):
    code, out, err = run_cli(
        "train",
        "--config",
        ROOT / "configs/bbc_news.yaml",
        *_stream_cfg(
            small_csvs,
            tmp_path,
            f"data.validation_file={small_csvs / 'validation.csv'}",
            f"data.test_file={small_csvs / 'test.csv'}",
            "data.streaming_sample=250",
        ),
    )
    assert code == 0, err[-3000:]
    run = next((tmp_path / "stream").iterdir())
    m = json.loads((run / "metrics.json").read_text())
    assert m["data"]["train_size"] == 300 and m["data"]["train_sample_size"] == 250
    assert m["train"]["epochs"] == 2 and sum(map(sum, m["test"]["confusion_matrix"])) == 60
    code, out, err = run_cli("evaluate", run)
    assert code == 0, err[-2000:]
    assert json.loads(out)["confusion_matrix"] == m["test"]["confusion_matrix"]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_label_missing_from_the_sample_is_a_clear_error(small_csvs, tmp_path, workers):
    import csv

    rows = list(csv.reader(open(_shuffled(small_csvs, tmp_path))))
    rows[-1][1] = "weather"  # a sixth topic, only at the very end
    path = tmp_path / "train.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    args = _stream_cfg(small_csvs, tmp_path,
                       f"data.validation_file={small_csvs / 'validation.csv'}",
                       f"data.test_file={small_csvs / 'test.csv'}", "data.streaming_sample=50",
                       "trainer.max_epochs=1",
                       "wandb.mode=disabled",
                       f"data.num_workers={workers}")  # raised in a worker process too
    args[0] = f"data.train_file={path}"
    code, out, err = run_cli("train", "--config", ROOT / "configs/bbc_news.yaml", *args)
    assert code == 2 and "Traceback" not in err, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert (
        last.startswith("textlstm: error:")
        and "'weather'" in last
        and "data.streaming_sample" in last
    )


def test_a_hub_style_folder_streams_and_an_unknown_length_refuses_the_cosine_schedule(
    bbc_dir, tmp_path
):
    """`hf:<folder>` goes through the hub code path (load_dataset on a name) offline; a folder
    has no split sizes, so the epoch length is unknown."""
    import random

    rows = [json.loads(x) for x in (bbc_dir / "train.jsonl").read_text().splitlines()]
    random.Random(0).shuffle(rows)
    hub = tmp_path / "hub"
    hub.mkdir()
    for split, part in (("train", rows[:300]), ("test", rows[300:360])):  # no validation split
        (hub / f"{split}.jsonl").write_text(
            "".join(
                json.dumps({"text": " ".join(r["text"].split()[:40]), "label": r["label"]}) + "\n"
                for r in part
            )
        )
    base = ["data.source=hf:" + str(hub), "data.streaming=true",
            f"data.data_dir={tmp_path / 'data'}",
            f"run_root={tmp_path}", "model.embedding.vectors=null", "wandb.mode=disabled",
            "name=hub", *TINY,
            "trainer.max_epochs=1"]
    code, out, err = run_cli("train", "--config", ROOT / "configs/bbc_news.yaml", *base)
    assert code == 2 and "optim.scheduler=cosine" in err.strip().splitlines()[-1], err[-2000:]
    assert not list(tmp_path.glob("hub/2*"))  # no run folder left behind
    code, out, err = run_cli("train", "--config", ROOT / "configs/bbc_news.yaml", *base,
                             "optim.scheduler=plateau")
    assert code == 0, err[-2000:]
    m = json.loads((Path(out.split("run directory: ")[1].split()[0]) / "metrics.json").read_text())
    assert (
        m["data"]["train_size"] is None
        and m["data"]["validation_size"] > 0
        and m["data"]["test_size"] == 60
    )


def test_a_stream_grouped_by_label_is_warned_about(small_csvs, tmp_path, caplog):
    head, *rows = (small_csvs / "train.csv").read_text().splitlines(keepends=True)
    grouped = tmp_path / "grouped.csv"
    grouped.write_text(head + "".join(sorted(rows, key=lambda r: r.rsplit(",", 1)[1])))
    args = _stream_cfg(small_csvs, tmp_path, "data.streaming_sample=300")
    cfg = load_config(ROOT / "configs/bbc_news.yaml", [f"data.train_file={grouped}", *args[1:]])
    with caplog.at_level("WARNING", logger="textlstm"):
        StreamingDataModule(cfg.data, seed=1).setup()
    assert "runs of one label" in caplog.text and "data.shuffle_buffer" in caplog.text
    caplog.clear()
    cfg = load_config(ROOT / "configs/bbc_news.yaml", args)  # the shuffled file: no warning
    with caplog.at_level("WARNING", logger="textlstm"):
        StreamingDataModule(cfg.data, seed=1).setup()
    assert "runs of one label" not in caplog.text
