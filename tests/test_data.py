import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from textlstm.batches.collate import collate
from textlstm.batches.datamodule import TextDataModule
from textlstm.batches.sampler import BucketBatchSampler
from textlstm.core.config import load_config
from textlstm.core.errors import UserError
from textlstm.data.sources import SPLITS, read_bbc_news, read_tweets_sentiment, stratified_split
from textlstm.tokens.tokenize import tokenize_dataset, tokenize_texts
from textlstm.tokens.vocab import Vocab


def test_embedded_sets_are_real():
    texts, labels = read_bbc_news()
    assert len(texts) == 2225 and set(labels) == {
        "business",
        "entertainment",
        "politics",
        "sports",
        "tech",
    }
    texts, labels = read_tweets_sentiment()
    assert len(texts) > 38000 and set(labels) == {"negative", "neutral", "positive"}


def test_prepared_bbc_splits_no_leak(bbc_dir):
    splits = {
        s: [json.loads(x) for x in (bbc_dir / f"{s}.jsonl").read_text().splitlines()]
        for s in SPLITS
    }
    texts = {s: {r["text"] for r in rows} for s, rows in splits.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["validation"]
    assert not texts["validation"] & texts["test"]
    n = sum(len(v) for v in splits.values())
    assert 2100 < n < 2225  # exact duplicates dropped
    assert abs(len(splits["test"]) / n - 0.1) < 0.01
    # stratified: each label's share in test is close to its share overall
    overall = Counter(r["label"] for rows in splits.values() for r in rows)
    test = Counter(r["label"] for r in splits["test"])
    for lab, c in overall.items():
        assert abs(test[lab] / len(splits["test"]) - c / n) < 0.02


def test_stratified_split_groups_duplicates():
    texts = ["a", "a", "b", "c", "d", "e", "f", "g", "h", "i"] * 3
    labels = ["x", "x", "y", "x", "y", "x", "y", "x", "y", "x"] * 3
    idx = stratified_split(texts, labels, 0.2, 0.2, seed=1)
    owner = {}
    for s, ids in idx.items():
        for i in ids:
            assert owner.setdefault(texts[i], s) == s
    assert sorted(np.concatenate(list(idx.values()))) == list(range(len(texts)))


def test_spacy_tokenizer():
    assert tokenize_texts(["Don't stop, U.S. shares!"],
                          lowercase=True) == [["do", "n't", "stop", ",", "u.s.", "shares", "!"]]
    assert tokenize_texts(["Big  News"], lowercase=False) == [["Big", "News"]]


def test_spacys_string_store_stays_bounded_in_a_long_stream(monkeypatch):
    """A server meets new words forever; spaCy would keep every one (memory without bound).
    Past MAX_STRINGS the tokenizer starts afresh, and tokens come out the same."""
    from textlstm.tokens import tokenize

    monkeypatch.setattr(tokenize, "MAX_STRINGS", 3000)
    monkeypatch.setattr(tokenize, "_NLP", None)
    text = "Flight {n} to zq{n}x was DELAYED, again! http://t.co/q{n}"
    firsts, sizes = [], []
    for call in range(8):  # 250 texts of new words per call, about 1,000 new strings
        texts = [text.format(n=call * 1000 + i) for i in range(250)]
        toks = tokenize.tokenize_texts(texts)
        firsts.append(toks[0])
        sizes.append(len(tokenize._nlp().vocab.strings))
        assert toks[1] == ["flight", f"{call * 1000 + 1}", "to", f"zq{call * 1000 + 1}x", "was",
                           "delayed", ",", "again", "!", f"http://t.co/q{call * 1000 + 1}"]
    assert max(sizes) < 3000 + 1500, sizes  # bounded: one call's strings past the limit at most
    assert min(sizes[4:]) < max(sizes[:4]), sizes  # and it did start afresh
    assert tokenize.tokenize_texts([text.format(n=0)])[0] == firsts[0]


def test_tokenization_is_cached(tmp_path, monkeypatch):
    from datasets import Dataset

    import textlstm.tokens.tokenize as tk

    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"text number {i}",
                                        "label": "a"}) + "\n" for i in range(50)))
    from textlstm.data.sources import read_file

    ds = read_file(path, str(tmp_path / "cache"))
    first = tokenize_dataset(ds)
    assert isinstance(first, Dataset) and first[0]["tokens"] == ["text", "number", "0"]

    def boom(*a, **k):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(tk, "tokenize_texts", boom)
    again = tokenize_dataset(read_file(path, str(tmp_path / "cache")))
    assert again["tokens"] == first["tokens"]
    with pytest.raises(Exception, match="tokenized again"):  # other settings: a new fingerprint
        tokenize_dataset(read_file(path, str(tmp_path / "cache")), lowercase=False)


