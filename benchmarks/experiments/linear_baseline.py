"""TF-IDF + LinearSVC on a data set's own splits, C and n-grams chosen on validation macro-F1.

scikit-learn comes with textlstm (`textlstm audit --fast` uses it):

    .venv/bin/python benchmarks/experiments/linear_baseline.py bbc_news          # make baseline
    .venv/bin/python benchmarks/experiments/linear_baseline.py data/standins/sms-like --json

DATA is an embedded source's name (its splits under data/, `make data` writes them) or a folder
holding train/validation/test.jsonl with {"text", "label"} (benchmarks/experiments/standins.py
writes such folders). Prints every setting's validation macro-F1 and test scores, the chosen
one, and the indices of the test texts it gets wrong (to compare with a run's errors.json);
with --json, one JSON object instead: the chosen setting, its validation macro-F1 and its test
accuracy and macro-F1.
"""

import argparse
import json
import sys
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.svm import LinearSVC

ROOT = Path(__file__).resolve().parents[2]

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("data", nargs="?", default="bbc_news",
                help="an embedded source's name or a folder with train/validation/test.jsonl")
ap.add_argument("--json", action="store_true", help="print one JSON object with the result")
args = ap.parse_args()
folder = Path(args.data) if "/" in args.data or Path(args.data).is_dir() \
    else ROOT / "data" / args.data
missing = [s for s in ("train", "validation", "test") if not (folder / f"{s}.jsonl").is_file()]
if missing:
    print(f"{folder} has no {', '.join(s + '.jsonl' for s in missing)}; pass an embedded source "
          "(after `make data`) or a folder with train/validation/test.jsonl.", file=sys.stderr)
    sys.exit(2)


def load(split):
    rows = [json.loads(x) for x in open(folder / f"{split}.jsonl", encoding="utf-8")]
    return [r["text"] for r in rows], [r["label"] for r in rows]


(xtr, ytr), (xva, yva), (xte, yte) = load("train"), load("validation"), load("test")
best = None
for ngrams in ((1, 1), (1, 2)):
    for C in (0.1, 0.3, 1, 3):
        vec = TfidfVectorizer(ngram_range=ngrams, sublinear_tf=True)
        model = LinearSVC(C=C).fit(vec.fit_transform(xtr), ytr)
        f1 = f1_score(yva, model.predict(vec.transform(xva)), average="macro")
        pred = model.predict(vec.transform(xte))
        if not args.json:
            print(f"ngrams {ngrams} C {C}: val F1 {f1:.4f}  test acc "
                  f"{accuracy_score(yte, pred):.4f} F1 {f1_score(yte, pred, average='macro'):.4f}")
        if best is None or f1 > best[0]:
            best = (f1, ngrams, C, pred)
f1, ngrams, C, pred = best
if args.json:
    print(json.dumps({"data": str(args.data), "model": "tfidf+linearsvc",
                      "ngrams": list(ngrams), "C": C, "val_macro_f1": round(f1, 4),
                      "test_accuracy": round(accuracy_score(yte, pred), 4),
                      "test_macro_f1": round(f1_score(yte, pred, average="macro"), 4)}))
else:
    print(f"chosen on validation: ngrams {ngrams} C {C}; test errors at",
          [i for i, (y, p) in enumerate(zip(yte, pred, strict=True)) if y != p])
