"""What each stage of `predict --input` costs per core, to see which throughput 2 cores allow.

Times, in one process on the first 30,000 lines of a text file (a tweet per line): spaCy's
tokenizer alone (Doc objects only), `tokenize_texts` (token strings, lowercased; warm, after a
first batch), and the bundle's onnxruntime network from ids at 1 and 2 threads. `make bench`
records the same floor (benchmarks/bench.py `predict_floor`) beside predict's own rate:

    .venv/bin/python benchmarks/experiments/predict_floor.py BUNDLE TEXTS.txt
"""

import sys
import time

from textlstm.serving.bundle import BundlePredictor
from textlstm.tokens.tokenize import _nlp, tokenize_texts

bundle, path = sys.argv[1], sys.argv[2]
texts = open(path, encoding="utf-8").read().splitlines()[:30000]
n = len(texts)
tokenize_texts(texts[:2000])  # spaCy loaded and its cache warm, as in a long stream


def rate(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return n / (time.perf_counter() - t0)


def spacy_alone(texts):
    return sum(1 for _ in _nlp().tokenizer.pipe(texts, batch_size=1000))


print(f"spaCy tokenizer alone: {rate(spacy_alone, texts):,.0f} texts/s")
print(f"tokenize_texts: {rate(tokenize_texts, texts):,.0f} texts/s")
for threads in (1, 2):
    b = BundlePredictor(bundle, threads=threads)
    flat, lengths = b.encode(texts)
    print(f"network from ids, {threads} thread(s), batch {b.batch_size}: "
          f"{rate(b.logits_from_flat, flat, lengths):,.0f} texts/s")
