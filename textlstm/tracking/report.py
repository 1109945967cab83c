"""`report.html`: a run (or several, side by side) as one self-contained page.

No account, no network, no server: every plot is inline (SVG curves, PNG images as data URIs).
Reads what every run directory has: metrics.json, logs/metrics.csv, config.yaml, errors.json,
confusion_matrix.png and gates/*.png.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

import numpy as np

from textlstm.core import runfolder
from textlstm.core.io import save_figure, write_text
from textlstm.tracking.attributions import incomplete_note, shade_html, shown

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1180px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f5f5f7}td.l,th.l{text-align:left}.muted{color:#777}.grid{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px}figure{margin:0}
figcaption{font-size:12px;color:#555}
.bad{color:#b00020}.good{color:#08660d}img{max-width:100%}svg{max-width:100%;height:auto}
"""


def _csv_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def series(rows: list[dict], key: str, x: str = "epoch",
           max_epochs: int | None = None) -> tuple[list, list]:
    """Values of one logged key; `max_epochs` drops the rows the final validate/test on the best
    checkpoint adds after training (logged at epoch == epochs trained)."""
    xs, ys = [], []
    for r in rows:
        if (max_epochs is not None and r.get("epoch") not in (None, "")
                and int(float(r["epoch"])) >= max_epochs):
            continue
        if r.get(key) not in (None, ""):
            # epochs count from 1, as in metrics.json
            xs.append(float(r[x]) + (1.0 if x == "epoch" else 0.0))
            ys.append(float(r[key]))
    return xs, ys


def _fig_to_svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and doctype: inline SVG in HTML


