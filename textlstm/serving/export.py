"""A run folder -> a bundle folder (see serving/bundle.py): ONNX model, vocabulary, labels,
settings, model card, and the check that the ONNX model labels the run's test texts as the
run's own network does.

Why this exporter path (measured with torch 2.13, onnx 1.23, onnxruntime 1.32, Nov 2026):

- The training network's CPU path (`impl=padded`: per-direction `torch.lstm` calls on texts
  reversed within their lengths, then masking) would export as a plain LSTM plus gathers, but
  nothing in it tells ONNX where each text ends; the reversal is ours, not the operator's.
- `pack_padded_sequence` through the same `nn.LSTM`/`nn.GRU` weights is what ONNX's
  LSTM/GRU operator means by `sequence_lens`: the TorchScript-based exporter
  (`torch.onnx.export(dynamo=False)`) turns it into exactly one LSTM (or GRU) node per layer
  with `sequence_lens` = lengths, and outputs at padded steps are zero as
  `pad_packed_sequence` makes them. Measured against the run's network on mixed-length
  batches: max |logit diff| 2e-8 to 1.3e-7 for lstm/gru x last/max/mean/attention pooling,
  1- and 2-layer, bidirectional.
- The `torch.export`-based exporter (`dynamo=True`) does not take `pack_padded_sequence`
  (and needs onnxscript, which the package does not otherwise use).
- `peephole_lstm` runs a Python loop over time steps; tracing would unroll it to one fixed
  length, so it is refused with one sentence.

int8 is onnxruntime's `quantize_dynamic` (LSTM -> DynamicQuantizeLSTM, MatMul and the
embedding's Gather with int8 weights): the issue measured it 2-3x faster than fp32 on CPU,
while `torch.ao` dynamic quantization of nn.LSTM is deprecated and gave no speed-up.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textlstm import __version__
from textlstm.core import runfolder
from textlstm.core.errors import UserError
from textlstm.core.io import write_json, write_text
from textlstm.models.chunks import window_counts
from textlstm.models.classifier import ARCH_VERSION, TextClassifier
from textlstm.models.masks import final_states
from textlstm.models.predictor import Predictor
from textlstm.serving import bundle as B
from textlstm.serving.loader import load_run
from textlstm.tokens.tokenize import TOKENIZER_VERSION

QUANTIZE = ("none", "int8")
OPSETS = range(14, 21)  # 14: LSTM's `layout` attribute; 20: the newest the exporter writes
CHECK_TEXTS = 2000
CHECK_BATCH = 64
# the issue's contract: what an export must verify before it succeeds
FP32_MAX_ABS_DIFF = 1e-4
INT8_MIN_AGREEMENT = 0.99
INT8_MAX_ACCURACY_DROP = 0.005  # 0.5 points
INT8_MAX_SIZE_RATIO = 0.35


class ExportNet(nn.Module):
    """The run's trained modules, with the encoder run through `pack_padded_sequence` so the
    exporter writes ONNX's LSTM/GRU with `sequence_lens`. Same weights, same pooling and head,
    the same numbers as `TextClassifier.forward` in eval mode (checked on every export)."""

    def __init__(self, net: TextClassifier, max_chunks: int | None = None):
        super().__init__()
        self.embedding, self.rnn = net.embedding, net.encoder.rnn
        self.pooling, self.head = net.pooling, net.head
        self.num_directions = net.encoder.num_directions
        self.chunking, self.chunk_pooling = net.chunking, net.chunk_pooling
        self.max_chunks = max_chunks
        self.network_ids = net.network_ids  # model.wide's own words: <unk> to the network
        self.wide = net.wide  # model.wide: its scatter-add needs opset 16 (check_wide_opset)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embedding(self.network_ids(ids))  # (B, T, E)
        if self.chunking is not None:
            logits = self.head(self._windows(x, lengths))
        else:
            logits = self.head(self._encode(x, lengths))  # (B, C)
        return logits if self.wide is None else self.wide.combine(logits, ids, True)  # (B, C)

    def _encode(self, x: torch.Tensor, lengths: torch.Tensor,
                offsets: torch.Tensor | None = None,
                doc_lengths: torch.Tensor | None = None) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        # (B, T', D) with T' = the longest length: pooling takes T from the states it gets
        states, _ = pad_packed_sequence(out, batch_first=True)
        final = final_states(states, lengths, self.num_directions)  # (B, D)
        return self.pooling(states, lengths, final, offsets, doc_lengths)  # (B, D)

    def _windows(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """models/chunks.py's windows with a fixed count: every document gets data.max_chunks
        windows (the model's own path makes only the ones it needs, a count tracing would
        freeze); the ones a document does not have are masked out of the chunk pooling, so the
        numbers are the same."""
        W, overlap = self.chunking
        K, step = self.max_chunks, W - overlap
        B, E = x.size(0), x.size(2)
        span = W + (K - 1) * step  # = data.max_length, the longest text the bundle feeds
        x = torch.cat([x, x.new_zeros((B, span, E))], dim=1)  # room for every window
        starts = torch.arange(K) * step  # (K,)
        pos = starts.unsqueeze(1) + torch.arange(W).unsqueeze(0)  # (K, W)
        xw = x[:, pos].reshape(-1, W, E)  # (B*K, W, E)
        wlen = (lengths.unsqueeze(1) - starts.unsqueeze(0)).clamp(min=1, max=W)  # (B, K)
        counts = window_counts(lengths, W, overlap)  # (B,)
        present = torch.arange(K).unsqueeze(0) < counts.unsqueeze(1)  # (B, K)
        # model.regions: where each window starts and its document's length (windows a
        # document lacks start past its end, so they hold none of its pieces)
        offsets = starts.unsqueeze(0).expand(B, K).reshape(-1)  # (B*K,)
        doc_lengths = lengths.unsqueeze(1).expand(B, K).reshape(-1)  # (B*K,)
        vecs = self._encode(xw, wlen.reshape(-1), offsets, doc_lengths)  # (B*K, D)
        return self.chunk_pooling.pool_grid(vecs.reshape(B, K, -1), present)  # (B, D)


def check_options(quantize: str, opset: int) -> None:
    if quantize not in QUANTIZE:
        raise UserError(f"--quantize {quantize} is not known; use none or int8.")
    if opset not in OPSETS:
        raise UserError(f"--opset {opset} is not supported; use an opset from {OPSETS.start} to "
                        f"{OPSETS.stop - 1} (default 17).")


def check_cell(cell: str, run_dir: Path) -> None:
    if cell not in ("lstm", "gru"):
        raise UserError(f"run {run_dir} uses model.encoder.cell={cell}, whose time-step loop "
                        "cannot be exported to ONNX; export a run trained with cell lstm or gru.")


def check_wide_opset(wide: str, opset: int, run_dir: Path) -> None:
    # the TF-IDF part counts words with ScatterElements(reduction=add), new in opset 16;
    # before it the exporter writes a scatter that keeps one of repeated words, not their sum
    if wide == "tfidf" and opset < 16:
        raise UserError(f"run {run_dir} has model.wide=tfidf, whose word counts need ONNX opset "
                        f"16 or later; use --opset 16 or more (the default is 17).")


@contextmanager
def _quiet_native_stderr():
    """The exporter's C++ shape-inference warnings about prim::PackPadded go straight to file
    descriptor 2; they are expected (the LSTM node replaces those ops) and say nothing a user
    can act on."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def write_onnx(net: TextClassifier, path: Path, opset: int, max_chunks: int | None = None
               ) -> None:
    ids = torch.tensor([[2, 3, 4], [5, 6, 0]], dtype=torch.long)  # (B, T): one padded row
    lengths = torch.tensor([3, 2], dtype=torch.long)
    with torch.no_grad(), _quiet_native_stderr():
        torch.onnx.export(ExportNet(net, max_chunks).train(False), (ids, lengths), str(path),
                          dynamo=False, opset_version=opset, input_names=["ids", "lengths"],
                          output_names=["logits"], external_data=False,
                          dynamic_axes={"ids": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                                        "logits": {0: "batch"}})


