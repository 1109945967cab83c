"""`textlstm inspect RUN "text"`: the LSTM's gates on one text, as a PNG (and an HTML page)."""

from __future__ import annotations

import io

from textlstm.core.io import save_figure, write_text
from textlstm.serving.loader import load
from textlstm.tracking.gates import draw, gate_page, trace


def inspect_text(run_dir, text: str, out: str | None = "gates.png", html: str | None = None,
                 overrides: list[str] | None = None) -> dict:
    pred = load(run_dir, overrides, device="cpu")
    tr = trace(pred, text)
    fig = draw(tr)
    if out:
        save_figure(fig, out, dpi=110)
    if html:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        write_text(html, gate_page(tr, buf.getvalue(), text))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return {"label": tr["label"], "probabilities": tr["probabilities"], "tokens": len(tr["tokens"]),
            "max_abs_diff": tr["max_abs_diff"], "out": out, "html": html}
