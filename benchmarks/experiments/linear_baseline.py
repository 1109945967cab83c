"""TF-IDF + LinearSVC on an embedded data set's own splits, C and n-grams chosen on validation.

scikit-learn comes with textlstm (`textlstm audit --fast` uses it):

    .venv/bin/python benchmarks/experiments/linear_baseline.py bbc_news

Prints every setting's validation macro-F1 and test scores, the chosen one, and the indices of
the test texts it gets wrong (to compare with a run's errors.json).
"""

import json
import sys

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.svm import LinearSVC

src = sys.argv[1] if len(sys.argv) > 1 else "bbc_news"


def load(split):
    rows = [json.loads(x) for x in open(f"data/{src}/{split}.jsonl", encoding="utf-8")]
    return [r["text"] for r in rows], [r["label"] for r in rows]


(xtr, ytr), (xva, yva), (xte, yte) = load("train"), load("validation"), load("test")
best = None
for ngrams in ((1, 1), (1, 2)):
    for C in (0.1, 0.3, 1, 3):
        vec = TfidfVectorizer(ngram_range=ngrams, sublinear_tf=True)
        model = LinearSVC(C=C).fit(vec.fit_transform(xtr), ytr)
        f1 = f1_score(yva, model.predict(vec.transform(xva)), average="macro")
        pred = model.predict(vec.transform(xte))
        print(f"ngrams {ngrams} C {C}: val F1 {f1:.4f}  test acc "
              f"{accuracy_score(yte, pred):.4f} F1 {f1_score(yte, pred, average='macro'):.4f}")
        if best is None or f1 > best[0]:
            best = (f1, ngrams, C, pred)
f1, ngrams, C, pred = best
print(f"chosen on validation: ngrams {ngrams} C {C}; test errors at",
      [i for i, (y, p) in enumerate(zip(yte, pred, strict=True)) if y != p])
