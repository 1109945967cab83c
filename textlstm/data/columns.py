"""Reading one column of a (memory-mapped) Arrow dataset without the whole corpus as Python lists.

`ds["x"]` turns a column of millions of rows into Python objects (about 36 bytes per int and
far more per string); these helpers read Arrow in batches or straight into numpy instead.
"""

from __future__ import annotations

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
    return table.column(name).to_numpy()
