"""Showing token attributions: shaded text in HTML, a bar figure, the page `textlstm explain`
writes, and attributions for the worst test errors (report.html and W&B)."""

from __future__ import annotations

import base64
import html
import logging

log = logging.getLogger("textlstm")


def shown(labels) -> str:
    """A label, or a multi-label answer (a list) as its labels joined."""
    return ", ".join(labels) if isinstance(labels, list) else str(labels)


def shade_html(tokens: list[str], scores: list[float]) -> str:
    """Tokens in text order, green where they pushed towards the label, red where against;
    the strongest token is fully saturated. Each token's score is in its tooltip."""
    top = max((abs(s) for s in scores), default=0.0) or 1.0
    spans = []
    for tok, s in zip(tokens, scores, strict=True):
        alpha = min(1.0, abs(s) / top)
        rgb = "46,160,67" if s >= 0 else "214,39,40"
        spans.append(f"<span title=\"{s:+.4f}\" style=\"background: rgba({rgb},{alpha:.2f}); "
                     f"padding: 1px 2px; border-radius: 3px\">{html.escape(tok)}</span>")
    return "<p class=\"tokens\" style=\"line-height: 1.9\">" + " ".join(spans) + "</p>"


def attribution_figure(result: dict, max_tokens: int = 60):
    """A bar per token (first `max_tokens`), for `explain --out file.png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    toks, scores = result["tokens"][:max_tokens], result["attributions"][:max_tokens]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(toks) + 1.5), 3.6))
    ax.bar(range(len(toks)), scores, color=["#2ea043" if s >= 0 else "#d62728" for s in scores])
    ax.set_xticks(range(len(toks)), toks, rotation=60, ha="right", fontsize=8)
    ax.axhline(0, color="gray", linewidth=0.8)
    p = result["probabilities"][result["label"]]
    ax.set_title(f"integrated gradients towards '{result['label']}' (p = {p:.3f}, "
                 f"delta {result['delta']:+.2e})", fontsize=10)
    ax.set_ylabel("attribution")
    fig.tight_layout()
    return fig


def explanation_page(text: str, result: dict, gates_png: bytes | None) -> str:
    """What the model read (shaded tokens, probabilities) beside what its gates did."""
    probs = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>"
                    for k, v in sorted(result["probabilities"].items(), key=lambda kv: -kv[1]))
    gates = ("<h2>What the gates did</h2><img alt=\"gate heatmaps\" style=\"max-width: 100%\" "
             f"src=\"data:image/png;base64,{base64.b64encode(gates_png).decode()}\">" if gates_png
             else "")
    return ("<!doctype html><html><head><meta charset=\"utf-8\">"
            "<title>textlstm explain</title></head>"
            "<body style=\"font-family: sans-serif; max-width: 1100px; margin: 2em auto\">"
            f"<h1>Why '{html.escape(result['label'])}'</h1>"
            f"<p>{html.escape(text[:300])}</p>"
            "<h2>Which words decided (integrated gradients)</h2>"
            f"{shade_html(result['tokens'], result['attributions'])}"
            f"<p style=\"color: #666\">green: towards '{html.escape(result['label'])}', "
            "red: against; "
            f"convergence delta {result['delta']:+.2e}</p>"
            f"<table>{probs}</table>{gates}</body></html>")


def explain_errors(pred, errors: list[dict], steps: int = 32, max_steps: int = 128
                   ) -> list[dict]:
    """Each worst test error with the tokens that pushed the model to its wrong label (`pred`:
    a models.predictor.Predictor). Steps are capped lower than `textlstm explain`'s: a report
    explains several texts, whole documents among them, and shows each one's delta."""
    from textlstm.models.explain import explain  # torch and Captum: only when explaining

    out, gaps, explained = [], [], 0
    for e in errors:
        try:
            # multi-label: the label the model got most wrong, not the predicted set
            before = len(gaps)
            r = explain(pred, e["text"], e.get("explained", e["predicted"]), steps,
                        max_steps, incomplete=gaps)
            e = e | {"tokens": r["tokens"], "attributions": r["attributions"]}
            if len(gaps) > before:  # this one fell short: report.html says what that means
                e["attribution_gap"] = round(gaps[-1], 4)
            out.append(e)
            explained += 1
        except Exception as ex:  # an explanation must never cost the user a finished run
            log.warning("attributions skipped for one error: %s", ex)
            out.append(e)
    if gaps:  # the reasons are in report.html, beside the shaded texts; here one short line
        log.warning("approximate attributions for %d of %d explained test errors; see "
                    "report.html", len(gaps), explained)
    return out


def incomplete_note(errors: list[dict]) -> str | None:
    """What report.html says above the shaded errors when some attributions fall short."""
    gaps = [e["attribution_gap"] for e in errors if "attribution_gap" in e]
    if not gaps:
        return None
    shaded = sum("attributions" in e for e in errors)
    return (f"The attributions of {len(gaps)} of {shaded} shaded errors (marked ≈) add up to "
            f"the logit's change only within {100 * min(gaps):.0f}-{100 * max(gaps):.0f} % of "
            "the logit: along the straight path from the empty text to the text, the model's "
            "output jumps (an LSTM over hundreds of tokens can flip between states), which no "
            "number of integration steps captures. Read their shading as a ranking of the "
            "words, not as amounts.")


def log_error_attributions(wb, errors: list[dict]) -> None:
    """W&B table `test/mistake_attributions`: each explained mistake, its tokens shaded."""
    rows = [e for e in errors if "attributions" in e]
    if not rows:
        return
    import wandb

    table = wandb.Table(columns=["text", "true", "predicted", "confidence", "top tokens",
                                 "attribution"])
    for e in rows:
        top = sorted(zip(e["tokens"], e["attributions"], strict=True), key=lambda ta: -ta[1])[:5]
        table.add_data(e["text"][:500], shown(e["true"]), shown(e["predicted"]), e["confidence"],
                       ", ".join(f"{t} ({a:+.2f})" for t, a in top),
                       wandb.Html(shade_html(e["tokens"], e["attributions"])))
    wb.experiment.log({"test/mistake_attributions": table})
