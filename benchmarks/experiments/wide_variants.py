"""Two variants of `model.wide: tfidf` replayed on finished runs, neither in the recipe
(docs/accuracy.md, "Measured and not kept"):

- `--refit`: the TF-IDF part fitted again on the training and validation texts together, at
  the C and share chosen on validation (scikit-learn's `refit` of a grid search). Validation
  cannot score it (it trained on those texts), so this prints test macro-F1 and accuracy of the
  part as the recipe fits it and refitted, of the part alone and of the mixture.
- `--bigrams`: scikit-learn's TF-IDF logistic regression on words against words and word
  pairs, over the run's own ids (so the same vocabulary and truncation), class-balanced, C from
  1, 3, 10, 30 by validation macro-F1, then the network's share with the best validation
  macro-F1. Prints validation (and test) macro-F1 of the part and of its best mixture.
- `--chars DATA_DIR`: the same with scikit-learn's own tokens on the raw texts of DATA_DIR's
  train/validation/test.jsonl: words, character 2-5-grams (`char_wb`), and both; the network's
  probabilities from `Predictor.predict_proba` with the run's share set to 1.

    .venv/bin/python benchmarks/experiments/wide_variants.py --refit RUN [RUN ...]
    .venv/bin/python benchmarks/experiments/wide_variants.py --bigrams RUN [RUN ...]
    .venv/bin/python benchmarks/experiments/wide_variants.py --chars data/standins/small RUN
    .venv/bin/python benchmarks/experiments/wide_variants.py --offsets data/tweets_sentiment RUN

`--offsets DATA_DIR` is not about the part: one log-probability offset per class (the first
held at 0) added to the run's answers, chosen on validation macro-F1 by coordinate search
(-1.5 to 1.5 in steps of 0.05, three passes), and the test macro-F1 before and after.

RUN is a run folder of `configs/auto.yaml`; `--bigrams` reads texts read in one window only.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from textlstm.core.hardware import set_threads
from textlstm.core.logs import quiet_libraries
from textlstm.data.columns import column_array
from textlstm.models.wide import smooth_idf
from textlstm.training import wide as W

try:  # run as a module (python -m benchmarks.experiments.wide_variants) or as a file
    from benchmarks.experiments.wide_replay import load, scores
except ImportError:
    from wide_replay import load, scores


@torch.no_grad()
def refit(model, dm, C: float) -> None:
    """The part's idf and weights from the training and validation texts together."""
    wide = model.net.wide
    V, k = wide.idf.numel(), len(dm.labels)
    train, val = dm.splits["train"], dm.splits["validation"]
    (f1, r1), (f2, r2) = W.ragged_ids(train), W.ragged_ids(val)
    n = len(train) + len(val)
    pairs = W.word_counts(np.concatenate([f1, f2]), np.concatenate([r1, r2 + len(train)]), V)
    idf = smooth_idf(torch.from_numpy(np.bincount(pairs[1], minlength=V)), n)
    x = W.tfidf_matrix(*pairs, n, idf.double().numpy(), V)
    y = torch.from_numpy(np.concatenate([column_array(train, "label_id"),
                                         column_array(val, "label_id")])).long()
    with torch.enable_grad():
        w, b = W.fit_logistic(x, y, k, C)
    wide.idf.copy_(idf.to(wide.idf.dtype))
    wide.weight.copy_(w)
    wide.bias.copy_(b)


def show(name: str, s: dict) -> str:
    return "  ".join(f"{p} {v['f1_macro']:.4f}/{v['acc']:.4f}" for p, v in s.items())


def run_refit(run: str) -> None:
    model, dm = load(run)
    report = W.fit_wide(model, dm)
    before = scores(model, dm, "test")
    refit(model, dm, report["C"])
    after = scores(model, dm, "test")
    print(f"{run}: C={report['C']:g} share {report['mix']:.1f}; test macro-F1/accuracy\n"
          f"  as fitted  {show('before', before)}\n  refitted   {show('after', after)}")


@torch.no_grad()
def texts_and_network(model, dm, split: str):
    """Each text as its ids joined by spaces, the network's probabilities and the labels, in
    the loader's order."""
    net, docs, probs, labels = model.net.train(False), [], [], []
    for batch in dm.loader(split, shuffle=False):
        ids, lengths = batch["ids"], batch["lengths"]
        assert ids.dim() == 2 and len(ids) == len(batch["labels"]), "one window per text only"
        probs.append(torch.softmax(net.forward_network(ids, lengths), -1))
        labels.append(batch["labels"])
        docs += [" ".join(f"w{i}" for i in row[: int(n)].tolist() if i > 1)
                 for row, n in zip(ids, lengths, strict=True)]
    return docs, torch.cat(probs).numpy(), torch.cat(labels).numpy()


