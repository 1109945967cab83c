"""The parts of `predict BUNDLE --input` changed on 2026-12-06, each timed against what it
replaced, in one process (docs/benchmarks.md, "Predict at scale"):

    .venv/bin/python benchmarks/experiments/predict_parts.py BUNDLE [TEXTS.jsonl]

TEXTS defaults to the tweets test split (data/tweets_sentiment/test.jsonl, `textlstm prepare
tweets_sentiment`), repeated to 16,384 texts. Prints us a text (best of 5) for:
- ids: a spaCy Doc per text with a Python Token per token (the old path) against
  `encode_arrays`, at batch sizes 1, 4, 16, 64 and 1,000 (a server's micro-batch to a stream's);
- lines: an f-string and json.dumps per line (the old `answer_lines`) against the template;
- a worker's set-up in ms: a BundlePredictor built from its folder (the old worker) against a
  copy of the parent's with a session of its own;
- and how many of the texts under data/ (every split of every data set and stand-in, shuffled,
  lower case and not) `encode_arrays` gives other ids than a Doc per text does (expected: 0).
"""

from __future__ import annotations

import copy
import json
import random
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def best_us(fn, n: int) -> float:
    return round(1e6 * min(timeit.repeat(fn, number=1, repeat=5)) / n, 1)


def main(bundle: str, texts_file: str) -> None:
    from spacy.strings import get_string_id

    from textlstm.serving.bundle import MODEL, BundlePredictor, _session
    from textlstm.tokens.tokenize import _docs, encode_arrays

    rows = [json.loads(x)["text"] for x in Path(texts_file).read_text("utf-8").splitlines()]
    texts = (rows * (16384 // len(rows) + 1))[:16384]
    pred = BundlePredictor(bundle, threads=1)
    vocab, lower, cap = pred.vocab, pred.lowercase, pred.max_length
    get = vocab.by_key(get_string_id).get

    def doc_per_text(batch):
        return [[get(t.lower if lower else t.orth, 1) for t in d if not t.is_space][:cap]
                for d in _docs(batch)]

    doc_per_text(texts), encode_arrays(texts, vocab, lower, cap)  # spaCy's cache warm
    out: dict = {"texts": len(texts), "ids_us_per_text": {}}
    for size in (1, 4, 16, 64, 1000):
        batches = [texts[i : i + size] for i in range(0, 2048, size)]
        n = sum(map(len, batches))
        out["ids_us_per_text"][size] = {
            "doc_per_text": best_us(lambda b=batches: [doc_per_text(x) for x in b], n),
            "encode_arrays": best_us(
                lambda b=batches: [encode_arrays(x, vocab, lower, cap) for x in b], n)}
    probs = pred.predict_proba(texts[:4096]).tolist()
    keys = [json.dumps(lab, ensure_ascii=False) for lab in pred.labels]

    def old_lines():
        for text, row in zip(texts, probs, strict=False):
            top = max(range(len(row)), key=row.__getitem__)
            shown = ", ".join([f"{k}: {round(p, 6)!r}" for k, p in zip(keys, row, strict=True)])
            _ = (f'{{"text": {json.dumps(text, ensure_ascii=False)}, "label": {keys[top]}'
                 f', "probabilities": {{{shown}}}}}\n')

    out["lines_us_per_text"] = {
        "fstring_json_dumps": best_us(old_lines, len(probs)),
        "template": best_us(lambda: pred.answer_lines(texts[: len(probs)], probs), len(probs))}

    def copy_with_session():
        b = copy.copy(pred)
        b.session = _session(pred.folder / MODEL, 1)

    out["worker_setup_ms"] = {
        "from_folder": round(best_us(lambda: BundlePredictor(bundle, threads=1), 1) / 1000, 1),
        "copy_and_session": round(best_us(copy_with_session, 1) / 1000, 1)}
    everything = [json.loads(x)["text"] for f in sorted((ROOT / "data").glob("**/*.jsonl"))
                  if "cache" not in f.parts for x in f.read_text("utf-8").splitlines()]
    random.Random(0).shuffle(everything)
    out["same_ids_check"] = {"texts": len(everything), "differ": 0}
    for lowercase in (True, False):
        want = [[get(t.lower if lowercase else t.orth, 1) for t in d if not t.is_space]
                for d in _docs(everything)]
        flat, counts = encode_arrays(everything, vocab, lowercase)
        got, at = [], 0
        for n in counts.tolist():
            got.append(flat[at : at + n].tolist())
            at += n
        out["same_ids_check"]["differ"] += sum(a != b for a, b in zip(got, want, strict=True))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2
         else str(ROOT / "data" / "tweets_sentiment" / "test.jsonl"))
