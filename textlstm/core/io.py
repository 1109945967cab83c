"""Writing files so that a reader, or a kill, never sees half of one.

Every file textlstm writes for a user (run folders, predictions, prepared splits, reports,
figures, benchmark results) goes through `atomic_write`: the bytes go to a temporary file beside the
target, which is renamed over the target only once complete. A crash or Ctrl-C leaves the
previous file (or none), never a torn one, and removes the temporary file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", *, fsync: bool = False, suffix: str = ".tmp",
                 **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it to `path` when the block ends cleanly.

    `fsync`: flush to disk before the rename (checkpoints: a power cut must not leave an empty
    file where the old checkpoint was). The temporary file is `<name><suffix>`; processes that
    may write the same target at once pass a suffix with their pid."""
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as fh:
        fh.write(text)


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def save_figure(fig: Any, target: str | Path | IO[bytes], **savefig_kwargs: Any) -> None:
    """A matplotlib figure written atomically to a path (the format follows the suffix, as
    `fig.savefig(path)` picks it; png when there is none), or into a binary buffer."""
    if hasattr(target, "write"):  # io.BytesIO: nothing on disk to tear
        fig.savefig(target, **savefig_kwargs)
        return
    savefig_kwargs.setdefault("format", Path(target).suffix.lstrip(".").lower() or "png")
    with atomic_write(target, "wb") as fh:
        fig.savefig(fh, **savefig_kwargs)
