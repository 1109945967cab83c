"""`textlstm predict RUN_OR_BUNDLE TEXT... | --input FILE [--output FILE]`: one JSON line per text.

Input files are read, labelled and written a chunk at a time (constant memory, any size);
`--output` appears whole or not at all."""

from __future__ import annotations

import sys
from pathlib import Path

from textlstm.core.errors import UserError
from textlstm.core.io import atomic_write
from textlstm.data.formats import iter_texts
from textlstm.serving.loader import load


def predict(run_dir: str | Path, texts: list[str] | None = None, input_file: str | None = None,
            output: str | None = None, overwrite: bool = False,
            overrides: list[str] | None = None, min_labels: int = 0) -> int:
    """Label `texts` or the texts of `input_file`; JSON lines to `output` or stdout. Returns the
    number of texts labelled. `min_labels` (multi-label runs): at least that many labels per
    text, the most probable ones filling up (a multi-class answer always has one)."""
    if min_labels < 0:
        raise UserError(f"--min-labels is {min_labels}; use 0 (labels at their thresholds only) "
                        "or more.")
    if input_file and texts:
        raise UserError("predict takes texts or --input, not both; choose one.")
    if not input_file and not texts:
        raise UserError("predict needs texts to label; pass them as arguments or with --input "
                        "FILE.")
    if output and Path(output).exists() and not overwrite:
        raise UserError(f"output file {output} already exists; pass --overwrite to replace it or "
                        "choose another name.")
    pred = load(run_dir, overrides)
    source = iter_texts(Path(input_file), pred.text_field) if input_file else texts
    blocks = pred.predict_blocks(source, min_labels=min_labels)  # a chunk's lines at a time
    n = 0
    if not output:
        for count, block in blocks:
            sys.stdout.write(block)
            n += count
        return n
    from tqdm import tqdm

    # the bar shows on a terminal only (stderr), never in pipes or logs
    with atomic_write(output, suffix=".partial") as fh, tqdm(unit=" texts", disable=None,
                                                             file=sys.stderr) as bar:
        for count, block in blocks:
            fh.write(block)
            n += count
            bar.update(count)
    print(f"wrote {n} predictions to {output}", file=sys.stderr)
    return n