def quantize_int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_native_stderr():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


# ---------------------------------------------------------------- the check
def check_batches(pred: Predictor, max_texts: int
                  ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """The run's test split (its first `max_texts` texts, in split order, so lengths mix within
    a batch and padding is exercised): [(ids (B, T), lengths (B,))], labels (N,)."""
    from textlstm.batches import make_datamodule
    from textlstm.core.logs import quiet_libraries

    quiet_libraries()
    cfg = pred.cfg
    dm = make_datamodule(cfg.data, seed=cfg.seed, vocab=pred.vocab, labels=pred.labels)
    dm.prepare_data()
    dm.setup()
    test = dm.splits["test"]
    rows = test.select(range(min(max_texts, len(test))))
    ids = [list(x) or [1] for x in rows["ids"]]  # an empty text is one <unk>, as in collate
    labels = np.asarray(rows["label_id"], dtype=np.int64)
    batches = []
    for s in range(0, len(ids), CHECK_BATCH):
        chunk = ids[s : s + CHECK_BATCH]
        lens = np.array([len(x) for x in chunk], dtype=np.int64)
        arr = np.zeros((len(chunk), int(lens.max())), dtype=np.int64)  # (B, T)
        for r, x in enumerate(chunk):
            arr[r, : len(x)] = x
        batches.append((arr, lens))
    return batches, labels


def logits_both(net: TextClassifier, session, batches) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) logits from the run's own network and from onnxruntime, on the same batches."""
    ref, got = [], []
    with torch.inference_mode():
        for ids, lens in batches:
            ref.append(net(torch.from_numpy(ids), torch.from_numpy(lens)).float().numpy())
            got.append(session.run(None, {"ids": ids, "lengths": lens})[0])
    return np.concatenate(ref), np.concatenate(got)


