"""The LightningDataModule: sources -> tokens -> vocab/labels -> ids -> bucketed batches."""

from __future__ import annotations

import hashlib
import json
import logging
import time

import lightning as L
import numpy as np
import torch
from datasets import Dataset, DatasetDict
from torch.utils.data import DataLoader

from textlstm.batches.collate import collate
from textlstm.batches.recipe import pick as pick_recipe
from textlstm.batches.sampler import BucketBatchSampler, class_sampling_weights
from textlstm.core.errors import UserError
from textlstm.data.columns import column_array, count_tokens, iter_column, token_counts
from textlstm.data.multilabel import decode, label_set, multi_hot
from textlstm.data.sources import EMBEDDED, SPLITS, load_splits, prepare_embedded
from textlstm.tokens.tokenize import fingerprint, tokenize_splits
from textlstm.tokens.vocab import Vocab

log = logging.getLogger("textlstm")


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False).encode()).hexdigest()[:16]


def check_labels(dd: DatasetDict, labels: list[str], train_name: str = "train",
                 multilabel: bool = False) -> None:
    known = set(labels)
    for split in SPLITS:
        if split == "train" or split not in dd:
            continue
        found = dd[split].unique("label")
        if multilabel:
            found = [lab for s in found for lab in decode(s)]
        unseen = sorted(set(found) - known)
        if unseen:
            shown = ", ".join(repr(u) for u in unseen[:5])
            raise UserError(f"the {split} split has label(s) {shown} that never occur in "
                            f"{train_name}; add training examples for them or drop those rows.")


