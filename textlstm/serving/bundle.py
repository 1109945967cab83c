"""A bundle folder (`textlstm export`): an ONNX model with its vocabulary, labels and tokenizer
settings, labelled on onnxruntime, spaCy and numpy alone.

    bundle/
        model.onnx          ids (B, T) int64, lengths (B,) int64 -> logits (B, C) float32
        vocab.json  labels.json
        textlstm.json       tokenizer settings, task, calibration, architecture version, metrics
        README.md           model card (Hugging Face front matter)
        export_check.json   what the export verified

Nothing here imports torch, Lightning or wandb (a test checks `sys.modules` after a
prediction), so a serving image needs only the `serve` extra. The tokenizer is the run's own
(`textlstm.tokens.tokenize`), so a bundle labels a text exactly as its run does.
"""

from __future__ import annotations

import copy
import gc
import json
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from textlstm.core.errors import UserError
from textlstm.core.hardware import usable_cores
from textlstm.core.runfolder import read_labels
from textlstm.models.contract import Predictions, check_texts, chunks
from textlstm.models.version import ARCH_VERSION
from textlstm.tokens.tokenize import encode_arrays, spacy_module
from textlstm.tokens.vocab import Vocab

MODEL, VOCAB, LABELS, META = "model.onnx", "vocab.json", "labels.json", "textlstm.json"
CARD, CHECK = "README.md", "export_check.json"
FORMAT = "textlstm-bundle"
FORMAT_VERSION = 1
# what `key=value` may change on a bundle (it carries no training config to override)
ONNX_BATCH = 32  # texts per onnxruntime call unless data.eval_batch_size=N says otherwise
BUNDLE_OVERRIDES = ("data.text_field", "data.label_field", "data.eval_batch_size")


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / META).is_file()


def read_meta(folder: Path) -> dict:
    """textlstm.json, checked: the format this code reads, and the architecture it builds."""
    path = folder / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise UserError(f"bundle file {path} is corrupt; export the bundle again.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a textlstm bundle description; pass a folder written by "
                        "`textlstm export`.")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise UserError(f"bundle {folder} has format version {meta['format_version']}, newer "
                        f"than this textlstm reads ({FORMAT_VERSION}); upgrade textlstm.")
    found = int(meta.get("arch_version", 0))
    if found != ARCH_VERSION:
        raise UserError(f"bundle {folder} was exported with model architecture version {found}, "
                        f"but this textlstm builds version {ARCH_VERSION}; load it with the "
                        "textlstm version that exported it, or retrain and export again.")
    if (meta.get("calibration") or {}).get("thresholds") is not None:
        raise UserError(f"bundle {folder} carries per-label thresholds, which this textlstm "
                        "does not apply; upgrade textlstm to use it.")
    return meta


def _settings(meta: dict, overrides: list[str] | None) -> dict:
    from textlstm.core.config import parse_overrides

    data = dict(meta.get("data") or {})
    # not the run's eval_batch_size (chosen for torch): onnxruntime's LSTM on CPU is fastest in
    # small batches, its per-step gate buffers (B, 4H) staying in cache (int8 tweets network,
    # texts sorted by length, one thread: 45 us a text in batches of 32, 71 us in batches of 256)
    s = {"data.text_field": data.get("text_field", "text"),
         "data.label_field": data.get("label_field", "label"),
         "data.eval_batch_size": ONNX_BATCH}
    for key, value in parse_overrides(overrides or []):
        if key not in BUNDLE_OVERRIDES:
            raise UserError(f"override {key} does not apply to a bundle; a bundle takes only "
                            f"{', '.join(BUNDLE_OVERRIDES)} (pass the run folder to change the "
                            "rest).")
        if key == "data.eval_batch_size" and (not isinstance(value, int) or value < 1):
            raise UserError("data.eval_batch_size must be a whole number of at least 1.")
        s[key] = value if key == "data.eval_batch_size" else str(value)
    return s


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # no busy-waiting between runs: the tokenizer processes need those cores
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for a missing or broken file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"bundle model {path} cannot be loaded ({first}); export the bundle "
                        "again.") from None