def check_export(net: TextClassifier, model: Path, fp32_bytes: int, quantize: str, batches,
                 labels: np.ndarray) -> dict:
    """export_check.json's figures for `model` (the issue's contract keys, nothing else)."""
    session = B._session(model, threads=0)
    ref, got = logits_both(net, session, batches)
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    return {"quantize": quantize, "texts": int(len(labels)),
            "max_abs_logit_diff": float(np.abs(ref - got).max()),
            "argmax_agreement": agree,
            "accuracy": {"torch": float((ref.argmax(1) == labels).mean()),
                         "onnx": float((got.argmax(1) == labels).mean())},
            "size_bytes": {"onnx": model.stat().st_size, "fp32": fp32_bytes}}


def check_failures(c: dict) -> str | None:
    """The first check `c` fails, as the middle of a sentence, or None."""
    if c["quantize"] == "none":
        if c["max_abs_logit_diff"] > FP32_MAX_ABS_DIFF:
            return (f"the ONNX logits differ from the run's by up to {c['max_abs_logit_diff']:.2e} "
                    f"(allowed {FP32_MAX_ABS_DIFF:.0e})")
        if c["argmax_agreement"] < 1.0:
            return f"the ONNX model agrees on {c['argmax_agreement']:.2%} of labels (needs 100 %)"
        return None
    if c["argmax_agreement"] < INT8_MIN_AGREEMENT:
        return (f"the int8 model agrees with the run on {c['argmax_agreement']:.2%} of labels "
                f"(needs {INT8_MIN_AGREEMENT:.0%})")
    drop = abs(c["accuracy"]["onnx"] - c["accuracy"]["torch"])
    if drop > INT8_MAX_ACCURACY_DROP + 1e-12:  # exactly 0.5 points is within (float noise aside)
        return (f"the int8 model's test accuracy {c['accuracy']['onnx']:.4f} is {drop * 100:.2f} "
                f"points from the run's {c['accuracy']['torch']:.4f} (allowed 0.5)")
    ratio = c["size_bytes"]["onnx"] / c["size_bytes"]["fp32"]
    if ratio > INT8_MAX_SIZE_RATIO:
        return f"the int8 file is {ratio:.2f}x the fp32 size (allowed {INT8_MAX_SIZE_RATIO}x)"
    return None


