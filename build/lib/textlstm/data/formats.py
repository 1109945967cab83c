"""Local file formats: which reader a file needs, how many rows it has, its texts one by one.

One table for every place that opens a user's file (training data, `evaluate --data`,
`predict --input`, streamed corpora), so a format is accepted everywhere or nowhere."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from textlstm.core.errors import UserError

# suffix -> `datasets` builder
BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json",
            ".parquet": "parquet", ".pq": "parquet"}


def builder_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in BUILDERS:
        raise UserError(f"data file {path} has an unknown format '{suffix}'; use .csv, .tsv, "
                        ".jsonl, .json or .parquet.")
    return BUILDERS[suffix]


def loader_for(path: Path) -> tuple[str, dict]:
    """The `datasets` builder and its arguments for a local file, after checking it exists and
    is not empty."""
    if not path.is_file():
        raise UserError(f"data file {path} does not exist; check the path in data.*_file or "
                        "--data.")
    if path.stat().st_size == 0:
        raise UserError(f"data file {path} is empty; give a file with a header and rows.")
    return builder_for(path), ({"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {})


def count_rows(path: Path) -> int | None:
    """Rows of a local file without reading it into memory (None for a JSON array)."""
    suffix = path.suffix.lower()
    if BUILDERS.get(suffix) == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if suffix == ".json":
        return None
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    lines += last != b"\n"
    return lines - (suffix in (".csv", ".tsv"))  # header


def iter_texts(path: Path, text_field: str) -> Iterator[str]:
    """Texts one at a time (constant memory) from .csv/.tsv (column `text_field`), .jsonl (key
    `text_field`, or a bare JSON string per line) or any other file (a text per line)."""
    if not path.is_file():
        raise UserError(f"input file {path} does not exist; pass an existing .txt, .csv or .jsonl "
                        "file.")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        yield from _csv_texts(path, text_field, "\t" if suffix == ".tsv" else ",")
    elif BUILDERS.get(suffix) == "json":
        yield from _jsonl_texts(path, text_field)
    else:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                yield line.rstrip("\n")


def _csv_texts(path: Path, text_field: str, delimiter: str) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        if not reader.fieldnames or text_field not in reader.fieldnames:
            raise UserError(f"input file {path} has no column '{text_field}' (columns: "
                            f"{', '.join(reader.fieldnames or [])}); set data.text_field=<column>.")
        for row in reader:
            yield row[text_field] or ""


def _jsonl_texts(path: Path, text_field: str) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise UserError(f"input file {path} line {n} is not valid JSON; use one JSON "
                                "object per line.") from None
            value = obj.get(text_field) if isinstance(obj, dict) else obj
            if not isinstance(value, str):
                raise UserError(f"input file {path} line {n}: '{text_field}' is not a string; "
                                f"give text in the '{text_field}' key.")
            yield value
