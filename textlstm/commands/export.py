"""`textlstm export RUN --out DIR [--quantize none|int8] [--opset 17] [--overwrite]`: a run
folder -> a bundle folder that labels texts on onnxruntime without torch (serving/export.py
does the work and the check; serving/bundle.py reads the result)."""

from __future__ import annotations

from pathlib import Path

from textlstm.serving.export import CHECK_TEXTS, export_run


def export(run_dir: str | Path, out: str | Path, quantize: str = "none", opset: int = 17,
           overwrite: bool = False, max_texts: int = CHECK_TEXTS, log=print) -> dict:
    """Export `run_dir` to the bundle folder `out`; returns what export_check.json holds.
    Raises UserError (and leaves nothing at `out`) if the bundle fails its check."""
    from textlstm.core.hardware import set_threads
    from textlstm.core.logs import quiet_libraries

    quiet_libraries()
    set_threads(0)  # the cores this process may use, not the machine's count
    return export_run(run_dir, out, quantize, opset, overwrite, max_texts, log)