# ---------------------------------------------------------------- the files beside the model
def bundle_meta(pred: Predictor, run_dir: Path, metrics: dict, quantize: str, opset: int) -> dict:
    import spacy

    c = pred.cfg
    enc = c.model.encoder
    return {
        "format": B.FORMAT, "format_version": B.FORMAT_VERSION,
        "textlstm_version": __version__, "arch_version": ARCH_VERSION,
        "task": "multiclass",
        "tokenizer": {"name": "spacy.blank(en)", "spacy_version": spacy.__version__,
                      "tokenizer_version": TOKENIZER_VERSION, "lowercase": bool(c.data.lowercase),
                      "max_length": int(c.data.max_length)},
        # the run's fitted temperature (softmax(logits / T)); thresholds: multi-label only
        "calibration": {"temperature": float(pred.temperature), "thresholds": None},
        "data": {"source": c.data.source, "text_field": c.data.text_field,
                 "label_field": c.data.label_field},
        "eval_batch_size": int(c.data.eval_batch_size),
        "model": {"cell": enc.cell, "hidden_size": enc.hidden_size, "num_layers": enc.num_layers,
                  "bidirectional": bool(enc.bidirectional), "embedding_dim": c.model.embedding.dim,
                  "pooling": c.model.pooling, "vocab_size": len(pred.vocab),
                  "num_labels": len(pred.labels)},
        "export": {"quantize": quantize, "opset": opset, "torch_version": torch.__version__,
                   "inputs": {"ids": "(batch, time) int64", "lengths": "(batch,) int64"},
                   "outputs": {"logits": "(batch, labels) float32"},
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": str(run_dir)},
        "metrics": {"test": metrics.get("test")},
    }


def model_card(meta: dict, labels: list[str], name: str, tags: list[str]) -> str:
    import yaml

    source = meta["data"]["source"]
    dataset = source[3:].split(":")[0] if source.startswith("hf:") else source
    test = meta["metrics"]["test"] or {}
    results = [{"type": "accuracy", "name": "Test accuracy", "value": round(test["accuracy"], 4)},
               {"type": "f1", "name": "Test macro F1", "value": round(test["f1_macro"], 4),
                "args": {"average": "macro"}}] if "accuracy" in test else []
    front = {
        "library_name": "textlstm",
        "tags": sorted({"text-classification", "onnx", "lstm", "textlstm", *map(str, tags)}),
        "datasets": [dataset],
        # the weights are derived from the training data, whose terms decide how they may be used
        "license": "other", "license_name": "training-data-terms",
        "pipeline_tag": "text-classification",
        "model-index": [{"name": name, "results": [{
            "task": {"type": "text-classification", "name": "Text Classification"},
            "dataset": {"name": dataset, "type": dataset, "split": "test"},
            "metrics": results}]}],
    }
    m, tok, q = meta["model"], meta["tokenizer"], meta["export"]["quantize"]
    arch = (f"{'bidirectional ' if m['bidirectional'] else ''}{m['num_layers']}-layer "
            f"{m['cell'].upper()} ({m['hidden_size']} units per direction) over "
            f"{m['embedding_dim']}-dimensional word embeddings, {m['pooling']} pooling")
    score = (f"test accuracy {test['accuracy']:.4f}, macro F1 {test['f1_macro']:.4f}"
             if results else "no test metrics recorded")
    return f"""---
{yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip()}
---

# {name}

A {len(labels)}-class text classifier ({', '.join(labels)}) trained with
textlstm on `{source}`: {arch}. Exported to ONNX
({'int8 dynamic quantization' if q == 'int8' else 'fp32'}); {score} on the held-out test split.

## Use

    pip install "textlstm[serve]"
    textlstm predict THIS_FOLDER "a text to label"

    import textlstm
    textlstm.load("THIS_FOLDER").predict(["a text to label"])

Runs on onnxruntime, spaCy and numpy (no PyTorch). Texts are tokenized with spaCy's rule-based
English tokenizer (spaCy {tok['spacy_version']}, {'lowercased' if tok['lowercase'] else 'cased'}),
and only the first {tok['max_length']} tokens of a text are read.

## What it is for

Labelling English texts like the ones it was trained on (`{source}`) with one of its
{len(labels)} labels, in batch jobs or behind an API (`textlstm serve`), where a small,
fast CPU model is worth more than the last points of accuracy.

## What it is not for

- Texts in other languages, or from another domain or time than its training data: accuracy
  there is unknown and words it never saw read as `<unk>`.
- Decisions about people (hiring, credit, moderation of individuals) without human review:
  it learned whatever biases its training data carries.
- Probabilities as calibrated confidences: they are a softmax of the logits (no temperature
  scaling yet), so a 0.9 is not a 90 % chance.
- Labels other than the {len(labels)} above: every text gets one of them, whatever it is.

## Files

`model.onnx` (ids (batch, time) int64 and lengths (batch,) int64 -> logits (batch, labels)),
`vocab.json`, `labels.json`, `textlstm.json` (tokenizer settings, versions, test metrics),
`export_check.json` (the export's check against the original PyTorch model).
"""


# ---------------------------------------------------------------- the whole export
def export_run(run_dir: str | Path, out: str | Path, quantize: str = "none", opset: int = 17,
               overwrite: bool = False, max_texts: int = CHECK_TEXTS, log=print) -> dict:
    """Write the bundle for `run_dir` to `out` and return its export_check.json. The bundle is
    built in a temporary folder beside `out` and renamed into place only after the check
    passed, so a failure leaves nothing behind."""
    check_options(quantize, opset)
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it or choose another "
                        "--out folder.")
    if out.exists() and not (B.is_bundle(out) or (out.is_dir() and not any(out.iterdir()))):
        # --overwrite deletes what it replaces: only ever a bundle (or nothing)
        raise UserError(f"{out} exists and is not a bundle, so --overwrite will not replace it; "
                        "choose another --out folder.")
    if not out.parent.is_dir():
        raise UserError(f"the folder {out.parent} for --out does not exist; create it first.")
    run_dir = runfolder.require_run_dir(run_dir, "export")
    cfg = runfolder.load_run_config(run_dir)
    if cfg.task != "multiclass":
        raise UserError(f"run {run_dir} is a {cfg.task} run and bundles hold multi-class models "
                        "only; serve or predict with the run folder itself.")
    check_cell(cfg.model.encoder.cell, run_dir)
    check_wide_opset(cfg.model.get("wide", "none"), opset, run_dir)
    pred = load_run(run_dir, device="cpu")
    net = pred.net.cpu().train(False)
    metrics = runfolder.read_metrics(run_dir)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        check = _build(pred, net, run_dir, metrics, tmp, quantize, opset, max_texts, log)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return check


