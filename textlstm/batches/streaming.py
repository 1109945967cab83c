"""`data.streaming=true`: train from a `datasets` IterableDataset that never lands on disk.

For sources larger than the local disk. What changes against the default (prepared) path:

- The vocabulary and the label set come from the first `data.streaming_sample` training
  examples; a later label outside them stops training with a clear error.
- Validation and test are read in full and prepared as usual (they are evaluation-sized). A
  source without them gets them from that first sample (stratified), and the stream skips
  those rows.
- Shuffling is approximate: the stream is shuffled inside a buffer of `data.shuffle_buffer`
  examples (and by shard order when the source has several files), never globally.
- Bucketing is approximate: texts are sorted by length inside a window of 50 batches of the
  shuffled stream, then those batches are shuffled. Lengths there are whitespace word counts,
  because every rank reads the whole stream to agree on the batches, and only tokenizes its own.
- Under DDP every rank forms the same batches and keeps every world_size-th one, plus repeats
  at the end so all ranks step the same number of times. DataLoader workers share a rank's
  batches the same way.
- An epoch is one pass over the stream. The cosine schedule needs its length: it is counted
  from the files (lines of JSON Lines/CSV, Parquet metadata) or the hub's split sizes, and
  the config is refused when it cannot be known (use optim.scheduler=plateau or none).
- Resuming a streamed run restarts the interrupted epoch from the start of its stream.
- Not supported with streaming: data.max_tokens_per_batch, data.bucketing=exact.
"""

from __future__ import annotations

import logging
import math
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict, IterableDataset
from torch.utils.data import DataLoader

from textlstm.batches.collate import collate
from textlstm.batches.datamodule import TextDataModule
from textlstm.core.errors import UserError
from textlstm.core.hardware import rank_and_world
from textlstm.data.formats import count_rows, loader_for
from textlstm.data.hub import check_train_split, open_hub
from textlstm.data.sources import (
    EMBEDDED,
    SPLITS,
    cache_dir_for,
    prepare_embedded,
    read_file,
    standardize,
    stratified_split,
)
from textlstm.tokens.tokenize import encode_texts

BUCKET_FACTOR = 50  # batches per sorting window
log = logging.getLogger("textlstm")


# ---------------------------------------------------------------- opening the stream


def _standard_stream(stream: IterableDataset, text_field: str, label_field: str,
                     where: str) -> IterableDataset:
    """text/label as strings, as `sources.standardize` does for prepared data."""
    try:
        first = next(iter(stream))
    except StopIteration:
        raise UserError(f"{where} has no rows; give a source with at least one example.") from None
    for field, key in ((text_field, "data.text_field"), (label_field, "data.label_field")):
        if field not in first:
            raise UserError(f"{where} has no column '{field}' (columns: {', '.join(first)}); set "
                            f"{key} to one of them.")
    feat = (stream.features or {}).get(label_field) if stream.features else None
    names = feat.int2str if feat is not None and hasattr(feat, "int2str") else None

    def to_str(ex):
        label = ex[label_field]
        label = names(label) if names is not None and isinstance(label, int) else label
        return {"text": "" if ex[text_field] is None else str(ex[text_field]),
                "label": None if label is None else str(label).strip()}

    return stream.map(to_str, remove_columns=list(first))