def encode(ds: Dataset, vocab: Vocab, labels: list[str] | None, max_length: int,
           multilabel: bool = False) -> Dataset:
    """tokens -> `ids` (int32, truncated to max_length), `length`, and `label_id` if labelled
    (`multilabel`: `label_hot` instead, a 0/1 int8 per label in `labels` order).

    Vectorized in Arrow (a token's id is its position in the vocabulary, found by a hash
    lookup in C++): about 10x faster than a Python loop over the tokens of millions of texts.
    Same result as `vocab.encode`, which `tests/test_data.py` checks."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasets import Features, Sequence, Value

    with_labels = labels is not None and "label" in ds.column_names
    # <pad> (id 0) is left out of the lookup, so a literal "<pad>" in a text reads as <unk>
    words = pa.array(vocab.itos[1:], type=pa.string())
    label_set = pa.array(list(labels or []), type=pa.string())

    def fn(table: pa.Table) -> pa.Table:
        tokens = pc.list_slice(table["tokens"].combine_chunks(), 0, max_length)
        lengths = pc.list_value_length(tokens).fill_null(0).cast(pa.int32())
        position = pc.index_in(pc.list_flatten(tokens), value_set=words)
        ids = pc.fill_null(pc.add(position, 1), 1).cast(pa.int32())  # not found -> 1 (<unk>)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths.to_numpy(zero_copy_only=False))]),
                           pa.int32())
        out = {"ids": pa.ListArray.from_arrays(offsets, ids), "length": lengths}
        if with_labels and multilabel:
            out["label_hot"] = multi_hot(table["label"].combine_chunks(), list(labels))
        elif with_labels:
            out["label_id"] = pc.index_in(table["label"], value_set=label_set).cast(pa.int32())
        return pa.table(out)

    label_feature = ({"label_hot": Sequence(Value("int8"), length=len(labels))} if multilabel
                     else {"label_id": Value("int32")})
    features = Features({"ids": Sequence(Value("int32")), "length": Value("int32"),
                         **(label_feature if with_labels else {})})
    fp = fingerprint(ds._fingerprint, "encode-arrow", _digest(vocab.itos), _digest(labels),
                     max_length, with_labels, multilabel)
    return ds.with_format("arrow").map(fn, batched=True, batch_size=20_000,
                                       remove_columns=ds.column_names,
                                       features=features, new_fingerprint=fp,
                                       desc="encoding").with_format(None)


class TextDataModule(L.LightningDataModule):
    """`cfg` is the config's `data` section. After `setup()`: `vocab`, `labels`, `splits`."""

    def __init__(self, cfg, seed: int = 42, vocab: Vocab | None = None,
                 labels: list[str] | None = None, task: str = "multiclass",
                 long_text: str = "truncate", wide_words: bool = False):
        """`long_text` is the config's `model.long_text`; after `setup()` it is decided
        (truncate or chunks) and `picked` holds what the auto recipe chose (batches/recipe.py).
        `wide_words` (`model.wide=tfidf`): the vocabulary also keeps the words seen fewer than
        `data.min_freq` times, for the TF-IDF part; `network_vocab_size` then counts the ids
        the network reads (the others it reads as <unk>)."""
        super().__init__()
        self.cfg = cfg
        self.long_text = long_text
        self.picked: dict = {}
        self.seed = seed
        self.multilabel = task == "multilabel"
        self.wide_words = wide_words
        self.network_vocab_size: int | None = None
        self.vocab = vocab
        self.labels = labels
        self.splits: DatasetDict | None = None
        self.tokens: DatasetDict | None = None
        self.stats: dict = {}
        self.timings: dict[str, float] = {}  # seconds per preparation step (make bench-scale)
        self._train_name = "train"  # how errors name the rows labels and vocabulary come from

    def prepare_data(self) -> None:
        # runs once (rank 0): write the embedded splits under data/ if they are missing
        if self.cfg.source in EMBEDDED:
            prepare_embedded(self.cfg.source, self.cfg.data_dir, self.cfg.validation_fraction,
                             self.cfg.test_fraction, self.cfg.split_seed)

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        t0 = time.perf_counter()
        raw = load_splits(self.cfg, self.multilabel)
        self.timings["load"] = time.perf_counter() - t0
        self._build(raw)

    def _build(self, raw: DatasetDict) -> None:
        """text/label splits -> tokens, labels, vocabulary (from train), ids, stats."""
        c = self.cfg
        t0 = time.perf_counter()
        self.tokens = tokenize_splits(raw, c.lowercase, c.num_proc)
        self.timings["tokenize"] = (t1 := time.perf_counter()) - t0
        self._drop_empty_training_texts()
        if self.labels is None:
            self.labels = (label_set(raw["train"]) if self.multilabel
                           else sorted(raw["train"].unique("label")))
        if len(self.labels) < 2:
            only = repr(self.labels[0]) if self.labels else "none"
            raise UserError(f"the training split has only one label ({only}); "
                            "a classifier needs at least two.")
        check_labels(raw, self.labels, self._train_name, self.multilabel)
        if self._needs_recipe():
            self.picked = pick_recipe(c, self.long_text, token_counts(self.tokens["train"]))
            self.long_text = self.picked["long_text"]
            log.info("auto recipe: %s", self.picked)
        counts = count_tokens(self.tokens["train"]) if (self.vocab is None or self.wide_words) \
            else None
        if self.vocab is None:
            self.vocab = Vocab.from_counts(counts, 1 if self.wide_words else c.min_freq,
                                           c.max_vocab_size)
        if self.wide_words:
            # a linear model gains from words seen once (a rare class's name may be one); the
            # network's min_freq stays: those words sort last (Vocab.from_counts), so the
            # network's ids are the very ones it would have without the TF-IDF part
            self.network_vocab_size = 2 + sum(counts.get(w, 0) >= c.min_freq
                                              for w in self.vocab.itos[2:])
        self.timings["vocab"] = (t2 := time.perf_counter()) - t1
        self.splits = DatasetDict({s: encode(d, self.vocab, self.labels, c.max_length,
                                             self.multilabel)
                                   for s, d in self.tokens.items()})
        self.timings["encode"] = (t3 := time.perf_counter()) - t2
        self.stats = self._stats(raw)
        self.timings["stats"] = time.perf_counter() - t3

    def _needs_recipe(self) -> bool:
        c = self.cfg
        return "auto" in (self.long_text, c.batch_size, c.chunk_length, c.max_chunks,
                          c.max_tokens_per_batch)

    def _drop_empty_training_texts(self) -> None:
        """Empty or whitespace-only texts teach nothing: drop them from train (with a warning);
        validation/test keep theirs, every row there must be scored."""
        train = self.tokens["train"]
        lengths = token_counts(train)
        empty = int((lengths == 0).sum())
        if not empty:
            return
        if empty == len(lengths):
            raise UserError(f"the training split has no text: all {empty} texts are empty or "
                            "whitespace; check data.text_field.")
        log.warning("dropped %d empty or whitespace-only training text(s) of %d", empty,
                    len(lengths))
        self.tokens["train"] = train.select(np.flatnonzero(lengths > 0))

    def _stats(self, raw: DatasetDict) -> dict:
        out = {"name": self.cfg.source, "vocab_size": len(self.vocab), "labels": list(self.labels)}
        for s in SPLITS:
            out[f"{s}_size"] = len(raw[s])
        for s in ("validation", "test"):
            n = oov = 0
            for doc in iter_column(self.tokens[s], "tokens"):
                n += len(doc)
                oov += sum(t not in self.vocab for t in doc)
            out[f"{s}_oov_rate"] = round(oov / max(1, n), 4)
        return out

    def train_class_counts(self) -> np.ndarray:
        """Training texts per label, in label order (multi-class)."""
        ids = column_array(self.splits["train"], "label_id")
        return np.bincount(ids, minlength=len(self.labels))

    def loader(self, split: str, shuffle: bool | None = None) -> DataLoader:
        ds = self.splits[split]
        train = split == "train" if shuffle is None else shuffle
        sampler = BucketBatchSampler(
            column_array(ds, "length"),
            self.cfg.batch_size if train else self.cfg.eval_batch_size,
            max_tokens=self.cfg.max_tokens_per_batch if train else None,
            shuffle=train,
            seed=self.seed,
            exact=train and self.cfg.bucketing == "exact",
            weights=(class_sampling_weights(column_array(ds, "label_id"), self.cfg.class_sampling)
                     # auto, unresolved (train() resolves it: recipe.resolve_class_sampling)
                     # draws as none
                     if train and self.cfg.class_sampling in ("sqrt", "balanced") else None),
        )
        trainer = getattr(self, "trainer", None)
        epoch = trainer.current_epoch if trainer is not None else 0
        generator = None
        if train and trainer is not None:
            # with a token budget the batch count changes with the shuffle, so the trainer
            # reloads this loader every epoch (training/trainer.py) and counts its batches before
            # it tells the sampler the epoch: tell it now, so the count is this epoch's
            sampler.set_epoch(epoch)
        if train and self.cfg.max_tokens_per_batch is not None:
            # each reload makes one more iterator, and an iterator draws its seed from torch's
            # global generator unless the loader has its own: a resumed run reloads at other
            # moments than an uninterrupted one, and its dropout masks would drift
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        # workers default to 0: on 2 cores a worker process competes with torch's threads
        # (`make bench` measures it); pinned memory only helps host -> GPU copies
        return DataLoader(ds, batch_sampler=sampler, collate_fn=collate,
                          num_workers=self.cfg.num_workers,
                          persistent_workers=self.cfg.num_workers > 0,
                          pin_memory=torch.cuda.is_available(), generator=generator)

    def train_dataloader(self):
        return self.loader("train")

    def val_dataloader(self):
        return self.loader("validation")

    def test_dataloader(self):
        return self.loader("test")
