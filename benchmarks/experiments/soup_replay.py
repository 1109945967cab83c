"""Which epochs to average, judged on validation the rule did not choose on.

    .venv/bin/python benchmarks/experiments/soup_replay.py RUN DATA_DIR

RUN trained with `trainer.average_epochs=greedy` (the recipe), so its last.ckpt holds the weights
of every epoch from `trainer.average_from_epoch` on (GreedySoup's callback state); DATA_DIR holds
the run's validation.jsonl and test.jsonl ({"text", "label"} lines). The validation split is cut
in two halves (seeded); each rule picks its epochs on one half and is scored on the other, both
ways, and the two held-out macro-F1s are averaged: a greedy rule's gain on the split it chose on
is partly selection, the other half is not. The rules:

- best: the best epoch alone (what a run without averaging ships, among these epochs);
- uniform: every epoch (`trainer.average_epochs=all`);
- greedy: best first, an epoch joins if macro-F1 does not fall (`GreedySoup.cook`);
- greedy+loss: the same, and validation loss must not rise either;
- greedy-loss: ranked and joined on validation loss alone.

Each rule's epochs chosen on the whole validation split and their test figures are printed
too, for the record; choose on the held-out column. One JSON line per run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score

from textlstm.serving.loader import load_run
from textlstm.training.trainer import mean_state


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def replay(run: str, data: str, seed: int = 0) -> dict:
    pred = load_run(run, which="last", device="cpu")
    pred.temperature = 1.0  # the loss of the network itself, not of the calibrated one
    ckpt = torch.load(Path(run) / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=True)  # the package stores the kept epochs as plain tensors
    snaps = next(v for k, v in ckpt["callbacks"].items() if "GreedySoup" in k)["epochs"]
    if len(snaps) < 2:
        raise SystemExit(f"{run}: fewer than two epochs kept; nothing to average")
    index = {label: i for i, label in enumerate(pred.labels)}
    val, test = _rows(Path(data) / "validation.jsonl"), _rows(Path(data) / "test.jsonl")
    ids = {"val": pred.encode([r["text"] for r in val]),
           "test": pred.encode([r["text"] for r in test])}
    gold = {"val": np.array([index[r["label"]] for r in val]),
            "test": np.array([index[r["label"]] for r in test])}
    cache: dict[tuple, np.ndarray] = {}

    def probs(epochs: tuple, split: str) -> np.ndarray:  # (N, C)
        if (epochs, split) not in cache:
            pred.net.load_state_dict(mean_state([snaps[e]["state"] for e in epochs]))
            cache[epochs, split] = pred.proba_from_ids(ids[split]).numpy()
        return cache[epochs, split]

    def score(epochs: tuple, rows: np.ndarray, split: str = "val") -> tuple[float, float]:
        p, y = probs(epochs, split)[rows], gold[split][rows]
        loss = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())
        return float(f1_score(y, p.argmax(1), average="macro")), loss

    def greedy(order: list[int], rows: np.ndarray, joins) -> tuple:
        soup = [order[0]]
        now = score((order[0],), rows)
        for e in order[1:]:
            trial = score(tuple(sorted([*soup, e])), rows)
            if joins(trial, now):
                soup, now = [*soup, e], trial
        return tuple(sorted(soup))

    def rules(rows: np.ndarray) -> dict[str, tuple]:
        epochs = sorted(snaps)
        each = {e: score((e,), rows) for e in epochs}
        by_f1 = sorted(epochs, key=lambda e: (-each[e][0], each[e][1], -e))  # as cook() ranks
        by_loss = sorted(epochs, key=lambda e: each[e][1])
        return {"best": (by_f1[0],), "uniform": tuple(epochs),
                "greedy": greedy(by_f1, rows, lambda t, n: t[0] >= n[0]),
                "greedy+loss": greedy(by_f1, rows, lambda t, n: t[0] >= n[0] and t[1] <= n[1]),
                "greedy-loss": greedy(by_loss, rows, lambda t, n: t[1] <= n[1])}

    perm = np.random.default_rng(seed).permutation(len(val))
    halves = (perm[::2], perm[1::2])
    held: dict[str, list[float]] = {}
    for pick, judge in ((0, 1), (1, 0)):
        for name, epochs in rules(halves[pick]).items():
            held.setdefault(name, []).append(score(epochs, halves[judge])[0])
    everything = np.arange(len(val))
    out = {}
    for name, epochs in rules(everything).items():
        test_pred = probs(epochs, "test").argmax(1)
        out[name] = {"heldout_val_f1": round(float(np.mean(held[name])), 4),
                     "epochs": list(epochs), "val_f1": round(score(epochs, everything)[0], 4),
                     "test_f1": round(float(f1_score(gold["test"], test_pred,
                                                     average="macro")), 4)}
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps({"run": sys.argv[1], **replay(sys.argv[1], sys.argv[2])}))