def open_stream(cfg) -> tuple[IterableDataset, dict[str, Dataset], int | None, list[str]]:
    """(training stream, prepared evaluation splits found, training rows if known, label names
    the source declares)."""
    from datasets import load_dataset

    if cfg.source in EMBEDDED or cfg.source == "files":
        if cfg.source in EMBEDDED:
            folder = prepare_embedded(cfg.source, cfg.data_dir, cfg.validation_fraction,
                                      cfg.test_fraction,
                                      cfg.split_seed)
            files = {s: folder / f"{s}.jsonl" for s in SPLITS}
            text_field, label_field = "text", "label"
        else:
            files = {s: Path(cfg[f"{s}_file"]) for s in SPLITS if cfg.get(f"{s}_file")}
            text_field, label_field = cfg.text_field, cfg.label_field
        train = files["train"]
        builder, kwargs = loader_for(train)
        stream = load_dataset(builder, data_files=str(train), split="train", streaming=True,
                              **kwargs)
        stream = _standard_stream(stream, text_field, label_field, f"data file {train}")
        evals = {s: standardize(read_file(files[s], cache_dir_for(cfg)), text_field, label_field,
                                f"data file {files[s]}")
                 for s in ("validation", "test") if s in files}
        return stream, evals, count_rows(train), []
    available = open_hub(cfg.source, streaming=True)  # splits by name, nothing read yet
    check_train_split(cfg.source, available, cfg.hf_splits["train"])
    streams = {s: available[hub]
               for s, hub in cfg.hf_splits.items() if s in SPLITS and hub in available}
    feat = (streams["train"].features or {}).get(cfg.label_field)
    names = list(feat.names) if feat is not None and hasattr(feat, "names") else []
    std = {s: _standard_stream(st, cfg.text_field, cfg.label_field, f"hub dataset split '{s}'")
           for s, st in streams.items()}
    evals = {s: Dataset.from_list(list(std[s])) for s in ("validation", "test") if s in std}
    info = streams["train"].info.splits
    hub_train = cfg.hf_splits["train"]
    rows = info[hub_train].num_examples if info and hub_train in info else None
    return std["train"], evals, rows, names


# ---------------------------------------------------------------- batches from the stream