def test_vocab_build_save_load(tmp_path):
    v = Vocab.build([["a", "b", "a"], ["c", "a", "b"]], min_freq=2)
    assert v.itos == ["<pad>", "<unk>", "a", "b"]
    assert v.encode(["a", "zzz", "b"]) == [2, 1, 3]
    assert v.encode(["a", "b", "a"], max_length=2) == [2, 3]
    v.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").itos == v.itos
    assert len(Vocab.build([["a", "b", "c", "d"]], max_size=4)) == 4


def test_bucket_sampler_deterministic_and_complete():
    lengths = np.random.default_rng(0).integers(1, 300, size=1000)
    s = BucketBatchSampler(lengths, batch_size=32, seed=7)
    b0 = s.batches()
    assert b0 == BucketBatchSampler(lengths, batch_size=32, seed=7).batches()
    assert sorted(i for b in b0 for i in b) == list(range(1000))
    assert len(s) == len(b0)
    s.set_epoch(1)
    assert s.batches() != b0
    # buckets: far less padding than random batches
    pad = sum(len(b) * lengths[b].max() - lengths[b].sum() for b in b0)
    rnd = np.random.default_rng(0).permutation(1000)
    pad_rnd = sum(
        32 * lengths[rnd[i : i + 32]].max() - lengths[rnd[i : i + 32]].sum()
        for i in range(0, 992, 32)
    )
    assert pad < pad_rnd / 5


def test_lightning_reshuffles_the_bucket_sampler_every_epoch():
    from lightning.fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    s = BucketBatchSampler(np.arange(1, 200), batch_size=8, seed=1)
    loader = DataLoader(list(range(199)), batch_sampler=s)
    first = list(s)
    _set_sampler_epoch(loader, 1)  # what Lightning's fit loop calls at each epoch start
    assert s.epoch == 1 and list(s) != first


def test_exact_length_buckets_have_no_padding():
    lengths = np.random.default_rng(0).integers(0, 40, size=2000)
    s = BucketBatchSampler(lengths, batch_size=32, seed=3, exact=True)
    b0 = s.batches()
    assert sorted(i for b in b0 for i in b) == list(range(2000)) and len(s) == len(b0)
    assert all(len(set(np.maximum(lengths[b], 1))) == 1 and len(b) <= 32 for b in b0)
    assert b0 == BucketBatchSampler(lengths, batch_size=32, seed=3, exact=True).batches()
    s.set_epoch(1)
    assert s.batches() != b0


def test_token_budget_batches():
    lengths = np.random.default_rng(0).integers(1, 400, size=500)
    s = BucketBatchSampler(lengths, batch_size=32, max_tokens=2000, seed=0)
    for b in s.batches():
        assert len(b) == 1 or len(b) * lengths[b].max() <= 2000
        assert len(b) <= 32  # batch_size still caps the count of short texts
    assert max(len(b) for b in s.batches()) == 32


def test_collate_pads_and_keeps_lengths():
    batch = collate([{"ids": [5, 6, 7], "label_id": 1}, {"ids": [8], "label_id": 0},
                     {"ids": [], "label_id": 0}])
    assert batch["ids"].tolist() == [[5, 6, 7], [8, 0, 0], [1, 0, 0]]
    assert batch["lengths"].tolist() == [3, 1, 1] and batch["labels"].tolist() == [1, 0, 0]


