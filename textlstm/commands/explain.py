"""`textlstm explain RUN "text" [--label L] [--out file.html|file.png] [--json]`: which words
decided, by integrated gradients; the HTML page also shows what the LSTM's gates did."""

from __future__ import annotations

import io
from pathlib import Path

from textlstm.core.errors import UserError
from textlstm.core.io import save_figure, write_text
from textlstm.models.explain import DEFAULT_STEPS, explain
from textlstm.serving.loader import load
from textlstm.tracking.attributions import attribution_figure, explanation_page
from textlstm.tracking.gates import draw, trace


def explain_text(run_dir, text: str, label: str | None = None, out: str | None = None,
                 steps: int = DEFAULT_STEPS, overrides: list[str] | None = None) -> dict:
    """Attributions for `text` towards `label` (default: the predicted one); `out` (.html or
    .png) also draws them."""
    if steps < 1:
        raise UserError(f"--steps is {steps}; use at least 1 integration step "
                        f"(default {DEFAULT_STEPS}).")
    suffix = Path(out).suffix.lower() if out else ""
    if out and suffix not in (".html", ".htm", ".png"):
        raise UserError(f"--out {out} must end in .html or .png.")
    pred = load(run_dir, overrides, device="cpu")
    result = explain(pred, text, label, steps)
    if suffix == ".png":
        _save_png(attribution_figure(result), out)
    elif out:
        write_text(out, explanation_page(text, result, _gates_png(pred, text)))
    return result


def _gates_png(pred, text: str) -> bytes | None:
    """The gate inspector's figure for the same text (LSTM encoders only)."""
    if pred.cfg.model.encoder.cell not in ("lstm", "peephole_lstm"):
        return None
    buf = io.BytesIO()
    _save_png(draw(trace(pred, text)), buf)
    return buf.getvalue()


def _save_png(fig, target) -> None:
    import matplotlib.pyplot as plt

    save_figure(fig, target, format="png", dpi=100)
    plt.close(fig)
