"""`textlstm audit`: which training texts are likely mislabelled.

Every training text gets out-of-fold probabilities: k folds of the training split, each held
out once and scored by a model trained on the other k-1 (an ordinary `train` run whose
test split is the held-out fold; the config's validation split stops it early and calibrates
its temperature). `--fast` uses TF-IDF + logistic regression instead. cleanlab then flags the
texts whose given label the held-out model finds unlikely. The test split is never read.

OUT (default `<run_root>/<name>/audit-<timestamp>`) holds label_issues.csv, audit.html,
audit.json and, for LSTM audits, folds/<k>/ (the fold's data, its run, oof.json). Running the
same audit again with the same --out skips the folds whose oof.json exists."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from textlstm.core import runfolder
from textlstm.core.errors import UserError
from textlstm.core.io import atomic_write, write_json, write_text
from textlstm.training.label_audit import (
    fast_oof,
    fold_ids,
    label_issues,
    noise_by_class,
    tfidf_attributions,
)

SHOWN = 50  # flagged texts shown (and explained) in audit.html and on W&B
COLUMNS = ["row", "text", "given_label", "suggested_label", "score"]


def audit(cfg: DictConfig, folds: int = 5, out: str | Path | None = None, fast: bool = False,
          log: Callable[[str], None] = print) -> Path:
    """Audit the training split of `cfg`; returns the output folder."""
    _check(cfg, folds)
    from textlstm.data.sources import load_splits

    dd = load_splits(cfg.data, test=False)  # train and validation only
    texts, given = list(dd["train"]["text"]), list(dd["train"]["label"])
    fold_of = fold_ids(texts, given, folds, cfg.seed)
    labels = sorted(set(given))
    y = np.array([labels.index(g) for g in given])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(out) if out else Path(cfg.run_root) / cfg.name / f"audit-{stamp}"
    _claim(out, texts, given, fold_of, fast)
    if fast:
        probs, models = fast_oof(texts, y, fold_of, len(labels))
        log(f"{folds} folds of TF-IDF + logistic regression scored {len(texts)} texts")
    else:
        probs, models = lstm_oof(cfg, dd, fold_of, labels, out, log)
    flagged = label_issues(y, probs)
    noise = noise_by_class(y, probs, flagged, labels)
    rows = [{"row": int(i), "text": texts[i], "given": given[i],
             "suggested": labels[int(probs[i].argmax())], "score": round(float(probs[i, y[i]]), 6)}
            for i in flagged]
    _write_csv(out / "label_issues.csv", rows)
    shown = _explain(rows[:SHOWN], models, fold_of, labels, fast)
    summary = {"texts": len(texts), "folds": folds, "flagged": len(rows),
               "method": "TF-IDF + logistic regression" if fast else "the config's LSTM",
               "name": cfg.name}
    write_json(out / "audit.json", summary | {"noise": noise})
    how = ("tf-idf x (weight of the suggested label - weight of the given one)" if fast
           else "integrated gradients towards the suggested label")
    from textlstm.tracking.audit_page import audit_page

    write_text(out / "audit.html", audit_page(summary | {"explained_by": how}, shown, noise))
    _log_wandb(cfg, out, shown, noise, summary)
    log(f"flagged {len(rows)} of {len(texts)} training texts: {out / 'label_issues.csv'}")
    return out


def _check(cfg: DictConfig, folds: int) -> None:
    if folds < 2:
        raise UserError(f"--folds is {folds}; an audit needs at least 2 folds (5 is usual).")
    if cfg.task != "multiclass":
        raise UserError("audit supports task=multiclass only; audit each label of a multi-label "
                        "set as its own yes/no task.")
    if cfg.data.streaming:
        raise UserError("audit reads the training split whole; set data.streaming=false.")
    _refuse_test_as_training(cfg.data)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _refuse_test_as_training(data) -> None:
    """The test file given as training data (same file, or the same bytes) would audit, and
    then let the user relabel, the texts the model is graded on."""
    test = data.get("test_file")
    if data.source != "files" or not test or not Path(test).is_file():
        return
    for key in ("train_file", "extra_train_file"):
        path = data.get(key)
        if not path or not Path(path).is_file():
            continue
        a, b = Path(path), Path(test)
        same = a.resolve() == b.resolve() or (a.stat().st_size == b.stat().st_size
                                              and _digest(a) == _digest(b))
        if same:
            raise UserError(f"data.{key} {path} is the test file (data.test_file {test}); audit "
                            "and relabel training data only, and keep the test split apart.")


def _claim(out: Path, texts: list[str], given: list[str], fold_of: np.ndarray,
           fast: bool) -> None:
    """OUT remembers what it audits: resuming into it with other data or folds is refused."""
    out.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256(json.dumps([texts, given, fold_of.tolist()]).encode()).hexdigest()[:16]
    plan = {"data_and_folds": h, "fast": fast}
    path = out / "plan.json"
    if path.is_file() and json.loads(path.read_text()) != plan:
        raise UserError(f"{out} holds an audit of other data, folds or method; pass a new --out.")
    write_json(path, plan)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([r["row"], r["text"], r["given"], r["suggested"], r["score"]])


def _explain(rows: list[dict], models: list, fold_of: np.ndarray, labels: list[str],
             fast: bool) -> list[dict]:
    """Each shown row with its words' attributions, from the model of the fold it was held out
    in (one that never saw it)."""
    if fast:
        out = []
        for r in rows:
            toks, scores = tfidf_attributions(models[fold_of[r["row"]]], r["text"],
                                              labels.index(r["given"]),
                                              labels.index(r["suggested"]))
            out.append(r | {"tokens": toks, "attributions": scores})
        return out
    from textlstm.tracking.attributions import explain_errors

    out = list(rows)
    for k, pred in enumerate(models):  # one call per fold model: one warning line at most
        mine = [i for i, r in enumerate(rows) if fold_of[r["row"]] == k]
        done = explain_errors(pred, [{"text": rows[i]["text"], "predicted": rows[i]["suggested"]}
                                     for i in mine])
        for i, e in zip(mine, done, strict=True):
            out[i] = rows[i] | {key: e[key] for key in ("tokens", "attributions") if key in e}
    return out


def _log_wandb(cfg: DictConfig, out: Path, shown: list[dict], noise: list[dict],
               summary: dict) -> None:
    from textlstm.tracking.audit_page import log_audit
    from textlstm.tracking.wandb_logger import start_wandb

    audit_cfg = cfg.copy()
    audit_cfg.wandb.tags = [*cfg.wandb.tags, "audit"]
    wb = start_wandb(audit_cfg, out)
    if wb is None:  # wandb.mode=disabled
        return
    log_audit(wb, shown, noise, {k: v for k, v in summary.items() if k != "name"})
    wb.experiment.finish()


def _write_rows(path: Path, texts: list[str], labels: list[str], rows: np.ndarray) -> None:
    with atomic_write(path) as fh:
        for i in rows.tolist():
            fh.write(json.dumps({"row": i, "text": texts[i], "label": labels[i]},
                                ensure_ascii=False) + "\n")


def fold_config(cfg: DictConfig, folder: Path, validation: Path) -> DictConfig:
    """A normal training run on folder's train.jsonl, validated on the config's validation
    split, tested on the held-out fold (heldout.jsonl): its test scores are out-of-fold."""
    fc = cfg.copy()
    d = fc.data
    d.source, d.text_field, d.label_field = "files", "text", "label"
    d.train_file, d.test_file = str(folder / "train.jsonl"), str(folder / "heldout.jsonl")
    d.validation_file, d.extra_train_file = str(validation), None  # extra rows: in train.jsonl
    fc.run_root, fc.name, fc.resume = str(folder), "run", None
    fc.wandb.group = f"{cfg.name}-audit"
    return fc


def lstm_oof(cfg: DictConfig, dd, fold_of: np.ndarray, labels: list[str], out: Path,
             log: Callable[[str], None]) -> tuple[np.ndarray, list]:
    """(N, C) out-of-fold probabilities, one training run per fold, and each fold's
    predictor. A fold whose oof.json exists is not trained again."""
    from textlstm.serving.loader import load_run

    validation = out / "validation.jsonl"
    if not validation.is_file():
        v = dd["validation"]
        _write_rows(validation, v["text"], v["label"], np.arange(len(v)))
    folds = int(fold_of.max()) + 1
    probs = np.zeros((len(fold_of), len(labels)))
    preds = []
    for k in range(folds):
        folder = out / "folds" / str(k)
        held = np.flatnonzero(fold_of == k)
        done = folder / "oof.json"
        if not done.is_file():
            _train_fold(cfg, dd, fold_of, k, folder, validation, labels, load_run)
            state = "trained on"
        else:
            state = "done before: trained on"
        r = json.loads(done.read_text())
        if r["rows"] != held.tolist() or r["labels"] != labels:
            raise UserError(f"{done} scored other rows than this audit's fold {k + 1}; pass a new "
                            "--out.")
        probs[held] = np.array(r["probabilities"])
        preds.append(load_run(r["run"], device="cpu"))
        log(f"fold {k + 1}/{folds}: {state} {r['trained_on']}, scored {len(held)} held-out texts "
            f"(macro-F1 {r['macro_f1']:.2f})")
    return probs, preds


def _train_fold(cfg: DictConfig, dd, fold_of: np.ndarray, k: int, folder: Path,
                validation: Path, labels: list[str], load_run) -> None:
    from textlstm.commands.train import train

    folder.mkdir(parents=True, exist_ok=True)
    seen, held = np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)
    texts, given = dd["train"]["text"], dd["train"]["label"]
    _write_rows(folder / "train.jsonl", texts, given, seen)
    _write_rows(folder / "heldout.jsonl", texts, given, held)
    run_dir = train(fold_config(cfg, folder, validation))
    pred = load_run(run_dir, device="cpu")
    # (n_held, C), columns in the fold run's label order, then in the audit's
    p = pred.predict_proba([texts[i] for i in held]).numpy()
    p = p[:, [pred.labels.index(lab) for lab in labels]]
    metrics = runfolder.read_metrics(run_dir)
    write_json(folder / "oof.json", {"rows": held.tolist(), "labels": labels,
                                     "probabilities": p.round(6).tolist(), "run": str(run_dir),
                                     "trained_on": len(seen),
                                     "macro_f1": metrics["test"]["f1_macro"]}, indent=None)
