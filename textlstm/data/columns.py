"""Reading one column of a (memory-mapped) Arrow dataset without the whole corpus as Python lists.

`ds["x"]` turns a column of millions of rows into Python objects (about 36 bytes per int and
far more per string); these helpers read Arrow in batches or straight into numpy instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np
from datasets import Dataset


def iter_column(ds: Dataset, name: str, batch_size: int = 10_000) -> Iterator:
    """A column row by row, read from the Arrow cache 10k rows at a time."""
    for batch in ds.select_columns([name]).iter(batch_size=batch_size):
        yield from batch[name]


def column_array(ds: Dataset, name: str) -> np.ndarray:
    """A scalar column (lengths, label ids) as one numpy array, copied from Arrow (respects
    a `select`ed subset): 4 bytes per row for int32."""
    table = ds.select_columns([name]).with_format("arrow")[:]
    return np.array(table.column(name).to_numpy())  # a writable copy (Arrow's view is read-only)


def matrix_column(ds: Dataset, name: str) -> np.ndarray:
    """A fixed-size list column (multi-label `label_hot`) as one (N, C) numpy array."""
    col = ds.select_columns([name]).with_format("arrow")[:].column(name).combine_chunks()
    width = col.type.list_size
    return np.array(col.flatten().to_numpy(zero_copy_only=False)).reshape(-1, width)  # writable


def arrow_batches(ds: Dataset, name: str, batch_size: int = 100_000):
    """A column as Arrow arrays of `batch_size` rows (no Python objects per row)."""
    for table in ds.select_columns([name]).with_format("arrow").iter(batch_size=batch_size):
        yield table.column(name)


def token_counts(ds: Dataset, name: str = "tokens") -> np.ndarray:
    """Tokens per text (int32), computed in Arrow."""
    import pyarrow.compute as pc

    parts = [pc.list_value_length(col).to_numpy(zero_copy_only=False) for col in arrow_batches(ds,
                                                                                               name)]
    return np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)


def count_tokens(ds: Dataset, name: str = "tokens") -> Counter:
    """How often each token occurs in a column of token lists (counted in Arrow per 100k rows)."""
    import pyarrow.compute as pc

    counts: Counter = Counter()
    for col in arrow_batches(ds, name):
        vc = pc.value_counts(pc.list_flatten(col))
        counts.update(dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(),
                               strict=True)))
    return counts
