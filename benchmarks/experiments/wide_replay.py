"""`model.wide: tfidf` replayed on finished runs: fit the TF-IDF part and its mix on a run's
best checkpoint (what `textlstm train ... model.wide=tfidf` does after fit), and print the
validation and test scores of the network alone, the TF-IDF part alone and the mixture (with
the mean F1 of the classes with 2-10 training texts, where there are any).

    .venv/bin/python benchmarks/experiments/wide_replay.py RUN [RUN ...] [--json]

The network's training does not change with the option (its share is 1 while it trains), so
replaying a run gives the very numbers a run with the option would report, without training
again (docs/accuracy.md, "The TF-IDF part"). A run trained with the option is fitted again
(to the same numbers, or to those of the fit as it now stands).
"""

import argparse
import json

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

from textlstm.batches import make_datamodule
from textlstm.batches.recipe import RARE_TEXTS
from textlstm.core.hardware import set_threads
from textlstm.core.logs import quiet_libraries
from textlstm.data.columns import column_array
from textlstm.models.classifier import TextClassifier
from textlstm.serving.loader import load_run
from textlstm.training.module import LitTextClassifier
from textlstm.training.wide import MIXES, fit_wide


@torch.no_grad()
def per_mix(model, dm, split: str) -> dict:
    """Macro-F1 and mean loss of every share MIXES offers, on one split."""
    net, k = model.net.train(False), len(dm.labels)
    deep, lin, labels = [], [], []
    for batch in dm.loader(split, shuffle=False):
        deep.append(torch.log_softmax(net.forward_network(batch["ids"], batch["lengths"]), -1))
        lin.append(torch.log_softmax(net.wide(batch["ids"]), -1))
        labels.append(batch["labels"])
    deep, lin, y = torch.cat(deep), torch.cat(lin), torch.cat(labels)
    out = {}
    for m in MIXES:
        p = m * deep.exp() + (1 - m) * lin.exp()
        out[f"{m:.1f}"] = {
            "f1_macro": round(float(multiclass_f1_score(p.argmax(-1), y, k, average="macro")), 4),
            "loss": round(float(torch.nn.functional.nll_loss(p.clamp_min(1e-30).log(), y)), 4)}
    return out


@torch.no_grad()
def scores(model, dm, split: str) -> dict:
    net, k = model.net.train(False), len(dm.labels)
    parts = {"network": [], "tfidf": [], "mixture": []}
    labels = []
    for batch in dm.loader(split, shuffle=False):
        ids, lengths = batch["ids"], batch["lengths"]
        parts["network"].append(net.forward_network(ids, lengths).argmax(-1))
        parts["tfidf"].append(net.wide(ids).argmax(-1))
        parts["mixture"].append(net(ids, lengths).argmax(-1))
        labels.append(batch["labels"])
    y = torch.cat(labels)
    # rare classes as data.class_sampling=auto counts them: 2 to RARE_TEXTS training texts
    n_train = np.bincount(column_array(dm.splits["train"], "label_id"), minlength=k)
    rare = torch.from_numpy((n_train >= 2) & (n_train <= RARE_TEXTS))
    out = {}
    for name, preds in parts.items():
        p = torch.cat(preds)
        per_class = multiclass_f1_score(p, y, k, average="none")
        out[name] = {"f1_macro": round(float(multiclass_f1_score(p, y, k, average="macro")), 4),
                     "acc": round(float(multiclass_accuracy(p, y, k, average="micro")), 4)}
        if rare.any():  # the mean F1 of the classes with 2-10 training texts
            out[name]["rare_f1"] = round(float(per_class[rare].mean()), 4)
    return out


def load(run: str) -> tuple[LitTextClassifier, object]:
    """A finished run's model with a `model.wide` part (its own, or a new unfitted one) and the
    data module a run with the option builds."""
    pred = load_run(run, device="cpu")
    cfg = pred.cfg
    # the vocabulary a run with the option builds: the run's words first, then those seen
    # fewer than data.min_freq times (for the TF-IDF part only)
    dm = make_datamodule(cfg.data, seed=cfg.seed, labels=pred.labels, task=cfg.task,
                         long_text=cfg.model.long_text, wide_words=True)
    dm.prepare_data()
    dm.setup()
    assert dm.vocab.itos[: len(pred.vocab)] == pred.vocab.itos, "another vocabulary"
    if cfg.model.get("wide", "none") == "tfidf":  # trained with the part: fitted again here
        net = pred.net
    else:
        assert dm.network_vocab_size == len(pred.vocab)
        cfg.model.wide, cfg.model.network_vocab_size = "tfidf", len(pred.vocab)
        net = TextClassifier(len(dm.vocab), len(pred.labels), cfg.model, pred.net.chunking)
        missing, unexpected = net.load_state_dict(pred.net.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("wide.") for k in missing), (missing,
                                                                                 unexpected)
    return LitTextClassifier(net, pred.labels, dict(cfg.optim), task=cfg.task), dm


def replay(run: str) -> dict:
    model, dm = load(run)
    report = fit_wide(model, dm)
    return {"run": str(run), "wide": report, "validation": scores(model, dm, "validation"),
            "test": scores(model, dm, "test"),
            "per_mix": {s: per_mix(model, dm, s) for s in ("validation", "test")}}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--json", action="store_true", help="one JSON object per run")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    quiet_libraries()
    set_threads(args.threads)
    for run in args.runs:
        r = replay(run)
        if args.json:
            print(json.dumps(r))
            continue
        print(f"{run}: C={r['wide']['C']:g}, the network's share {r['wide']['mix']:.1f}")
        for split in ("validation", "test"):
            print(f"  {split:10s} " + "  ".join(
                f"{k} F1 {v['f1_macro']:.4f} acc {v['acc']:.4f}"
                + (f" rare-class F1 {v['rare_f1']:.4f}" if "rare_f1" in v else "")
                for k, v in r[split].items()))
