"""Score an audit against the flips `benchmarks/experiments/label_noise.py` injected, and write
the training file without the flagged rows (docs/benchmarks.md, "Label audit").

    python benchmarks/experiments/audit_score.py NOISY_DIR AUDIT_DIR [--cleaned OUT.csv]

prints one JSON object: flagged, injected, precision (flagged rows that were flipped),
recall (flipped rows flagged), and the precision of the suggested label on the true flips
(how often the audit's suggestion is the label before the flip)."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("noisy", help="folder written by benchmarks/experiments/label_noise.py")
    p.add_argument("audit", help="folder written by textlstm audit")
    p.add_argument("--cleaned", default=None,
                   help="also write the training CSV without the flagged rows here")
    a = p.parse_args()
    flips = {f["row"]: f for f in json.loads((Path(a.noisy) / "flips.json").read_text())["flips"]}
    with open(Path(a.audit) / "label_issues.csv", newline="", encoding="utf-8") as fh:
        flagged = {int(r["row"]): r for r in csv.DictReader(fh)}
    hits = [r for r in flagged if r in flips]
    restored = sum(flagged[r]["suggested_label"] == flips[r]["true"] for r in hits)
    out = {"flagged": len(flagged), "injected": len(flips), "true_positives": len(hits),
           "precision": round(len(hits) / max(1, len(flagged)), 4),
           "recall": round(len(hits) / max(1, len(flips)), 4),
           "suggestion_is_the_true_label": round(restored / max(1, len(hits)), 4)}
    if a.cleaned:
        with open(Path(a.noisy) / "train.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        with open(a.cleaned, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(rows[0])
            w.writerows(r for i, r in enumerate(rows[1:]) if i not in flagged)
        out["kept"] = len(rows) - 1 - len(flagged)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
