"""A synthetic multi-label data set with one learnable rule per label (no real multi-label
document set ships in a PyPI package; see docs/multilabel.md).

A text is `sport` iff it holds one of the sport words, `money` iff one of the money words,
`tech` iff one of the tech words; each label applies with probability 0.35, independently, so
a text has any number of labels, none included (about 27 %). The rest of a text is 4-9 filler
words. train is written as JSON Lines with label lists, validation and test as CSV with
`a|b` strings, so both ways of writing labels are exercised:

    .venv/bin/python benchmarks/experiments/multilabel_synthetic.py data/synthetic_multilabel \
        [TRAIN] [EVAL]
    .venv/bin/textlstm train --config configs/base.yaml task=multilabel \\
        data.train_file=data/synthetic_multilabel/train.jsonl \\
        data.validation_file=data/synthetic_multilabel/validation.csv \\
        data.test_file=data/synthetic_multilabel/test.csv data.label_field=tags

TRAIN (default 1000) and EVAL (default 200: validation and test each) are row counts.
tests/test_multilabel.py builds the same kind of set.
"""

import csv
import json
import random
import sys
from pathlib import Path

RULES = {"sport": ["match", "goal", "team", "striker"],
         "money": ["shares", "bank", "profit", "market"],
         "tech": ["phone", "software", "chip", "laptop"]}
FILLER = ("the a of and to in on with was is for it at by from this that they we you said new "
          "day week year people time way city house car road water food music book film").split()


def rows(n: int, seed: int) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choices(FILLER, k=rng.randint(4, 9))
        labels = [lab for lab in sorted(RULES) if rng.random() < 0.35]
        for lab in labels:
            for w in rng.sample(RULES[lab], rng.randint(1, 2)):
                words.insert(rng.randrange(len(words) + 1), w)
        out.append((" ".join(words), labels))
    return out


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "data/synthetic_multilabel")
    n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    n_eval = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.jsonl", "w", encoding="utf-8") as fh:
        for text, labels in rows(n_train, 1):
            fh.write(json.dumps({"text": text, "tags": labels}) + "\n")
    for split, seed in (("validation", 2), ("test", 3)):
        with open(out / f"{split}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "tags"])
            w.writerows((text, "|".join(labels)) for text, labels in rows(n_eval, seed))
    print(out)


if __name__ == "__main__":
    main()