def run_bigrams(run: str) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import f1_score

    model, dm = load(run)
    (tr, _, ytr), (va, pva, yva), (te, pte, yte) = (texts_and_network(model, dm, s)
                                                   for s in ("train", "validation", "test"))
    f1 = lambda y, p: f1_score(y, p, average="macro")  # noqa: E731
    print(f"{run}: the network alone: validation {f1(yva, pva.argmax(1)):.4f}, "
          f"test {f1(yte, pte.argmax(1)):.4f}")
    for top in (1, 2):
        vec = TfidfVectorizer(ngram_range=(1, top), sublinear_tf=True, token_pattern=r"\S+")
        xs = [vec.fit_transform(tr), vec.transform(va), vec.transform(te)]
        print(f"  {'words' if top == 1 else 'words and pairs'}: "
              f"{best_mixture(xs, (ytr, yva, yte), pva, pte)}")


def best_mixture(xs, ys, pva, pte) -> str:
    """A class-balanced logistic regression on (train, validation, test) features, C from 1, 3,
    10, 30 and then the network's share by validation macro-F1 -> one line of scores."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    f1 = lambda y, p: f1_score(y, p, average="macro")  # noqa: E731
    fits = [LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(xs[0], ys[0])
            for C in (1, 3, 10, 30)]
    lr = max(fits, key=lambda m: f1(ys[1], m.predict(xs[1])))
    qva, qte = lr.predict_proba(xs[1]), lr.predict_proba(xs[2])
    share = max(np.linspace(0, 1, 11),
                key=lambda m: f1(ys[1], (m * pva + (1 - m) * qva).argmax(1)))
    return (f"C={lr.C:g}, the part validation {f1(ys[1], lr.predict(xs[1])):.4f} test "
            f"{f1(ys[2], lr.predict(xs[2])):.4f}; best share {share:.1f}: validation "
            f"{f1(ys[1], (share * pva + (1 - share) * qva).argmax(1)):.4f} test "
            f"{f1(ys[2], (share * pte + (1 - share) * qte).argmax(1)):.4f}")


def run_chars(run: str, folder: str) -> None:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import f1_score

    from textlstm.serving.loader import load_run

    pred = load_run(run, device="cpu")
    if getattr(pred.net, "wide", None) is not None:
        pred.net.wide.mix.fill_(1.0)  # the network alone
    splits = [[json.loads(line) for line in open(Path(folder) / f"{s}.jsonl")]
              for s in ("train", "validation", "test")]
    texts = [[r["text"] for r in rows] for rows in splits]
    index = {label: i for i, label in enumerate(pred.labels)}
    ys = [np.array([index[r["label"]] for r in rows]) for rows in splits]
    pva, pte = (pred.predict_proba(t).numpy() for t in texts[1:])
    f1 = lambda y, p: f1_score(y, p, average="macro")  # noqa: E731
    print(f"{run}: the network alone: validation {f1(ys[1], pva.argmax(1)):.4f}, "
          f"test {f1(ys[2], pte.argmax(1)):.4f}")
    words = dict(sublinear_tf=True, min_df=2)
    chars = dict(sublinear_tf=True, min_df=2, analyzer="char_wb", ngram_range=(2, 5))
    for name, kinds in (("words", [words]), ("characters 2-5", [chars]),
                        ("both", [words, chars])):
        vecs = [TfidfVectorizer(**k) for k in kinds]
        xs = [hstack([v.fit_transform(texts[0]) for v in vecs]).tocsr()]
        xs += [hstack([v.transform(t) for v in vecs]).tocsr() for t in texts[1:]]
        print(f"  {name}: {best_mixture(xs, ys, pva, pte)}")


def run_offsets(run: str, folder: str) -> None:
    from sklearn.metrics import f1_score

    from textlstm.serving.loader import load_run

    pred = load_run(run, device="cpu")
    splits = [[json.loads(line) for line in open(Path(folder) / f"{s}.jsonl")]
              for s in ("validation", "test")]
    index = {label: i for i, label in enumerate(pred.labels)}
    (yva, yte) = (np.array([index[r["label"]] for r in rows]) for rows in splits)
    lva, lte = (pred.predict_proba([r["text"] for r in rows]).clamp_min(1e-30).log().numpy()
                for rows in splits)
    f1 = lambda y, p: f1_score(y, p, average="macro")  # noqa: E731
    offsets, best = np.zeros(len(pred.labels)), f1(yva, lva.argmax(1))
    for _ in range(3):
        for c in range(1, len(offsets)):
            for v in np.arange(-1.5, 1.51, 0.05):
                trial = offsets.copy()
                trial[c] = v
                score = f1(yva, (lva + trial).argmax(1))
                if score > best + 1e-9:
                    best, offsets = score, trial
    print(f"{run}: validation {f1(yva, lva.argmax(1)):.4f} -> {best:.4f}, test "
          f"{f1(yte, lte.argmax(1)):.4f} -> {f1(yte, (lte + offsets).argmax(1)):.4f}, "
          f"offsets {np.round(offsets, 2).tolist()}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--refit", action="store_true")
    what.add_argument("--bigrams", action="store_true")
    what.add_argument("--chars", metavar="DATA_DIR")
    what.add_argument("--offsets", metavar="DATA_DIR")
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    quiet_libraries()
    set_threads(args.threads)
    for r in args.runs:
        if args.chars:
            run_chars(r, args.chars)
        elif args.offsets:
            run_offsets(r, args.offsets)
        else:
            (run_refit if args.refit else run_bigrams)(r)
