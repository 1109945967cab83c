"""Inject label noise into an embedded data set's training split, for `textlstm audit`'s
benchmark (docs/benchmarks.md, "Label audit").

    python benchmarks/experiments/label_noise.py bbc_news 0.10 --seed 0 --out data/noisy/bbc10

writes OUT/train.csv (a share of its labels flipped to another label drawn at random),
OUT/validation.csv and OUT/test.csv (copied unchanged) and OUT/flips.json (the rows flipped,
their true and new labels). Train on it with
    textlstm train --config configs/bbc_news.yaml data.train_file=OUT/train.csv \\
        data.validation_file=OUT/validation.csv data.test_file=OUT/test.csv
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the checkout: benchmarks/experiments/ is two below it


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for r in rows:
            w.writerow([r["text"], r["label"]])


def flip(rows: list[dict], share: float, seed: int) -> list[dict]:
    """Flip round(share x N) labels, each to one of the other labels, uniformly; returns the
    flips (row, true, given)."""
    rng = np.random.default_rng(seed)
    labels = sorted({r["label"] for r in rows})
    chosen = rng.choice(len(rows), size=int(round(share * len(rows))), replace=False)
    flips = []
    for i in sorted(chosen.tolist()):
        true = rows[i]["label"]
        new = str(rng.choice([lab for lab in labels if lab != true]))
        rows[i] = rows[i] | {"label": new}
        flips.append({"row": i, "true": true, "given": new})
    return flips


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", choices=["bbc_news", "tweets_sentiment"])
    p.add_argument("share", type=float, help="share of training labels to flip, e.g. 0.1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=str(ROOT / "data"))
    p.add_argument("--out", required=True)
    a = p.parse_args()
    from textlstm.data.sources import prepare_embedded

    src = prepare_embedded(a.name, a.data_dir)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    train = read_jsonl(src / "train.jsonl")
    flips = flip(train, a.share, a.seed)
    write_csv(out / "train.csv", train)
    for split in ("validation", "test"):
        write_csv(out / f"{split}.csv", read_jsonl(src / f"{split}.jsonl"))
    (out / "flips.json").write_text(json.dumps({"source": a.name, "share": a.share,
                                                "seed": a.seed, "flips": flips}, indent=1))
    print(f"{out}: flipped {len(flips)} of {len(train)} training labels")


if __name__ == "__main__":
    main()