def encode_flat(texts: list[str], vocab: Vocab, lowercase: bool, max_length: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Texts -> (all ids concatenated (sum L,) int64, lengths (N,) int64). An empty text is one
    <unk> (as `batches.collate` makes it), so every text has a last token. Flat arrays cross a
    process boundary as two buffers instead of N Python lists."""
    flat, lengths = encode_arrays(texts, vocab, lowercase, max_length)
    empty = np.flatnonzero(lengths == 0)
    if len(empty):
        flat = np.insert(flat, (np.cumsum(lengths) - lengths)[empty], 1)
        lengths[empty] = 1
    return flat, lengths


# ---------------------------------------------------------------- worker processes
# A stream's chunks are labelled whole in worker processes, one per core: each tokenizes its
# chunk and runs the network on it on one onnxruntime thread, and the main process only reads
# texts and writes answers. Splitting the stages instead (workers tokenize, the main process
# runs the network on all cores) reached 53 % of the floor on 2 cores: the network is the
# larger cost of the two and ran in one process that could not keep two cores busy.
_WORKER: dict = {}


def _worker_init(source: BundlePredictor | str, overrides: list[str] | None) -> None:
    if isinstance(source, BundlePredictor):
        # forked: the parent's vocabulary, labels and settings are already here, so only the
        # onnxruntime session is the worker's own (a session's threads do not survive a fork).
        # Building the predictor again from its folder took 17 ms against 2.5, most of it the
        # settings' OmegaConf schema (benchmarks/experiments/predict_parts.py).
        bundle = copy.copy(source)
        bundle.threads = 1
        bundle.session = _session(source.folder / MODEL, 1)
        _WORKER["bundle"] = bundle
    else:  # spawned: a fresh interpreter, nothing inherited
        _WORKER["bundle"] = BundlePredictor(source, overrides, threads=1)


def _in_worker(work, *args):
    return work(_WORKER["bundle"], *args)


def _proba(b: BundlePredictor, texts: list[str]) -> np.ndarray:
    return b.predict_proba(texts)


def _lines(b: BundlePredictor, texts: list[str], min_labels: int) -> list[str]:
    return b.answer_lines(texts, b.predict_proba(texts).tolist(), min_labels)


def _block(b: BundlePredictor, texts: list[str], min_labels: int) -> str:
    # one string crosses back from the worker instead of a list of one per text: ~2 % of the
    # int8 tweets stream on 2 cores went to pickling and unpickling the lists
    return "".join(_lines(b, texts, min_labels))


class BundlePredictor(Predictions):
    """An exported model: raw texts in, labels and probabilities out, on onnxruntime.

    What it answers is `models.contract.Predictions`, shared with a run's
    `models.predictor.Predictor`, so `textlstm.load`, predict, evaluate and serve take either;
    here only the probabilities (`predict_proba`) and the pipelined stream are its own."""

    engine = "onnx"

    def __init__(self, folder: str | Path, overrides: list[str] | None = None, threads: int = 0):
        folder = Path(folder)
        self.folder = folder
        self.overrides = overrides
        spacy_module(torch_free=True)  # before anything else can import spaCy (and with it torch)
        self.meta = read_meta(folder)
        s = _settings(self.meta, overrides)
        self.text_field, self.label_field = s["data.text_field"], s["data.label_field"]
        self.batch_size = s["data.eval_batch_size"]
        tok = self.meta.get("tokenizer") or {}
        self.lowercase, self.max_length = bool(tok.get("lowercase", True)), int(tok["max_length"])
        self.vocab = Vocab.load(folder / VOCAB)
        self.labels = read_labels(folder / LABELS, missing="export the bundle again",
                                  corrupt="export the bundle again")
        self.temperature = (self.meta.get("calibration") or {}).get("temperature")
        self.quantize = (self.meta.get("export") or {}).get("quantize", "none")
        self.metrics = self.meta.get("metrics") or {}
        self.threads = threads or usable_cores()
        self.session = _session(folder / MODEL, self.threads)
        # the names the exporter gave the graph's inputs (ids, lengths)
        self._inputs = [i.name for i in self.session.get_inputs()]

    # ------------------------------------------------------------ ids -> logits
    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        check_texts(texts)
        return encode_flat(texts, self.vocab, self.lowercase, self.max_length)

    def logits_from_flat(self, flat: np.ndarray, lengths: np.ndarray, batch_size: int | None = None
                         ) -> np.ndarray:
        """(N, C) float32 logits in input order; batches are built by length to skip padding."""
        bs = batch_size or self.batch_size
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(lengths), len(self.labels)), dtype=np.float32)
        for s in range(0, len(order), bs):
            chunk = order[s : s + bs]
            lens = lengths[chunk]
            ids = np.zeros((len(chunk), int(lens.max())), dtype=np.int64)  # (B, T), 0 = <pad>
            for row, (a, n) in enumerate(zip(starts[chunk], lens, strict=True)):
                ids[row, :n] = flat[a : a + n]
            out[chunk] = self.session.run(None, {self._inputs[0]: ids, self._inputs[1]: lens})[0]
        return out

    def logits(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        return self.logits_from_flat(*self.encode(list(texts)), batch_size)

    def proba_from_logits(self, logits: np.ndarray) -> np.ndarray:
        z = logits.astype(np.float64)  # (N, C); float64 so rounding to 6 places matches torch's
        if self.temperature:
            z = z / float(self.temperature)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict_proba(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """(N, C) probabilities in input order."""
        return self.proba_from_logits(self.logits(texts, batch_size))

    # ------------------------------------------------------------ streams
    def predict_stream(self, texts: Iterable[str], chunk_size: int = 2048, min_labels: int = 0,
                       workers: int | None = None) -> Iterator[tuple[str, dict]]:
        """(text, prediction) pairs over any iterable, in order, a bounded number of chunks held.

        spaCy holds the GIL, so on more than one core each chunk is labelled whole (tokenized,
        then the network on one onnxruntime thread) in one of `workers` processes while this
        process reads texts and hands out answers. A stream that fits one chunk never starts a
        worker."""
        def finish(part: list[str], probs: np.ndarray) -> Iterator[tuple[str, dict]]:
            return zip(part, self.answers(probs.tolist(), min_labels), strict=True)

        yield from self._labelled(texts, chunk_size, workers, _proba, (), finish)

    def predict_lines(self, texts: Iterable[str], min_labels: int = 0, chunk_size: int = 2048,
                      workers: int | None = None) -> Iterator[str]:
        """`predict --input`'s JSON lines, pipelined as `predict_stream`, the lines written in
        the workers too: this process only reads texts and passes lines on."""
        yield from self._labelled(texts, chunk_size, workers, _lines, (min_labels,),
                                  lambda part, lines: lines)

    def predict_blocks(self, texts: Iterable[str], min_labels: int = 0, chunk_size: int = 2048,
                       workers: int | None = None) -> Iterator[tuple[int, str]]:
        """`predict --input`'s output as `Predictions.predict_blocks`, pipelined as
        `predict_lines`, each chunk's lines joined in its worker."""
        yield from self._labelled(texts, chunk_size, workers, _block, (min_labels,),
                                  lambda part, block: [(len(part), block)])

    def _labelled(self, texts: Iterable[str], chunk_size: int, workers: int | None, work,
                  args: tuple, finish) -> Iterator:
        parts = chunks(texts, chunk_size)
        first = next(parts, None)
        if first is None:
            return
        second = next(parts, None)
        workers = usable_cores() if workers is None else workers
        parts = _prepend([first, *([second] if second else [])], parts)
        if second is None or workers < 2:
            for part in parts:  # the same work, in this process
                check_texts(part)
                yield from finish(part, work(self, part, *args))
            return
        # fork: a bundle process holds no torch, and a forked worker is ready in milliseconds
        # (spawn would re-import spaCy, ~1 s); each worker opens its own onnxruntime session
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        ctx = multiprocessing.get_context(method)
        # a forked worker gets this object as it is, a spawned one (no fork here) its folder
        init = (self if method == "fork" else str(self.folder), self.overrides)
        # the workers get this process's objects (spaCy's warm cache among them) copy-on-write;
        # frozen, a worker's garbage collector leaves them alone, so their pages stay shared
        # (3x fewer page faults in the workers); this process unfreezes at once
        gc.freeze()
        try:
            pool = ctx.Pool(workers, initializer=_worker_init, initargs=init)
        finally:
            gc.unfreeze()
        with pool:
            pending: deque = deque()
            for part in parts:
                check_texts(part)
                pending.append((part, pool.apply_async(_in_worker, (work, part, *args))))
                if len(pending) > 2 * workers:  # bounded: constant memory on any input size
                    part, result = pending.popleft()
                    yield from finish(part, result.get())
            while pending:
                part, result = pending.popleft()
                yield from finish(part, result.get())

    def info(self) -> dict:
        """What a server's /info shows."""
        return {"engine": self.engine, "labels": self.labels, "quantize": self.quantize,
                "metrics": self.metrics.get("test", self.metrics),
                "arch_version": self.meta.get("arch_version"),
                "textlstm_version": self.meta.get("textlstm_version"), "path": str(self.folder)}


def _prepend(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest
