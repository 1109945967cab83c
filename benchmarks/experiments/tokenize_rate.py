"""spaCy tokenization rate over equal consecutive chunks of a bench-scale corpus, in one process.

Shows whether tokenizing gets slower as a run goes on (it did not: docs/operations.md "Large
corpora and streaming").
Run after `make bench-scale` has written the corpus:

    .venv/bin/python benchmarks/experiments/tokenize_rate.py [CORPUS] [CHUNKS] [SIZE]

CORPUS defaults to data/scale/4000000-seed0/train.jsonl, CHUNKS to 6, SIZE to 200000.
"""

import itertools
import json
import sys
import time

from textlstm.tokens.tokenize import tokenize_texts

path = sys.argv[1] if len(sys.argv) > 1 else "data/scale/4000000-seed0/train.jsonl"
chunks = int(sys.argv[2]) if len(sys.argv) > 2 else 6
size = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000
with open(path, encoding="utf-8") as fh:
    for chunk in range(chunks):
        texts = [json.loads(line)["text"] for line in itertools.islice(fh, size)]
        t0 = time.perf_counter()
        for i in range(0, len(texts), 1000):  # the batch size datasets.map hands the tokenizer
            tokenize_texts(texts[i : i + 1000])
        print(f"chunk {chunk}: {len(texts) / (time.perf_counter() - t0):,.0f} docs/s", flush=True)
