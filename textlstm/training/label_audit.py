"""Out-of-fold probabilities and the label issues cleanlab finds in them (`textlstm audit`).

A text's out-of-fold probabilities come from a model trained on the other folds only, so a
wrong label cannot be memorised by the model that judges it. Folds are stratified by label and
grouped by exact text (a duplicate never sits on both sides), seeded by the run's `seed`."""

from __future__ import annotations

from collections import Counter

import numpy as np

from textlstm.core.errors import UserError

FLAG_SCORE = "self_confidence"  # the given label's out-of-fold probability; lowest first


def fold_ids(texts: list[str], labels: list[str], folds: int, seed: int) -> np.ndarray:
    """(N,) the fold (0..folds-1) each training row is held out in."""
    from sklearn.model_selection import StratifiedGroupKFold

    if folds < 2:
        raise UserError(f"--folds is {folds}; an audit needs at least 2 folds (5 is usual).")
    counts = Counter(labels)
    if len(counts) < 2:
        only = repr(next(iter(counts))) if counts else "none"
        raise UserError(f"the training split has only one label ({only}); an audit compares "
                        "labels, so it needs at least two.")
    if len(labels) < folds:
        raise UserError(f"the training split has {len(labels)} texts, fewer than --folds "
                        f"{folds}; use --folds {max(2, len(labels))} or add texts.")
    rare, n = min(counts.items(), key=lambda kv: kv[1])
    if n < folds:
        fix = f"use --folds {n}" if n >= 2 else f"add texts labelled '{rare}' or drop them"
        raise UserError(f"label '{rare}' has {n} training text(s), fewer than --folds {folds}, so "
                        f"some fold would train without it; {fix}.")
    groups = np.unique(np.array(texts, dtype=object), return_inverse=True)[1].reshape(-1)
    out = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        out[held] = k
    return out


def tfidf_model(C: float = 10.0):
    """TF-IDF of words + multinomial logistic regression: `--fast`. C = 10 (weak
    regularisation: tf-idf values are small); word pairs scored no better on BBC and took
    twice as long (docs/benchmarks.md, "Label audit")."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(min_df=2, sublinear_tf=True),
                         LogisticRegression(C=C, max_iter=2000))


def fast_oof(texts: list[str], y: np.ndarray, fold_of: np.ndarray, n_classes: int
             ) -> tuple[np.ndarray, list]:
    """(N, C) out-of-fold probabilities from one TF-IDF model per fold, and those models
    (model k never saw a text of fold k). The same folds as the LSTM audit; a loop rather than
    sklearn's cross_val_predict, so each fold's model is kept to explain its texts."""
    from threadpoolctl import threadpool_limits

    probs = np.zeros((len(texts), n_classes))
    models = []
    arr = np.array(texts, dtype=object)
    # one BLAS thread: L-BFGS's small vector steps ran 4x slower with a thread per core on
    # 2 busy cores (28 s against 6 s for BBC's five folds)
    with threadpool_limits(1):
        for k in range(int(fold_of.max()) + 1):
            seen, held = fold_of != k, fold_of == k
            model = tfidf_model().fit(arr[seen], y[seen])
            probs[np.ix_(held, model.classes_)] = model.predict_proba(arr[held])
            models.append(model)
    return probs, models


def label_issues(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Rows cleanlab flags as likely mislabelled, least self-confident first."""
    from cleanlab.filter import find_label_issues

    return np.asarray(find_label_issues(y, probs, return_indices_ranked_by=FLAG_SCORE),
                      dtype=np.int64)


def noise_by_class(y: np.ndarray, probs: np.ndarray, flagged: np.ndarray,
                   labels: list[str]) -> list[dict]:
    """Per given label: its texts, the share flagged, and cleanlab's estimate of the share
    whose true label is another (1 - P(true = label | given = label), from the estimated joint
    distribution of given and true labels, `cleanlab.count.estimate_joint`)."""
    from cleanlab.count import estimate_joint

    joint = estimate_joint(y, probs)  # (C, C): P(given = i, true = j)
    is_flagged = np.zeros(len(y), dtype=bool)
    is_flagged[flagged] = True
    out = []
    for i, name in enumerate(labels):
        mine = y == i
        row = joint[i].sum()
        out.append({"label": name, "texts": int(mine.sum()),
                    "flagged": int(is_flagged[mine].sum()),
                    "flagged_share": round(float(is_flagged[mine].mean()), 4) if mine.any()
                    else 0.0,
                    "estimated_noise": round(float(1 - joint[i, i] / row), 4) if row else 0.0})
    return out


def tfidf_attributions(model, text: str, given: int, suggested: int
                       ) -> tuple[list[str], list[float]]:
    """Each word of `text` (as the vectorizer reads it) with tf-idf x (weight for the suggested
    label - weight for the given one): positive words argue for the suggested label."""
    vec, lr = model[0], model[-1]
    coef = lr.coef_ if lr.coef_.shape[0] > 1 else np.vstack([-lr.coef_[0], lr.coef_[0]]) / 2
    cls = list(lr.classes_)
    diff = (coef[cls.index(suggested)] if suggested in cls else 0) - \
        (coef[cls.index(given)] if given in cls else 0)
    x = vec.transform([text])
    weight = dict(zip(x.indices.tolist(), (x.data * np.asarray(diff)[x.indices]).tolist(),
                      strict=True))
    tokens = vec.build_analyzer()(text)
    words = [t for t in tokens if " " not in t]  # word pairs count in the weights, not the text
    vocab = vec.vocabulary_
    return words, [round(weight.get(vocab.get(w, -1), 0.0), 6) for w in words]
