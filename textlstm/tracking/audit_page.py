"""What `textlstm audit` shows: audit.html (the flagged texts shaded by the words that argue
for another label, the per-class noise table) and the same on W&B."""

from __future__ import annotations

import html

from textlstm.tracking.attributions import shade_html


def _noise_table(noise: list[dict]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(n['label'])}</td><td>{n['texts']}</td><td>{n['flagged']}</td>"
        f"<td>{100 * n['flagged_share']:.1f} %</td><td>{100 * n['estimated_noise']:.1f} %</td>"
        "</tr>" for n in noise)
    return ("<table border=\"1\" cellpadding=\"4\" style=\"border-collapse: collapse\">"
            "<tr><th>given label</th><th>texts</th><th>flagged</th><th>flagged share</th>"
            "<th>estimated noise</th></tr>" + rows + "</table>")


def _issue(r: dict) -> str:
    shaded = (shade_html(r["tokens"], r["attributions"]) if r.get("tokens")
              else f"<p>{html.escape(r['text'][:2000])}</p>")
    return (f"<div style=\"border-top: 1px solid #ccc; padding: 0.5em 0\"><b>row {r['row']}</b>: "
            f"given <b>{html.escape(r['given'])}</b>, suggested "
            f"<b>{html.escape(r['suggested'])}</b> (p of the given label {r['score']:.3f})"
            f"{shaded}</div>")


def audit_page(meta: dict, issues: list[dict], noise: list[dict]) -> str:
    """A self-contained page. `issues`: flagged rows, most suspicious first, each with row,
    text, given, suggested, score and optionally tokens + attributions."""
    how = meta["explained_by"]
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>textlstm audit</title>"
            "</head><body style=\"font-family: sans-serif; max-width: 1100px; margin: 2em auto\">"
            f"<h1>Label audit: {html.escape(str(meta['name']))}</h1>"
            f"<p>{meta['texts']} training texts, {meta['folds']} folds, out-of-fold "
            f"probabilities from {html.escape(meta['method'])}; cleanlab flagged "
            f"<b>{meta['flagged']}</b> as likely mislabelled (label_issues.csv lists them "
            "all).</p>"
            "<h2>Noise per class</h2>"
            "<p>flagged share: the share of the class's texts cleanlab flagged; estimated noise: "
            "1 - P(true label = this one | given label = this one) from cleanlab's estimated "
            "joint distribution of given and true labels (cleanlab.count.estimate_joint).</p>"
            f"{_noise_table(noise)}"
            f"<h2>The {len(issues)} most suspicious texts</h2>"
            f"<p style=\"color: #666\">Shading: {html.escape(how)}; green words argue for the "
            "suggested label, red ones for the given label. Each text is explained by the "
            "fold model that never saw it.</p>"
            + "".join(_issue(r) for r in issues) + "</body></html>")


def log_audit(wb, issues: list[dict], noise: list[dict], summary: dict) -> None:
    """W&B tables `audit/label_issues` (shaded where explained) and `audit/noise`."""
    import wandb

    table = wandb.Table(columns=["row", "text", "given", "suggested", "score", "words"])
    for r in issues:
        words = (wandb.Html(shade_html(r["tokens"], r["attributions"])) if r.get("tokens")
                 else wandb.Html(html.escape(r["text"][:500])))
        table.add_data(r["row"], r["text"][:500], r["given"], r["suggested"], r["score"], words)
    cols = ["label", "texts", "flagged", "flagged_share", "estimated_noise"]
    noise_table = wandb.Table(columns=cols, data=[[n[c] for c in cols] for n in noise])
    wb.experiment.log({"audit/label_issues": table, "audit/noise": noise_table})
    wb.experiment.summary.update({f"audit/{k}": v for k, v in summary.items()})