def reliability_figure(calib: dict):
    """Reliability diagram of the test split before and after calibration: per confidence bin,
    accuracy against mean confidence (a calibrated model lies on the diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rel = calib["reliability"]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.8), sharey=True)
    titles = {"uncalibrated": "before (T = 1)",
              "calibrated": f"after (T = {calib['temperature']:.3f})"}
    for ax, key in zip(axes, ("uncalibrated", "calibrated"), strict=True):
        r = rel[key]
        width = 1.0 / r["bins"]
        lefts = [i * width for i in range(r["bins"])]
        acc = [a if a is not None else 0.0 for a in r["accuracy"]]
        conf = [c if c is not None else 0.0 for c in r["confidence"]]
        gap = [c - a for c, a in zip(conf, acc, strict=True)]
        ax.bar(lefts, acc, width=width, align="edge", color="#4c78a8", edgecolor="white",
               label="accuracy")
        ax.bar(lefts, gap, bottom=acc, width=width, align="edge",
               color="#e45756", alpha=0.35, label="confidence - accuracy")
        ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_title(titles[key], fontsize=10)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def confusion_png(cm: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    size = 1.2 + 0.65 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def curves_svg(runs: list[tuple[str, list[dict], int]], panels: list[tuple[str, str, str]]) -> str:
    """One row of small plots; each panel overlays every run's series of one key."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.1), squeeze=False)
    for ax, (key, title, x) in zip(axes[0], panels, strict=True):
        for name, rows, epochs in runs:
            xs, ys = series(rows, key, x, epochs)
            if xs:
                ax.plot(xs, ys, marker="o" if x == "epoch" else None, ms=3, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    if len(runs) > 1 and handles:
        fig.legend(handles, names, loc="lower center", ncol=min(4, len(runs)), fontsize=8,
                   bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return _fig_to_svg(fig)


def per_class_svg(rows: dict) -> str:
    """Bars of precision, recall and F1 per label; `rows`: metrics.json's test.per_class (or
    a multi-label run's test.per_label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(rows)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(labels)), 3))
    for k, (metric, off) in enumerate((("precision", -0.27), ("recall", 0.0), ("f1", 0.27))):
        ax.bar(x + off, [rows[lab][metric] for lab in labels], width=0.26,
               label=metric, color=f"C{k}")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, ncol=3, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("test: per-label precision / recall / F1", fontsize=10)
    fig.tight_layout()
    return _fig_to_svg(fig)


PANELS = [("train/loss_epoch", "train loss", "epoch"), ("val/loss", "validation loss", "epoch"),
          ("val/f1_macro", "validation macro-F1", "epoch"),
          ("val/acc", "validation accuracy", "epoch")]


def _load_run(run_dir: Path) -> dict:
    metrics = runfolder.read_metrics(run_dir)
    errors = run_dir / "errors.json"
    return {"dir": run_dir, "name": f"{run_dir.parent.name}/{run_dir.name}", "metrics": metrics,
            "rows": _csv_rows(run_dir / "logs" / "metrics.csv"),
            "config": runfolder.read_config_text(run_dir),
            "errors": json.loads(errors.read_text(encoding="utf-8")) if errors.is_file() else []}


def _e(x) -> str:
    return html.escape(str(x))


def _page(title: str, body: list[str]) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}"
            f"</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# metrics.json keys of the results table: (key, heading)
RESULTS = {
    "multiclass": (("accuracy", "accuracy"), ("f1_macro", "macro-F1"), ("loss", "loss")),
    "multilabel": (("f1_micro", "micro-F1"), ("f1_macro", "macro-F1"),
                   ("f1_samples", "samples-F1"), ("subset_accuracy", "subset accuracy"),
                   ("hamming_loss", "Hamming loss"), ("loss", "loss")),
}


def _results(m: dict) -> list[str]:
    cols = RESULTS[m.get("task", "multiclass")]
    out = ["<h2>Results</h2><table><tr><th class=\"l\">split</th>"
           + "".join(f"<th>{head}</th>" for _, head in cols) + "</tr>"]
    for split in ("validation", "test"):
        cells = "".join(f"<td>{m[split][k]:.4f}</td>" if k in m[split] else "<td></td>"
                        for k, _ in cols)
        out.append(f"<tr><td class=\"l\">{split}</td>{cells}</tr>")
    out.append("</table>")
    if m.get("task") == "multilabel":
        out.append("<p class=\"muted\">multi-label: validation at a 0.5 threshold per label "
                   f"(macro-F1 {m['validation']['f1_macro_tuned']:.4f} at the tuned ones), test "
                   "at each label's threshold tuned on validation; probabilities are not "
                   "temperature-scaled.</p>")
    return out


def _wide(m: dict) -> list[str]:
    """model.wide: the share the answers give the network, and the validation scores the
    one-standard-error rule chose it from."""
    w = m.get("wide")
    if not w:
        return []
    share = w["mix"]
    who = ("the TF-IDF part alone" if share == 0 else "the network alone" if share == 1 else
           f"the network's probabilities times {share:.1f} plus the TF-IDF part's times "
           f"{1 - share:.1f}")
    f1 = w["validation_f1"]
    rule = (" C and the share were chosen on validation by the one-standard-error rule: the "
            "smallest C within one bootstrap standard error of the best, and the TF-IDF part "
            "alone unless the best share beats it by more than one standard error."
            if w.get("rule") == "one-standard-error" else "")
    row = "".join(f"<td>{v:.4f}</td>" for v in w["mixes"].values())
    return [f"<h2>TF-IDF part (model.wide)</h2><p>The answers are {who}: a class-balanced "
            f"TF-IDF logistic regression (C = {w['C']:g}) mixed with the network. Validation "
            f"macro-F1: the network {f1['network']:.4f}, the TF-IDF part {f1['tfidf']:.4f}, "
            f"the answers {f1['mixture']:.4f}.{rule}</p><table id=\"wide-shares\"><tr>"
            "<th class=\"l\">the network's share</th>"
            + "".join(f"<th>{k}</th>" for k in w["mixes"])
            + f"</tr><tr><td class=\"l\">validation macro-F1</td>{row}</tr></table>"]


def _calibration(m: dict) -> list[str]:
    c, test = m.get("calibration"), m["test"]
    if not c or "reliability" not in c:  # multi-label runs, and runs made before calibration
        return []
    floor = ("" if test.get("ece_floor") is None else  # runs made before the floor existed
             f" A perfectly calibrated model would still show about {test['ece_floor']:.4f} "
             f"on {sum(c['reliability']['calibrated']['count'])} texts (sampling noise of the "
             "bins): a measured ECE near it is consistent with calibrated probabilities.")
    return [f"<h2>Calibration (test)</h2><p>temperature T = {c['temperature']:.3f} fitted "
            f"on the validation split ({c['method']}); expected calibration error "
            f"{test['ece_uncalibrated']:.4f} before, {test['ece']:.4f} after (15 bins).{floor}</p>"
            f"<figure id=\"reliability\">{_fig_to_svg(reliability_figure(c))}</figure>"]


def _per_class(m: dict, labels: list[str]) -> list[str]:
    """Per class (multi-class) or per label (multi-label: with AUROC and the threshold)."""
    test = m["test"]
    multilabel = "per_label" in test
    rows = test["per_label"] if multilabel else test["per_class"]
    thresholds = m.get("thresholds") or {}
    extra = "<th>AUROC</th><th>threshold</th>" if multilabel else ""
    out = [f"<h2>Per {'label' if multilabel else 'class'} (test)</h2><div class=\"grid\"><div "
           "class=\"card\"><table><tr><th class=\"l\">label</th><th>precision</th><th>recall"
           f"</th><th>F1</th><th>support</th>{extra}</tr>"]
    for lab in labels:
        c = rows[lab]
        more = ""
        if multilabel:
            auroc = "" if c["auroc"] is None else f"{c['auroc']:.3f}"
            more = f"<td>{auroc}</td><td>{thresholds.get(lab, 0.5):.2f}</td>"
        out.append(f"<tr><td class=\"l\">{_e(lab)}</td><td>{c['precision']:.3f}</td>"
                   f"<td>{c['recall']:.3f}</td><td>{c['f1']:.3f}</td><td>{c['support']}</td>"
                   f"{more}</tr>")
    out.append(f"</table></div><figure id=\"per-class\" class=\"card\">{per_class_svg(rows)}"
               "</figure></div>")
    return out


def _confusion(r: dict, labels: list[str]) -> list[str]:
    test = r["metrics"]["test"]
    if "confusion_matrix" not in test:  # multi-label: no confusion matrix
        return []
    cm_png = r["dir"] / "confusion_matrix.png"
    if not cm_png.is_file():
        confusion_png(test["confusion_matrix"], labels, cm_png,
                      f"test confusion matrix (accuracy {test['accuracy']:.4f})")
    return ["<h2>Confusion matrix (test)</h2><figure id=\"confusion\"><img alt=\"confusion "
            f"matrix\" src=\"{_png_uri(cm_png)}\"></figure>"]


def _errors(errors: list[dict]) -> list[str]:
    out = ["<h2>Worst errors (test)</h2><p class=\"muted\">the first ones shaded by "
           "integrated gradients: green pushed towards the wrong label, red against it</p>"]
    if not errors:
        return out + ["<p class=\"muted\">no test errors recorded.</p>"]
    note = incomplete_note(errors)
    if note:
        out.append(f"<p class=\"muted\" id=\"approximate-attributions\">{_e(note)}</p>")
    out.append("<table><tr><th class=\"l\">text</th><th class=\"l\">true</th><th "
               "class=\"l\">predicted</th><th>confidence</th></tr>")
    for e in errors:
        # explained errors show their tokens shaded by what pushed towards the wrong label
        text = (shade_html(e["tokens"], e["attributions"]) if "attributions" in e
                else _e(e["text"][:300]))
        approx = (f" <span title=\"attributions off by {100 * e['attribution_gap']:.0f} % of "
                  "the logit\">≈</span>" if "attribution_gap" in e else "")
        out.append(f"<tr><td class=\"l\">{text}</td><td class=\"l "
                   f"good\">{_e(shown(e['true']))}</td><td class=\"l bad\">"
                   f"{_e(shown(e['predicted']))}</td><td>{e['confidence']:.3f}{approx}</td></tr>")
    out.append("</table>")
    return out


def run_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """report.html for one run (default: inside the run directory)."""
    r = _load_run(Path(run_dir))
    m = r["metrics"]
    labels = m["data"]["labels"]
    body = [f"<h1>textlstm run {_e(r['name'])}</h1>",
            f"<p class=\"muted\">data set {_e(m['data']['name'])}: {m['data']['train_size']} / "
            f"{m['data']['validation_size']} / {m['data']['test_size']} texts, vocabulary "
            f"{m['data']['vocab_size']}, {m['train']['epochs']} epochs in {m['train']['seconds']} "
            f"s (best epoch {m['train']['best_epoch']})</p>",
            *_results(m), *_wide(m), *_calibration(m)]
    panels = PANELS if m.get("task") != "multilabel" else [
        *PANELS[:3], ("val/subset_accuracy", "validation subset accuracy", "epoch")]
    curves = curves_svg([(r["name"], r["rows"], r["metrics"]["train"]["epochs"])], panels)
    body.append(f"<h2>Training curves</h2><figure id=\"curves\">{curves}"
                "<figcaption>per epoch, from logs/metrics.csv</figcaption></figure>")
    body += _per_class(m, labels) + _confusion(r, labels) + _errors(r["errors"])
    gates = sorted((r["dir"] / "gates").glob("gates_*.png"))
    if gates:
        body.append("<h2>Gate inspector (validation texts, mistakes first)</h2>")
        for k, g in enumerate(gates):
            body.append(f"<figure id=\"gates-{k}\"><img alt=\"gates {k}\" src=\"{_png_uri(g)}\">"
                        "</figure>")
    body.append(f"<h2>Config</h2><pre>{_e(r['config'])}</pre>")
    path = Path(out) if out else r["dir"] / "report.html"
    write_text(path, _page(f"textlstm {r['name']}", body))
    return path


def compare_report(run_dirs: list[str | Path], out: str | Path) -> Path:
    """One page with several runs side by side: metrics, config differences, overlaid curves."""
    runs = [_load_run(Path(d)) for d in run_dirs]
    from omegaconf import OmegaConf

    flat = [_flatten(OmegaConf.to_container(OmegaConf.create(r["config"] or "{}"))) for r in runs]
    keys = sorted({k for f in flat for k in f})
    differ = [k for k in keys
              if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1 and k != "name"]
    body = [f"<h1>textlstm: {len(runs)} runs compared</h1>",
            "<h2>Metrics</h2><table><tr><th class=\"l\">run</th><th>test acc.</th><th>test macro-F1"
            "</th><th>val macro-F1</th><th>epochs (best)</th><th>train s</th><th>tokens/s</th>"
            "</tr>"]
    best = max(range(len(runs)), key=lambda i: runs[i]["metrics"]["test"]["f1_macro"])
    for i, r in enumerate(runs):
        m = r["metrics"]
        mark = " <b>(best)</b>" if i == best and len(runs) > 1 else ""
        # a multi-label run's nearest to accuracy: subset accuracy (the whole set right)
        acc = m["test"].get("accuracy", m["test"].get("subset_accuracy", float("nan")))
        body.append(f"<tr><td class=\"l\">{_e(r['name'])}{mark}</td><td>{acc:.4f}"
                    f"</td><td>{m['test']['f1_macro']:.4f}</td>"
                    f"<td>{m['validation']['f1_macro']:.4f}</td><td>{m['train']['epochs']} "
                    f"({m['train']['best_epoch']})</td><td>{m['train']['seconds']}</td>"
                    f"<td>{m['train'].get('tokens_per_second') or ''}</td></tr>")
    body.append("</table>")
    body.append("<h2>Config differences</h2>")
    if differ:
        body.append("<table><tr><th class=\"l\">key"
                    "</th>" + "".join(f"<th class=\"l\">{_e(r['name'])}</th>" for r in runs)
                    + "</tr>")
        for k in differ:
            body.append(f"<tr><td class=\"l\">{_e(k)}"
                        "</td>" + "".join(f"<td class=\"l\">{_e(f.get(k))}</td>" for f in flat)
                        + "</tr>")
        body.append("</table>")
    else:
        body.append("<p class=\"muted\">the configs are identical (apart from the run name).</p>")
    curves = curves_svg([(r["name"], r["rows"], r["metrics"]["train"]["epochs"]) for r in runs],
                        PANELS)
    body.append(f"<h2>Curves</h2><figure id=\"curves\">{curves}</figure>")
    body.append("<h2>Per-class test F1</h2><table><tr><th class=\"l\">label</th>"
                + "".join(f"<th>{_e(r['name'])}</th>" for r in runs) + "</tr>")
    labels = list(dict.fromkeys(lab for r in runs for lab in r["metrics"]["data"]["labels"]))
    per = [r["metrics"]["test"].get("per_class") or r["metrics"]["test"]["per_label"]
           for r in runs]
    for lab in labels:
        cells = "".join(f"<td>{p[lab]['f1']:.3f}</td>" if lab in p else "<td></td>" for p in per)
        body.append(f"<tr><td class=\"l\">{_e(lab)}</td>{cells}</tr>")
    body.append("</table>")
    path = Path(out)
    write_text(path, _page("textlstm comparison", body))
    return path


def _flatten(d, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def worst_errors(p: dict, labels: list[str], n: int = 25) -> list[dict]:
    """The most confident mistakes of a split's predictions (see dashboard.predictions)."""
    if p["true"].ndim == 2:
        return _worst_multilabel_errors(p, labels, n)
    wrong = np.flatnonzero(p["pred"] != p["true"])
    conf = p["probs"].max(1)
    order = wrong[np.argsort(-conf[wrong], kind="stable")][:n]
    return [{"text": p["text"][i], "true": labels[p["true"][i]], "predicted": labels[p["pred"][i]],
             "confidence": round(float(conf[i]), 4)} for i in order]


def _worst_multilabel_errors(p: dict, labels: list[str], n: int) -> list[dict]:
    """Texts whose predicted label set is not their true one, worst first: ranked by the label
    the model was surest about and wrong (a false positive near 1, a missed label near 0).
    `explained` names that label; its probability is the `confidence`."""
    gap = np.abs(p["probs"] - p["true"])  # (N, C): 1 - p for a true label, p for a false one
    wrong = np.flatnonzero((p["pred"] != p["true"]).any(1))
    worst = gap.argmax(1)
    order = wrong[np.argsort(-gap[wrong, worst[wrong]], kind="stable")][:n]
    names = np.asarray(labels, dtype=object)
    return [{"text": p["text"][i], "true": names[p["true"][i] > 0].tolist(),
             "predicted": names[p["pred"][i] > 0].tolist(), "explained": labels[worst[i]],
             "confidence": round(float(p["probs"][i, worst[i]]), 4)} for i in order]
