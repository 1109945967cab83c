"""The gate inspector: replay one text through the seed's gate equations with a run's weights.

The trained encoder's weights are copied into `ReferenceLSTM` (models/cells.py), which
computes i, f, g, o, c, h step by step and records them; its output is checked against the
model's own encoder for the same text before anything is drawn. The figure shows, for the
forward and the backward direction of the top layer, heatmaps (units x tokens) of the input,
forget and output gates and |c|, plus a per-token mean of each.
"""

from __future__ import annotations

import base64
import html as html_lib
import warnings
from pathlib import Path

import torch

from textlstm.core.errors import UserError
from textlstm.core.io import save_figure
from textlstm.data.multilabel import canonical
from textlstm.models.cells import ReferenceLSTM
from textlstm.models.predictor import Predictor
from textlstm.tokens.tokenize import tokenize_texts

PANELS = (("i", "input gate i"), ("f", "forget gate f"), ("o", "output gate o"),
          ("c", "|cell state c|"))


@torch.no_grad()
def trace(pred: Predictor, text: str) -> dict:
    """Gate values of the top encoder layer for one text, checked against the model."""
    net = pred.net
    try:
        ref = ReferenceLSTM.from_lstm(net.encoder).double()
    except TypeError:
        raise UserError("inspect needs an LSTM encoder, but this run uses "
                        f"model.encoder.cell={pred.cfg.model.encoder.cell}; inspect an lstm or "
                        "peephole_lstm run.") from None
    tokens = tokenize_texts([text],
                            pred.cfg.data.lowercase)[0][: pred.cfg.data.max_length] or ["<unk>"]
    ids = torch.tensor([pred.vocab.encode(tokens)])  # (1, T)
    lengths = torch.tensor([ids.size(1)])
    x = net.embedding(net.network_ids(ids.to(pred.device))).double().cpu()  # (1, T, E)
    out, _, rec = ref(x, lengths, record=True)
    model_out, _ = net.encoder(x.float().to(pred.device), lengths.to(pred.device))
    max_diff = float((out.float() - model_out.float().cpu()).abs().max())
    if max_diff > 1e-4:
        raise RuntimeError(f"reference cell disagrees with the model's encoder by {max_diff:.2e}")
    top = f"l{ref.num_layers - 1}"
    dirs = [d for d in ("forward", "backward") if (top, d) in rec]
    probs = pred.predict([text])[0]
    # a multi-label answer is a set (possibly empty): shown as its labels joined
    label = probs["label"] if "label" in probs else ", ".join(probs["labels"]) or "(none)"
    return {
        "tokens": tokens, "label": label, "probabilities": probs["probabilities"],
        "max_abs_diff": max_diff, "layer": top,
        # each gate map is (H, T)
        "gates": {d: {k: rec[(top, d)][k][0].float().T for k in ("i", "f", "o", "c")}
                  for d in dirs},
    }


def draw(tr: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dirs = list(tr["gates"])
    T = len(tr["tokens"])
    fig, axes = plt.subplots(len(PANELS) + 1, len(dirs),
                             figsize=(max(8, 0.32 * T * len(dirs) + 3), 13),
                             squeeze=False,
                             gridspec_kw={"height_ratios": [3] * len(PANELS) + [2.2]})
    for col, d in enumerate(dirs):
        g = tr["gates"][d]
        for row, (key, title) in enumerate(PANELS):
            ax = axes[row][col]
            data = g[key].abs() if key == "c" else g[key]
            im = ax.imshow(data.numpy(), aspect="auto", cmap="magma" if key == "c" else "viridis",
                           vmin=0, vmax=None if key == "c" else 1, interpolation="nearest")
            ax.set_title(f"{d}: {title}", fontsize=10, loc="left")
            ax.set_ylabel("unit")
            ax.set_xticks([])
            fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
        ax = axes[-1][col]
        for key, title in PANELS:
            series = g[key].abs().mean(0) if key == "c" else g[key].mean(0)
            ax.plot(range(T), series.numpy(), marker="o", ms=3, label=f"mean {title}")
        ax.set_xticks(range(T))
        ax.set_xticklabels(tr["tokens"], rotation=60, ha="right", fontsize=8)
        ax.set_xlim(-0.5, T - 0.5)
        ax.grid(alpha=0.3)
        ax.set_title(f"{d}: per-token mean over units", fontsize=10, loc="left")
        if col == 0:
            ax.legend(fontsize=8, loc="upper left", ncol=2)
    top = sorted(tr["probabilities"].items(), key=lambda kv: -kv[1])[:3]
    fig.suptitle(f"predicted: {tr['label']}   (" + ", ".join(f"{k} {v:.2f}" for k, v in top)
                 + f")\nlayer {tr['layer']}; the reference cell reproduces the model within "
                   f"{tr['max_abs_diff']:.1e}",
                 fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def gate_page(tr: dict, png: bytes, text: str) -> str:
    """A self-contained HTML page: the text, the prediction and the gate figure inline."""
    img = base64.b64encode(png).decode()
    return ("<!doctype html><html><head><meta charset='utf-8'><title>textlstm gates</title></head>"
            f"<body><h1>Gates for: {html_lib.escape(text[:200])}</h1><p>predicted "
            f"<b>{html_lib.escape(tr['label'])}</b></p><img alt='gate heatmaps' "
            f"src='data:image/png;base64,{img}'></body></html>")


def log_gate_examples(logger, pred: Predictor, texts: list[str], labels: list[str], out_dir: Path,
                      n: int = 3, max_tokens: int = 40) -> list[Path]:
    """Gate figures for a few validation texts, saved as PNGs and logged to W&B (`logger` may
    be None). Misclassified texts come first: they are the ones worth looking at. Each text is
    cut to its first `max_tokens` tokens so the figure stays readable."""
    import matplotlib.pyplot as plt

    if pred.cfg.model.encoder.cell not in ("lstm", "peephole_lstm") or not texts:
        return []
    short = [" ".join(t[:max_tokens]) for t in tokenize_texts(texts[:200], lowercase=False)]
    # multi-label truths are canonical label-set strings: compare the answers in that form
    guesses = [p["label"] if "label" in p else canonical(p["labels"]) for p in pred.predict(short)]
    order = sorted(range(len(short)), key=lambda i: (guesses[i] == labels[i], i))[:n]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, captions = [], []
    for k, i in enumerate(order):
        fig = draw(trace(pred, short[i]))
        path = out_dir / f"gates_{k}.png"
        # "Glyph missing from font" for emoji tokens: drawn as boxes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            save_figure(fig, path, dpi=80)
        plt.close(fig)
        paths.append(path)
        captions.append(f"true {labels[i]}, predicted {guesses[i]}: {short[i][:120]}")
    if logger is not None and paths:
        logger.log_image(key="inspect/gates", images=[str(p) for p in paths], caption=captions)
    return paths
