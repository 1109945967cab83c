"""`predict BUNDLE --input` against its floor, timed in one process that never imports torch (as
`textlstm predict BUNDLE --input` runs; workers forked from a process holding torch and a
trained model, ~800 MB, were ~10 % slower). `make bench` runs it once per bundle:

    .venv/bin/python benchmarks/predict_stream.py TEXTS.json BUNDLE [--floor] [--rounds 5]

prints one JSON object: the stream's texts/s and, with `--floor`, what spaCy and the network
allow on these cores, measured in the same rounds (a round times the floor's parts, then the
stream), so a slow minute on a shared machine lowers both; each figure is the median over
rounds, the shares the median of each round's share.

The floor (issue 28): a text costs a core 1/tokenize + 1/network seconds, so `cores` cores
label at most cores / (1/tokenize + 1/network) texts/s, before looking up a word or writing a
line. tokenize is `tokenize_texts` (spaCy's tokenizer to token strings, warm), the network runs
from ids on one onnxruntime thread with every text sorted by length at once, at its fastest
batch size of FLOOR_BATCHES. predict itself no longer makes token strings (`encode_texts`
reads spaCy's ids), so `spacy_floor` is the stricter bound, spaCy's tokenizer alone in place of
`tokenize_texts`: no path through spaCy can beat it."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

FLOOR_BATCHES = (8, 16, 32, 64, 128, 256)
# on this shared 2-core VM one round's share moved from 79 to 96 % within a run (2026-12-06:
# 12 rounds in 4 runs, median 91 %, the runs' medians of 3 rounds 85 to 94 %); 5 rounds make
# the median less a matter of one slow second
ROUNDS = 5


def _rate(texts: list[str], fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return len(texts) / (time.perf_counter() - t0)


def floor_rate(tokenize: float, network: float, cores: int) -> float:
    """Texts/s when every core tokenizes a text and then runs it through the network, one
    after the other: each text costs 1/tokenize + 1/network core-seconds."""
    return cores / (1 / tokenize + 1 / network)


def measure(bundle: str | Path, texts: list[str], floor: bool, rounds: int = ROUNDS) -> dict:
    from textlstm.core.hardware import usable_cores
    from textlstm.serving.bundle import BundlePredictor
    from textlstm.tokens.tokenize import _nlp, encodable, tokenize_texts

    def spacy_alone(texts):
        for _ in _nlp().tokenizer.pipe(map(encodable, texts), batch_size=1000):
            pass

    def stream():
        for _ in pred.predict_blocks(texts):  # the lines `predict --input` writes
            pass

    tokenize_texts(texts)  # spaCy loaded and its cache warm: the steady state of a long stream
    pred = BundlePredictor(bundle)
    list(pred.predict_blocks(texts[:256]))
    cores = usable_cores()
    one = BundlePredictor(bundle, threads=1)
    flat, lengths = one.encode(texts)
    by_batch = {bs: _rate(texts, one.logits_from_flat, flat, lengths, bs)
                for bs in FLOOR_BATCHES} if floor else {}
    best = max(by_batch, key=by_batch.get) if floor else None
    runs = []
    for _ in range(rounds):
        r = {}
        if floor:
            r["tok"] = _rate(texts, tokenize_texts, texts)
            r["spacy"] = _rate(texts, spacy_alone, texts)
            r["net"] = _rate(texts, one.logits_from_flat, flat, lengths, best)
            r["floor"] = floor_rate(r["tok"], r["net"], cores)
            r["spacy_floor"] = floor_rate(r["spacy"], r["net"], cores)
        r["stream"] = _rate(texts, stream)
        runs.append(r)

    def med(key):
        return round(statistics.median(r[key] for r in runs), 1)

    out = {"texts_per_second": med("stream"), "texts": len(texts), "rounds": rounds}
    if floor:
        out["floor"] = {
            "tokenize_texts_per_second": med("tok"), "network_texts_per_second": med("net"),
            "network_batch_size": best,
            "network_by_batch_size": {str(bs): round(v, 1) for bs, v in by_batch.items()},
            "bundle_batch_size": pred.batch_size, "cores": cores,
            "texts_per_second": med("floor"),
            "spacy_tokenizer_texts_per_second": med("spacy"),
            "spacy_floor_texts_per_second": med("spacy_floor"),
            "onnx_int8_share": round(statistics.median(r["stream"] / r["floor"] for r in runs), 3),
            "onnx_int8_share_of_spacy_floor": round(
                statistics.median(r["stream"] / r["spacy_floor"] for r in runs), 3),
            "floor_by_round": [round(r["floor"], 1) for r in runs],
            "share_by_round": [round(r["stream"] / r["floor"], 3) for r in runs]}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("texts", help="a JSON list of texts")
    ap.add_argument("bundle")
    ap.add_argument("--floor", action="store_true", help="also time the floor, in the same rounds")
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    a = ap.parse_args(argv)
    texts = json.loads(Path(a.texts).read_text(encoding="utf-8"))
    print(json.dumps(measure(a.bundle, texts, a.floor, a.rounds)))


if __name__ == "__main__":
    main()