def _build(pred: Predictor, net: TextClassifier, run_dir: Path, metrics: dict, tmp: Path,
           quantize: str, opset: int, max_texts: int, log) -> dict:
    fp32 = tmp / (B.MODEL if quantize == "none" else "model.fp32.onnx")
    write_onnx(net, fp32, opset, int(pred.cfg.data.max_chunks) if net.chunking else None)
    model = fp32
    if quantize == "int8":
        model = tmp / B.MODEL
        quantize_int8(fp32, model)
    batches, labels = check_batches(pred, max_texts)
    check = check_export(net, model, fp32.stat().st_size, quantize, batches, labels)
    if fp32 != model:
        fp32.unlink()
    failed = check_failures(check)
    if failed:
        raise UserError(f"export check failed: {failed} on {check['texts']} test texts of "
                        f"{run_dir}; no bundle was written.")
    pred.vocab.save(tmp / B.VOCAB)
    write_json(tmp / B.LABELS, pred.labels)
    meta = bundle_meta(pred, run_dir, metrics, quantize, opset)
    write_json(tmp / B.META, meta)
    tags = list(pred.cfg.wandb.get("tags") or [])
    write_text(tmp / B.CARD, model_card(meta, pred.labels, _name(run_dir, quantize), tags))
    write_json(tmp / B.CHECK, check)
    log(f"export check: {check['texts']} test texts, max |logit diff| "
        f"{check['max_abs_logit_diff']:.2e}, argmax agreement {check['argmax_agreement']:.2%}, "
        f"accuracy torch {check['accuracy']['torch']:.4f} / onnx {check['accuracy']['onnx']:.4f}, "
        f"{check['size_bytes']['onnx']:,} bytes")
    return check


def _name(run_dir: Path, quantize: str) -> str:
    parts = run_dir.resolve().parts[-2:]
    return "textlstm-" + "-".join(parts) + ("-int8" if quantize == "int8" else "")


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished bundle to `out`; an old one (--overwrite) goes only once the new one is
    complete, so a crash leaves either the old bundle or the new one."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
        return
    os.replace(tmp, out)