class StreamBatches(torch.utils.data.IterableDataset):
    """Padded training batches (`collate`'s format) from a text/label stream; see the module doc."""

    def __init__(self, stream: IterableDataset, vocab, labels: list[str], cfg, seed: int,
                 rows: int | None):
        self.stream, self.vocab, self.labels = stream, vocab, list(labels)
        self.index = {lab: i for i, lab in enumerate(self.labels)}
        self.batch_size, self.max_length = cfg.batch_size, cfg.max_length
        self.lowercase = cfg.lowercase
        self.buffer, self.sample = cfg.shuffle_buffer, cfg.streaming_sample
        self.seed, self.rows, self.epoch = seed, rows, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @staticmethod
    def _world() -> tuple[int, int]:
        return rank_and_world()

    def __len__(self) -> int:
        if self.rows is None:
            raise TypeError("the stream's length is unknown")
        return math.ceil(math.ceil(self.rows / self.batch_size) / self._world()[1])

    def _encode(self, texts: list[str], labels: list[str]) -> dict[str, torch.Tensor]:
        ids = encode_texts(texts, self.vocab, self.lowercase, self.max_length)
        if any(lab in (None, "") for lab in labels):
            raise UserError("the training stream has a row with an empty label; fill or drop such "
                            "rows.")
        try:
            label_ids = [self.index[lab] for lab in labels]
        except KeyError as e:
            raise UserError(f"the training stream has the label {e.args[0]!r}, which is not among "
                            f"the first {self.sample} examples the label set was taken from; raise "
                            "data.streaming_sample or remove those rows.") from None
        return collate([{"ids": x, "label_id": y} for x, y in zip(ids, label_ids, strict=True)])

    def __iter__(self):
        rank, world = self._world()
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        stream = self.stream.shuffle(seed=self.seed, buffer_size=self.buffer)
        stream.set_epoch(self.epoch)  # every rank and worker: the same order
        rng = np.random.default_rng((self.seed, self.epoch))
        j = 0  # batches formed so far, on every rank alike
        spare = None
        # `.iter` reads the whole stream in every worker (iterating the stream directly would
        # split it by shards among DataLoader workers, and the ranks must all see every row)
        for window in stream.iter(batch_size=self.batch_size * BUCKET_FACTOR):
            texts, labels = window["text"], window["label"]
            order = np.argsort([len(t.split()) for t in texts], kind="stable")
            cuts = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
            for b in rng.permutation(len(cuts)).tolist():
                mine = j % world == rank and (j // world) % workers == worker
                j += 1
                if not mine:
                    continue
                batch = self._encode([texts[i] for i in cuts[b]], [labels[i] for i in cuts[b]])
                spare = spare or batch
                yield batch
        # the same number of steps on every rank (DDP all-reduces each one): repeat a batch
        have, need = len(range(rank, j, world)), math.ceil(j / world)
        for k in range(have, need):
            if k % workers == worker and spare is not None:
                yield spare


def _warn_if_grouped(labels: list[str], buffer: int) -> None:
    """A stream sorted or grouped by label cannot be shuffled within a buffer: say so early."""
    n = len(labels)
    if n < 100:
        return
    changes = sum(a != b for a, b in zip(labels, labels[1:], strict=False))
    share = np.unique(labels, return_counts=True)[1] / n
    expected = (n - 1) * (1 - float((share**2).sum()))  # label changes in a shuffled stream
    if expected > 0 and changes < expected / 2:
        log.warning("the first %d training rows come in runs of one label (%d label changes where "
                    "a shuffled stream has about %d); streaming shuffles only within "
                    "data.shuffle_buffer=%d rows, so shuffle the source first or raise "
                    "data.shuffle_buffer", n, changes, expected, buffer)


class _EpochLoader(DataLoader):
    """Tells the stream the trainer's epoch before each pass (Lightning only tells samplers)."""

    def __init__(self, dataset: StreamBatches, epoch_of, **kw):
        super().__init__(dataset, batch_size=None, **kw)
        self._epoch_of = epoch_of

    def __iter__(self):
        self.dataset.set_epoch(self._epoch_of())
        return super().__iter__()


class StreamingDataModule(TextDataModule):
    """The training split streams; validation/test, vocabulary and labels are prepared from
    what is read up front (see the module doc)."""

    def prepare_data(self) -> None:
        pass  # open_stream prepares an embedded set's files when it needs them

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        c = self.cfg
        stream, evals, rows, names = open_stream(c)
        sample = Dataset.from_list(list(islice(iter(stream), c.streaming_sample)))
        empty = sum(1 for lab in sample["label"] if lab in (None, ""))  # the sample is small
        if empty:
            raise UserError(f"the first {len(sample)} training rows have {empty} empty label(s) in "
                            f"'{c.label_field}'; fill or drop them.")
        _warn_if_grouped(sample["label"], c.shuffle_buffer)
        missing = [s for s in ("validation", "test") if s not in evals]
        train_sample = sample
        if missing:  # cut the missing splits from the sample; the stream skips those rows
            idx = stratified_split(sample["text"], sample["label"],
                                   c.validation_fraction if "validation" in missing else 0.0,
                                   c.test_fraction if "test" in missing else 0.0, c.split_seed)
            for s in missing:
                evals[s] = sample.select(idx[s])
            held = {int(i) for s in missing for i in idx[s]}
            stream = stream.filter(lambda _, i: i not in held, with_indices=True)
            rows = rows - len(held) if rows is not None else None
            train_sample = sample.select(idx["train"])
        for s in ("validation", "test"):
            if len(evals[s]) == 0:
                raise UserError(f"the {s} split is empty; give a {s} file or raise "
                                "data.streaming_sample.")
        if self.labels is None:
            self.labels = sorted(set(names) | set(sample.unique("label")))
        self._train_name = (f"the first {len(sample)} training rows (the labels' source; raise "
                            "data.streaming_sample to read more)")
        self._build(DatasetDict({"train": train_sample,
                                 **{s: evals[s] for s in ("validation", "test")}}))
        self.stats["train_size"] = rows
        self.stats["train_sample_size"] = len(train_sample)
        self.stream = StreamBatches(stream, self.vocab, self.labels, c, self.seed, rows)

    def train_dataloader(self):
        def epoch_of() -> int:
            trainer = getattr(self, "trainer", None)
            return trainer.current_epoch if trainer is not None else 0

        # no persistent workers: each pass must pick up the new epoch
        return _EpochLoader(self.stream, epoch_of, num_workers=self.cfg.num_workers,
                            pin_memory=torch.cuda.is_available())
