"""Stand-ins for held-out data sets we cannot see, cut from the embedded tweets (docs/accuracy.md).

    .venv/bin/python benchmarks/experiments/standins.py OUT_DIR

writes OUT_DIR/small/{train,validation,test}.jsonl (2,000 training tweets drawn at random,
seed 0; validation and test whole) and OUT_DIR/imbalanced/... (every split keeps 100 % of
negatives, 35 % of neutrals, 12 % of positives, seed 0). Train on one with
`textlstm train --config configs/auto.yaml data.train_file=OUT_DIR/small/train.jsonl
data.validation_file=... data.test_file=...`.
"""

import json
import random
import shutil
import sys
from pathlib import Path

SRC = Path("data/tweets_sentiment")
out = Path(sys.argv[1])

small = out / "small"
small.mkdir(parents=True, exist_ok=True)
rng = random.Random(0)
train = (SRC / "train.jsonl").read_text(encoding="utf-8").splitlines()
rng.shuffle(train)
(small / "train.jsonl").write_text("\n".join(train[:2000]) + "\n", encoding="utf-8")
for split in ("validation", "test"):
    shutil.copy(SRC / f"{split}.jsonl", small / f"{split}.jsonl")

imbalanced = out / "imbalanced"
imbalanced.mkdir(parents=True, exist_ok=True)
rng = random.Random(0)
keep = {"negative": 1.0, "neutral": 0.35, "positive": 0.12}
for split in ("train", "validation", "test"):
    lines = (SRC / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(x) for x in lines]
    kept = [r for r in rows if rng.random() < keep[r["label"]]]
    (imbalanced / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept),
                                               encoding="utf-8")
