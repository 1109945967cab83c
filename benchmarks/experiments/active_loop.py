"""A simulated labelling loop on tweets, for `textlstm suggest`'s benchmark (docs/benchmarks.md,
"Choosing what to label").

    python benchmarks/experiments/active_loop.py --strategy breaking-ties --seed 0 \
        --out runs/active/bt-0.json

Start from --start training tweets drawn at random (seeded); each round trains the tweets
preset on the labelled tweets (validation and test: the embedded splits, unchanged), records
its test macro-F1, then ranks the rest of the training split (the pool, labels hidden) with
`commands.suggest.rank_pool` and "labels" the first --step of them (their true labels come
back). --rounds trainings in all. Extra key=value overrides go to every training.

    python benchmarks/experiments/active_loop.py --summary runs/active/*.json

prints the mean test macro-F1 per round and strategy over the seeds, and the labels each
strategy needed to reach random's final mean macro-F1 (interpolated between rounds)."""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the checkout: benchmarks/experiments/ is two below it


def _write(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows([r["text"], r["label"]] for r in rows)
    return path


def _train_round(work: Path, rows: list[dict], seed: int, overrides: list[str]):
    from textlstm.commands.train import train
    from textlstm.core.config import load_config, preset_path
    from textlstm.data.sources import prepare_embedded

    folder = prepare_embedded("tweets_sentiment", ROOT / "data")
    cfg = load_config(preset_path("tweets_sentiment"), [
        f"data.train_file={_write(work / f'train-{len(rows)}.csv', rows)}",
        f"data.validation_file={folder / 'validation.jsonl'}",
        f"data.test_file={folder / 'test.jsonl'}", f"seed={seed}", f"run_root={work}",
        "name=round", "wandb.mode=disabled", "trainer.progress_bar=false", *overrides])
    return train(cfg)


def summary(paths: list[str]) -> dict:
    runs: dict[str, list[list[dict]]] = {}
    for path in paths:
        r = json.loads(Path(path).read_text())
        runs.setdefault(r["strategy"], []).append(r["rounds"])
    out = {}
    for strategy, loops in runs.items():
        sizes = [x["labelled"] for x in loops[0]]
        mean = [float(np.mean([loop[i]["test_f1_macro"] for loop in loops]))
                for i in range(len(sizes))]
        out[strategy] = {"seeds": len(loops), "labelled": sizes,
                         "mean_f1_macro": [round(m, 4) for m in mean]}
    if "random" in out:
        goal = out["random"]["mean_f1_macro"][-1]
        for v in out.values():
            v["labels_to_reach_random_final"] = _reach(v["labelled"], v["mean_f1_macro"], goal)
            if v["labels_to_reach_random_final"] is not None:
                v["share_of_random_labels"] = round(v["labels_to_reach_random_final"]
                                                    / out["random"]["labelled"][-1], 3)
    return out


def _reach(sizes: list[int], f1: list[float], goal: float) -> float | None:
    """Labels at which the curve first reaches `goal`, linear between rounds."""
    for i, f in enumerate(f1):
        if f >= goal:
            if i == 0:
                return float(sizes[0])
            a, b = f1[i - 1], f
            return round(sizes[i - 1] + (goal - a) / (b - a) * (sizes[i] - sizes[i - 1]), 1)
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--summary", nargs="+", default=None, help="summarise these result files")
    p.add_argument("--strategy", default="breaking-ties")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=500)
    p.add_argument("--step", type=int, default=250)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--out", default=None, help="JSON results")
    p.add_argument("overrides", nargs="*")
    a = p.parse_args()
    if a.summary:
        print(json.dumps(summary(a.summary), indent=1))
        return
    if not a.out:
        p.error("--out is required")
    from textlstm.commands.suggest import rank_pool
    from textlstm.data.sources import prepare_embedded
    from textlstm.serving.loader import load_run

    folder = prepare_embedded("tweets_sentiment", ROOT / "data")
    pool = [json.loads(x) for x in (folder / "train.jsonl").read_text().splitlines() if x]
    rng = np.random.default_rng(a.seed)
    labelled = rng.choice(len(pool), a.start, replace=False).tolist()
    work = Path(a.out).with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    rounds = []
    for r in range(a.rounds):
        t0 = time.perf_counter()
        run = _train_round(work, [pool[i] for i in labelled], a.seed, a.overrides)
        test = json.loads((run / "metrics.json").read_text())["test"]
        rounds.append({"labelled": len(labelled), "test_f1_macro": round(test["f1_macro"], 4),
                       "test_accuracy": round(test["accuracy"], 4), "run": str(run)})
        if r + 1 < a.rounds:
            taken = set(labelled)
            rest = np.array([i for i in range(len(pool)) if i not in taken])
            pred, texts = load_run(run, device="cpu"), [pool[i]["text"] for i in rest]
            probs, vectors = (t.numpy() for t in pred.proba_and_vectors(texts))
            order, _ = rank_pool(probs.astype(np.float64), a.strategy, a.seed * 100 + r,
                                 a.step, vectors)
            labelled += rest[order[: a.step]].tolist()
        rounds[-1]["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(rounds[-1]), flush=True)
    Path(a.out).write_text(json.dumps({"strategy": a.strategy, "seed": a.seed,
                                       "overrides": a.overrides, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