def test_datamodule_on_custom_csv(small_csvs, tmp_path):
    cfg = load_config(None,
                      [f"data.train_file={small_csvs / 'train.csv'}", "data.text_field=review",
                             "data.label_field=stars", f"data.data_dir={tmp_path}"])
    dm = TextDataModule(cfg.data)
    dm.setup()
    # validation/test made from train by a stratified split
    assert dm.stats["train_size"] + dm.stats["validation_size"] + dm.stats["test_size"] == 300
    assert dm.labels == sorted(dm.labels) and len(dm.labels) == 5
    batch = next(iter(dm.train_dataloader()))
    assert batch["ids"].shape[0] == batch["lengths"].shape[0] == batch["labels"].shape[0]
    assert int(batch["lengths"].max()) == batch["ids"].shape[1] <= cfg.data.max_length


def test_missing_column_names_existing(small_csvs, tmp_path):
    cfg = load_config(None, [f"data.train_file={small_csvs / 'train.csv'}", "data.text_field=body",
                             "data.label_field=stars", f"data.data_dir={tmp_path}"])
    with pytest.raises(UserError, match=r"no column 'body' \(columns: review, stars\)"):
        TextDataModule(cfg.data).setup()


def test_unseen_label_in_test(small_csvs, tmp_path):
    bad = tmp_path / "test.csv"
    bad.write_text("review,stars\nsome text here,weather\n")
    cfg = load_config(None, [f"data.train_file={small_csvs / 'train.csv'}", f"data.test_file={bad}",
                             "data.text_field=review", "data.label_field=stars",
                             f"data.data_dir={tmp_path}"])
    with pytest.raises(UserError, match="'weather' that never occur in train"):
        TextDataModule(cfg.data).setup()


def test_hub_source_fails_fast_offline(tmp_path):
    cfg = load_config(None, ["data.source=hf:imdb", f"data.data_dir={tmp_path}"])
    with pytest.raises(UserError, match="hub dataset 'imdb' could not be loaded"):
        TextDataModule(cfg.data).setup()


def test_dataloader_workers_get_the_memory_mapped_ids_not_a_copy(tmp_path):
    """The training split pickles (to DataLoader workers) as a file reference, and a worker
    gives the same batches as the main process."""
    import pickle

    from benchmarks.bench_scale import make_corpus

    folder = make_corpus(20_000, seed=0, eval_size=500, data_dir=tmp_path, log=lambda *_: None)
    cfg = load_config(None,
                      [f"data.train_file={folder / 'train.jsonl'}",
                       f"data.validation_file={folder / 'validation.jsonl'}",
                             f"data.test_file={folder / 'test.jsonl'}", f"data.data_dir={tmp_path}",
                       "data.num_proc=1"])
    dm = TextDataModule(cfg.data)
    dm.setup()
    train = dm.splits["train"]
    files = [f["filename"] for f in train.cache_files]
    assert files and sum(Path(f).stat().st_size for f in files) > 1_000_000
    assert len(pickle.dumps(train)) < 20_000  # a path, not the data
    main = [b["ids"].tolist() for b in dm.loader("train")][:20]
    dm.cfg.num_workers = 1
    worker = [b["ids"].tolist() for b in dm.loader("train")][:20]
    assert main == worker


def test_arrow_encode_counts_and_lengths_equal_the_python_reference():
    from textlstm.batches.datamodule import encode
    from textlstm.data.columns import count_tokens, iter_column, token_counts

    rows = [{"tokens": ["the", "film", "the"], "label": "pos"}, {"tokens": [], "label": "neg"},
            {"tokens": ["<pad>", "<unk>", "unseen", "film"], "label": "neg"},
            {"tokens": ["a"] * 50, "label": "pos"}]
    from datasets import Dataset

    ds = Dataset.from_list(rows)
    vocab = Vocab.from_counts(count_tokens(ds), min_freq=1)
    assert vocab.itos == Vocab.build(iter_column(ds, "tokens")).itos
    out = encode(ds, vocab, ["neg", "pos"], max_length=8)
    assert [list(x) for x in out["ids"]] == [vocab.encode(r["tokens"], 8) for r in rows]
    assert list(out["length"]) == [3, 0, 4, 8] and list(out["label_id"]) == [1, 0, 0, 1]
    # literal "<pad>" and "<unk>" both read as <unk>, never padding
    assert out[2]["ids"][:2] == [1, 1]
    assert token_counts(ds).tolist() == [3, 0, 4, 50]
