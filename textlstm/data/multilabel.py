"""Multi-label columns (`task: multilabel`): reading a label cell into a set of labels.

A cell holds a JSON list of strings (`["sport", "money"]`, a list column in JSON Lines or
Parquet, or that text in a CSV cell) or a string split on `data.label_separator`
(`sport|money`); an empty list, an empty string or a missing cell means "no label".

Every split keeps its `label` column as one string per row, the *canonical* form: a JSON list
of the row's distinct labels, sorted (`["money", "sport"]`, `[]` for none). Equal label sets
are then equal strings, so Arrow's unique/value_counts/index_in work on them as on
multi-class labels, and a cached split never depends on how its file spelled the labels.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from textlstm.core.errors import UserError

# what a multi-label file written with another separator most likely used instead
COMMON_SEPARATORS = (",", ";", "|")


class NotAStringList(ValueError):
    """A label cell that is neither a string nor a list of strings."""


def parse_labels(value, separator: str) -> list[str]:
    """One label cell -> its labels (stripped, blanks dropped, in the cell's order)."""
    if value is None or (isinstance(value, float) and value != value):  # missing cell, NaN
        return []
    if isinstance(value, str):
        text = value.strip()
        if not (text.startswith("[") and text.endswith("]")):
            return [p.strip() for p in text.split(separator) if p.strip()]
        try:
            value = json.loads(text)
        except ValueError:
            raise NotAStringList(value) from None
    if isinstance(value, list | tuple):
        if not all(isinstance(x, str) for x in value):
            raise NotAStringList(value)
        return [x.strip() for x in value if x.strip()]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]  # a numeric label column, as multi-class reads it
    raise NotAStringList(value)


def canonical(labels: Iterable[str]) -> str:
    return json.dumps(sorted(set(labels)), ensure_ascii=False)


def canonical_cell(value, separator: str, where: str, field: str, row: int) -> str:
    try:
        return canonical(parse_labels(value, separator))
    except NotAStringList:
        shown = repr(value)[:80]
        raise UserError(f"{where} has a label in '{field}' at row {row + 1} that is not a list "
                        f"of strings ({shown}); write labels as a JSON list of strings or as one "
                        f"string split on data.label_separator ('{separator}').") from None


def check_separator(ds: Dataset, field: str, separator: str, where: str) -> None:
    """Refuse a training label column written with another separator: the separator never
    occurs in any label string while some contain a common one (`a,b` read with `|` would
    silently become one label named 'a,b'). JSON lists and list columns are not checked."""
    col = ds.select_columns([field]).with_format("arrow")[:][field]
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return
    col = pc.utf8_trim_whitespace(col.combine_chunks())
    plain = pc.filter(col, pc.invert(pc.fill_null(pc.starts_with(col, "["), True)))
    if len(plain) == 0 or pc.any(pc.match_substring(plain, separator)).as_py():
        return
    for other in COMMON_SEPARATORS:
        if other == separator:
            continue
        hits = pc.filter(plain, pc.match_substring(plain, other))
        if len(hits):
            raise UserError(f"{where}: no label in '{field}' contains data.label_separator "
                            f"'{separator}', but {len(hits)} contain '{other}' (e.g. "
                            f"{hits[0].as_py()!r}); set data.label_separator='{other}', or write "
                            f"the labels as JSON lists if '{other}' is part of a label's name.")


def decode(label_set: str) -> list[str]:
    return json.loads(label_set)


def label_set(ds: Dataset) -> list[str]:
    """Every label that occurs in a canonical `label` column, sorted."""
    return sorted({lab for s in ds.unique("label") for lab in decode(s)})


def label_counts(ds: Dataset) -> Counter:
    """Rows per label of a canonical `label` column (counted per distinct label set)."""
    vc = pc.value_counts(ds.select_columns(["label"]).with_format("arrow")[:]["label"])
    counts: Counter = Counter()
    for s, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
        for lab in decode(s):
            counts[lab] += n
    return counts


def rarest_label_strata(ds: Dataset) -> np.ndarray:
    """One stratum per row for the stratified split: the row's rarest label ("" for none).

    A stratum per label *set* would leave most sets of a many-label data set with one or two
    rows, which round to no validation or test rows at all; the rarest label gives every
    label its share of each split (the usual approximation of iterative stratification)."""
    col = ds.select_columns(["label"]).with_format("arrow")[:]["label"].combine_chunks()
    counts = label_counts(ds)
    sets = pc.unique(col)
    stratum = np.array([min(decode(s), key=lambda lab: (counts[lab], lab), default="")
                        for s in sets.to_pylist()], dtype=object)
    return stratum[pc.index_in(col, value_set=sets).to_numpy(zero_copy_only=False)]


def multi_hot(col: pa.Array, labels: list[str]) -> pa.Array:
    """Canonical label sets -> (N, C) 0/1 rows as Arrow fixed-size lists of int8."""
    index = {lab: i for i, lab in enumerate(labels)}
    sets = pc.unique(col)
    hot = np.zeros((len(sets), len(labels)), dtype=np.int8)  # (S, C), one row per distinct set
    for r, s in enumerate(sets.to_pylist()):
        for lab in decode(s):
            hot[r, index[lab]] = 1
    rows = hot[pc.index_in(col, value_set=sets).to_numpy(zero_copy_only=False)]  # (N, C)
    return pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), len(labels))
