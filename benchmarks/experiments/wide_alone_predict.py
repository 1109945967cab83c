"""Predicting with a run that answers with its TF-IDF part alone (`model.wide` share 0, as the
recipe's BBC and Debian stand-in runs do): the torch path skips the BiLSTM, whose logits the
answers would not use. Times `Predictor.proba_from_ids` on a file's texts (encoded once, best of
20) as it runs now and with the network run and thrown away (the path before 2026-12-07), and
checks that both give the same probabilities bit for bit (docs/benchmarks.md):

    .venv/bin/python benchmarks/experiments/wide_alone_predict.py RUN data/bbc_news/test.jsonl
"""

import json
import sys
import timeit

import torch

from textlstm.core.hardware import set_threads
from textlstm.serving.loader import load_run

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    run, texts_file = sys.argv[1:]
    set_threads(2)
    pred = load_run(run, device="cpu")
    wide = getattr(pred.net, "wide", None)
    if wide is None or float(wide.mix) > 0.0:
        sys.exit(f"{run} does not answer with its TF-IDF part alone (model.wide share 0).")
    texts = [json.loads(line)["text"] for line in open(texts_file)]
    ids = pred.encode(texts)
    now = pred.proba_from_ids(ids)
    t_now = min(timeit.repeat(lambda: pred.proba_from_ids(ids), number=1, repeat=20))
    net = pred.net  # the forward before 2026-12-07 (an instance attribute shadows the method)
    net.forward = lambda i, n: net.combine(net.forward_network(i, n), i)
    before = pred.proba_from_ids(ids)
    t_before = min(timeit.repeat(lambda: pred.proba_from_ids(ids), number=1, repeat=20))
    print(f"{len(texts)} texts, 2 threads: {t_now:.3f} s without the network, {t_before:.3f} s "
          f"with it ({t_before / t_now:.1f}x); the same probabilities: "
          f"{torch.equal(now, before)}")
