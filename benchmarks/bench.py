"""`make bench` / `textlstm bench`: how fast textlstm trains, infers and tokenizes, in one process.

For each embedded data set, with the model size of its config (configs/<name>.yaml):

1. training throughput in real (non-pad) tokens per second, the naive tutorial path (every
   text padded to `data.max_length`, random batches, one `nn.LSTM` call over the padding)
   against textlstm's path (the datamodule's length-bucketed loader and `TextClassifier`),
   measured in alternating rounds so a noisy neighbour hits both alike;
2. LSTM arithmetic: FLOPs the encoder does (counted from the batch shapes) per second,
   divided by the rate `torch.mm` reaches on the same GEMM shapes in this process;
3. inference documents per second on the test split (model from token ids, and end to end
   from text with the spaCy tokenizer); and raw text in, JSON lines out, as `predict --input`
   runs it, for the torch network, its fp32 ONNX bundle and its int8 bundle, and the int8
   stream's share of its floor (what tokenizing and the network allow on these cores);
4. tokenization: cold (empty `datasets` cache) tokens per second and the cached second pass;
5. peak RSS while textlstm's path trains;
6. with `--epochs N`, test accuracy of both paths after N full epochs each.

Plus the alternatives the defaults were chosen against (threads, DataLoader workers, packed
sequences), so the table shows the chosen settings beating them. Ratios are only meaningful
within one run: every figure of a row comes from the same process, minutes apart.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from textlstm.batches.datamodule import TextDataModule
from textlstm.batches.recipe import resolve_lr
from textlstm.core.config import chunking, load_config, preset_path
from textlstm.core.errors import UserError
from textlstm.core.hardware import set_threads, usable_cores
from textlstm.core.logs import quiet_libraries
from textlstm.data.sources import SPLITS, read_file
from textlstm.models.classifier import TextClassifier
from textlstm.models.predictor import Predictor
from textlstm.tokens.tokenize import tokenize_dataset, tokenize_texts
from textlstm.tokens.vectors import load_vectors

DATASETS = ("bbc_news", "tweets_sentiment")


# ---------------------------------------------------------------- the naive baseline
class NaiveLSTMClassifier(TextClassifier):
    """The tutorial path with textlstm's own layers: the LSTM and the pooling run over every
    position of the fixed-length padded batch, as if each text were `max_length` long.

    Same modules and initial weights as the model it is compared with, so the only
    differences are the ones under test: padding, random batches, one fused call.
    """

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        full = torch.full_like(lengths, ids.size(1))  # (B,) every row "max_length" long
        return super().forward(ids, full)


def naive_loader(ds, batch_size: int, max_length: int, seed: int) -> DataLoader:
    """Random batches, every text padded to max_length: the tutorial's DataLoader."""

    def pad(examples):
        ids = torch.zeros(len(examples), max_length, dtype=torch.long)  # (B, max_length)
        for row, e in enumerate(examples):
            ids[row, : len(e["ids"])] = torch.as_tensor(e["ids"][:max_length], dtype=torch.long)
        lengths = torch.tensor([max(1, len(e["ids"])) for e in examples])
        return {"ids": ids, "lengths": lengths,
                "labels": torch.tensor([e["label_id"] for e in examples])}

    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=True, collate_fn=pad, generator=g)


# ---------------------------------------------------------------- helpers
def _cycle(loader):
    """Endless batches; a new epoch reshuffles (the bucket sampler needs set_epoch)."""
    epoch = 0
    while True:
        yield from loader
        epoch += 1
        if hasattr(loader.batch_sampler, "set_epoch"):
            loader.batch_sampler.set_epoch(epoch)


@torch.inference_mode()
def accuracy(net: nn.Module, loader) -> float:
    net.train(False)  # inference mode for dropout
    right = total = 0
    for b in loader:
        right += int((net(b["ids"], b["lengths"]).argmax(-1) == b["labels"]).sum())
        total += len(b["labels"])
    net.train()
    return right / max(1, total)


def _peak_rss_reset() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux: clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Stepper:
    """Plain training steps (forward, loss, backward, clip, AdamW) over an endless loader."""

    def __init__(self, net: nn.Module, loader, lr: float):
        self.net = net.train()
        self.batches = _cycle(loader)
        self.opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr)
        self.tokens = 0  # real tokens seen in timed steps
        self.seconds = 0.0
        self.steps = 0
        self.shapes: list[tuple[int, int]] = []

    def step(self, batch) -> None:
        loss = nn.functional.cross_entropy(self.net(batch["ids"], batch["lengths"]),
                                           batch["labels"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()

    def run(self, n: int, timed: bool = True) -> None:
        t0 = time.perf_counter()
        for _ in range(n):
            batch = next(self.batches)  # loading counts: it is part of either path's cost
            self.step(batch)
            if timed:
                self.tokens += int(batch["lengths"].clamp(max=batch["ids"].size(1)).sum())
                self.shapes.append(tuple(batch["ids"].shape))
        if timed:
            self.seconds += time.perf_counter() - t0
            self.steps += n

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)


def _mm_rate(m: int, k: int, n: int, min_seconds: float = 0.15) -> float:
    """FLOP/s of torch.mm for an (m, k) @ (k, n) product, measured here and now."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    reps, t0 = 0, time.perf_counter()
    while (dt := time.perf_counter() - t0) < min_seconds:
        a @ b
        reps += 1
    return 2 * m * k * n * reps / dt


def lstm_gemms(B: int, T: int, in_dim: int, H: int, gates: int) -> dict[str,
                                                                        tuple[int, int, int, int]]:
    """The GEMMs one direction of one recurrent layer does for a (B, T) batch, forward and
    backward: name -> (m, k, n, times). The input projection is one GEMM over all steps; the
    recurrent one is a (B, H) x (H, gates*H) product per step."""
    G = gates * H
    return {
        "ih_fwd": (B * T, in_dim, G, 1), "ih_dx": (B * T, G, in_dim, 1),
        "ih_dw": (in_dim, B * T, G, 1),
        "hh_fwd": (B, H, G, T), "hh_dh": (B, G, H, T), "hh_dw": (H, B * T, G, 1),
    }


def lstm_flop_fraction(net: TextClassifier, batches: list[dict], cfg, rounds: int = 3) -> dict:
    """Time the encoder alone (forward + backward) on real batches; compare with torch.mm.

    The LSTM pass and the matmul reference are timed in alternating rounds (LSTM, reference,
    LSTM, reference, ...) and each round's fraction compares the two measured moments apart;
    the median round is reported. A neighbour that slows the machine for a while slows both
    halves of a round, so it cannot push the fraction above 1 the way timing the reference
    once, minutes away from the LSTM, could."""
    enc_cfg = cfg.model.encoder
    gates = {"gru": 3}.get(enc_cfg.cell, 4)
    H, E, L = enc_cfg.hidden_size, cfg.model.embedding.dim, enc_cfg.num_layers
    dirs = 2 if enc_cfg.bidirectional else 1
    enc = net.encoder.train()
    xs = [net.embedding(b["ids"]).detach() for b in batches]
    for x, b in zip(xs[:2], batches[:2], strict=False):  # warm-up
        out, _ = enc(x.requires_grad_(), b["lengths"])
        out.backward(torch.ones_like(out))
    Bm, Tm = (int(np.median([b["ids"].shape[i] for b in batches])) for i in (0, 1))
    layer_ins = sorted({E} | ({H * dirs} if L > 1 else set()))
    # FLOPs from the shapes, per GEMM kind: the limit is each at the rate torch.mm reaches on its
    # shape
    flops_by: dict[tuple[int, str], float] = {}
    for b in batches:
        B, T = b["ids"].shape
        for layer in range(L):
            layer_in = E if layer == 0 else H * dirs
            for name, (m, k, n, times) in lstm_gemms(B, T, layer_in, H, gates).items():
                flops_by[(layer_in, name)] = (
                    flops_by.get((layer_in, name), 0.0) + 2.0 * m * k * n * times * dirs
                )
    flops = sum(flops_by.values())
    lstm_s, limit_s = [], []
    for _ in range(max(1, rounds)):
        t0 = time.perf_counter()
        for x, b in zip(xs, batches, strict=True):
            out, _ = enc(x.requires_grad_(), b["lengths"])  # (B, T, D)
            out.backward(torch.ones_like(out))
        lstm_s.append(time.perf_counter() - t0)
        limit = 0.0
        for layer_in in layer_ins:
            for name, (m, k, n, _) in lstm_gemms(Bm, Tm, layer_in, H, gates).items():
                limit += flops_by[(layer_in, name)] / _mm_rate(m, k, n, min_seconds=0.05)
        limit_s.append(limit)
    fractions = [lim / sec for lim, sec in zip(limit_s, lstm_s, strict=True)]
    k = int(np.argsort(fractions)[len(fractions) // 2])  # the median round
    return {"fraction": fractions[k], "lstm_gflops": flops / lstm_s[k] / 1e9,
            "matmul_gflops": flops / limit_s[k] / 1e9, "seconds": lstm_s[k],
            "round_fractions": [round(f, 3) for f in fractions]}


def tokenize_timing(cfg, procs: tuple[int, ...] = ()) -> dict:
    """Cold: every split tokenized into an empty cache. Cached: the same call again.
    `procs`: also time a cold pass with that many processes (each into its own empty cache)."""
    folder = Path(cfg.data.data_dir) / cfg.data.source
    out = {}
    for n in (cfg.data.num_proc, *procs):
        with tempfile.TemporaryDirectory(prefix="textlstm-bench-") as cache:
            raws = [read_file(folder / f"{s}.jsonl", cache) for s in SPLITS]
            t0 = time.perf_counter()
            toks = [tokenize_dataset(r, cfg.data.lowercase, n, min_rows_per_proc=0) for r in raws]
            cold = time.perf_counter() - t0
            if out:
                out[f"cold_seconds_num_proc_{n}"] = cold
                continue
            n_tokens = sum(len(t) for d in toks for t in d["tokens"])
            raws = [read_file(folder / f"{s}.jsonl", cache) for s in SPLITS]
            t0 = time.perf_counter()
            for r in raws:
                tokenize_dataset(r, cfg.data.lowercase, n, min_rows_per_proc=0)
            cached = time.perf_counter() - t0
            out = {"cold_tokens_per_second": n_tokens / cold, "cold_seconds": cold,
                   "cached_seconds": cached,
                   "tokens": n_tokens}
    return out


def inference_timing(net: TextClassifier, dm: TextDataModule, cfg, batch_size: int = 256) -> dict:
    pred = Predictor(net, dm.vocab, dm.labels, cfg)
    ids = [list(x) for x in dm.splits["test"]["ids"]]
    folder = Path(cfg.data.data_dir) / cfg.data.source
    texts = [json.loads(line)["text"] for line in (folder / "test.jsonl").open(encoding="utf-8")]
    pred.predict_proba(texts[:batch_size], batch_size)  # warm-up (loads spaCy)
    paths = {"model": lambda: pred.proba_from_ids(ids, batch_size),
             "end_to_end": lambda: pred.predict_proba(texts, batch_size)}
    best = dict.fromkeys(paths, float("inf"))
    for _ in range(3):  # best of three, alternating: one pass is short, a hiccup would dominate
        for key, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - t0)
    out = {k: len(ids) / v for k, v in best.items()}
    net.train()
    return out


def _bundle(net: TextClassifier, dm: TextDataModule, cfg, folder: Path, quantize: str) -> Path:
    """A bundle of the benchmark's network, as `textlstm export` writes it (minus the check and
    the model card, which do not change the speed)."""
    from textlstm.core.io import write_json
    from textlstm.serving import bundle as B
    from textlstm.serving.export import bundle_meta, quantize_int8, write_onnx

    folder.mkdir()
    pred = Predictor(net, dm.vocab, dm.labels, cfg)
    write_onnx(net.train(False), folder / "model.fp32.onnx", 17)
    if quantize == "int8":
        quantize_int8(folder / "model.fp32.onnx", folder / B.MODEL)
    else:
        (folder / "model.fp32.onnx").rename(folder / B.MODEL)
    dm.vocab.save(folder / B.VOCAB)
    write_json(folder / B.LABELS, dm.labels)
    write_json(folder / B.META, bundle_meta(pred, folder, {"test": None}, quantize, 17))
    return folder


def raw_inference_timing(net: TextClassifier, dm: TextDataModule, cfg, min_texts: int = 32768
                         ) -> dict:
    """Raw texts in, one JSON line out per text, as `textlstm predict --input` runs it (the
    predictor's `predict_blocks`, tokenization included): torch, fp32 bundle, int8 bundle. The
    test split is repeated (to `min_texts` short texts) so the stream has several chunks, as a
    file would, and lasts seconds, not the worker processes' start. spaCy's cache is warmed on
    every text first, for the streams and the floor alike; the bundles stream in processes of
    their own (benchmarks/predict_stream.py), the int8 one beside its floor."""

    folder = Path(cfg.data.data_dir) / cfg.data.source
    texts = [json.loads(line)["text"] for line in (folder / "test.jsonl").open(encoding="utf-8")]
    # about 3M characters, at most min_texts texts: 32,768 tweets, 1,484 BBC articles, so
    # each stream lasts seconds, its rounds included, not minutes
    mean_chars = sum(map(len, texts)) / len(texts)
    n = min(min_texts, max(len(texts), int(3_000_000 / mean_chars)))
    texts = texts * -(-n // len(texts))
    out = {}
    with tempfile.TemporaryDirectory(prefix="textlstm-bench-bundle-") as tmp:
        tokenize_texts(texts)  # spaCy loaded, its cache warm: the steady state of a stream
        pred = Predictor(net, dm.vocab, dm.labels, cfg)
        list(pred.predict_blocks(texts[:256]))  # warm-up
        t0 = time.perf_counter()
        for _ in pred.predict_blocks(texts):  # what `predict --input` writes
            pass
        out["torch"] = round(len(texts) / (time.perf_counter() - t0), 1)
        (Path(tmp) / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        for key, quantize in (("onnx_fp32", "none"), ("onnx_int8", "int8")):
            bundle = _bundle(net, dm, cfg, Path(tmp) / key, quantize)
            # the int8 stream beside what 2 cores allow, in the same rounds
            r = _bundle_stream(bundle, Path(tmp) / "texts.json", floor=key == "onnx_int8")
            out[key] = r["texts_per_second"]
    out["floor"] = r["floor"]
    net.train()
    return out


def _bundle_stream(bundle: Path, texts_file: Path, floor: bool) -> dict:
    """benchmarks/predict_stream.py on the bundle: a process without torch, as `textlstm
    predict BUNDLE --input` runs."""
    script = Path(__file__).with_name("predict_stream.py")
    out = subprocess.run([sys.executable, str(script), str(texts_file), str(bundle),
                          *(["--floor"] if floor else [])],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- one data set
def bench_dataset(name: str, steps: int, overrides: list[str], alternatives: bool, epochs: int,
                  log) -> dict:
    cfg = load_config(preset_path(name), overrides)
    threads = set_threads(cfg.trainer.num_threads)
    torch.manual_seed(cfg.seed)
    dm = TextDataModule(cfg.data, seed=cfg.seed)
    dm.prepare_data()  # writes data/<name>/ if missing
    # the other side of the tokenization choice: one process if the config uses several
    procs = cfg.data.num_proc or usable_cores()
    alt_procs = () if not alternatives else (1,) if procs > 1 else (2,) if threads > 1 else ()
    tok = tokenize_timing(cfg, alt_procs)
    log(f"  tokenize: {tok['cold_tokens_per_second']:,.0f} tokens/s cold "
        f"({tok['cold_seconds']:.2f} s), cached pass {tok['cached_seconds']:.3f} s"
        + "".join(f"; {k.split('_', 2)[2]}: {v:.2f} s cold"
                  for k, v in tok.items() if "num_proc" in k))

    dm.setup()
    resolve_lr(cfg, dm)
    train_ds = dm.splits["train"]
    V, C = len(dm.vocab), len(dm.labels)
    ours_net = TextClassifier(V, C, cfg.model, chunking(cfg))
    if cfg.model.embedding.vectors:
        vecs, found, _ = load_vectors(cfg.model.embedding.vectors, dm.vocab)
        ours_net.load_vectors(torch.from_numpy(vecs), torch.from_numpy(found),
                              cfg.model.embedding.freeze)
    naive_net = NaiveLSTMClassifier(V, C, cfg.model, chunking(cfg))
    naive_net.load_state_dict(ours_net.state_dict())  # the same starting point for both
    naive_net.embedding.weight.requires_grad_(ours_net.embedding.weight.requires_grad)
    ours = Stepper(ours_net, dm.loader("train"), cfg.optim.lr)
    naive = Stepper(naive_net,
                    naive_loader(train_ds, cfg.data.batch_size, cfg.data.max_length, cfg.seed),
                    cfg.optim.lr)
    warm = 3
    ours.run(warm, timed=False)
    naive.run(warm, timed=False)
    reset = _peak_rss_reset()
    rounds = 4  # alternate, so a slow moment on a shared machine hits both paths
    for _ in range(rounds):
        naive.run(max(1, steps // rounds))
        ours.run(max(1, steps // rounds))
    peak = _peak_rss_mb()
    ratio = ours.tokens_per_second / naive.tokens_per_second
    log(f"  train: naive {naive.tokens_per_second:,.0f} real tokens/s, textlstm "
        f"{ours.tokens_per_second:,.0f} -> {ratio:.2f}x")

    # the encoder alone on the batches textlstm's path just used
    sample = [b for _, b in zip(range(min(steps, 12)), _cycle(dm.loader("train")), strict=False)]
    flop = lstm_flop_fraction(ours_net, sample, cfg)
    log(f"  LSTM arithmetic: {flop['lstm_gflops']:.1f} GFLOP/s, torch.mm on the same shapes "
        f"{flop['matmul_gflops']:.1f} -> {flop['fraction']:.0%}")

    inf = inference_timing(ours_net, dm, cfg)
    log(f"  inference: {inf['model']:,.0f} docs/s from token ids, {inf['end_to_end']:,.0f} docs/s "
        "from text")
    raw = raw_inference_timing(ours_net, dm, cfg)
    floor = raw.pop("floor")
    log("  predict --input: " + ", ".join(f"{k} {v:,.0f} docs/s" for k, v in raw.items())
        + f"; the int8 bundle reaches {floor['onnx_int8_share']:.0%} of the "
        f"{floor['texts_per_second']:,.0f} docs/s its tokenizer and network allow on "
        f"{floor['cores']} core(s)")

    result = {
        "train_tokens_per_second": {"naive": round(naive.tokens_per_second, 1),
                                    "textlstm": round(ours.tokens_per_second, 1),
                                    "ratio": round(ratio, 3)},
        "lstm_flop_fraction": round(flop["fraction"], 3),
        "infer_docs_per_second": round(inf["model"], 1),
        "infer_raw_docs_per_second": raw,
        "predict_floor": floor,
        "tokenize": {k: round(tok[k], 4)
                     for k in ("cold_tokens_per_second", "cold_seconds", "cached_seconds")},
        "peak_rss_mb": round(peak, 1),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        # context for the figures above (bench.json's fixed keys are the ones before this)
        "details": {
            "threads": threads, "steps": ours.steps, "batch_size": cfg.data.batch_size,
            "max_length": cfg.data.max_length,
            "max_tokens_per_batch": cfg.data.max_tokens_per_batch,
            "padding_fraction": {
                "naive": round(1 - naive.tokens / sum(b * t for b, t in naive.shapes), 3),
                "textlstm": round(1 - ours.tokens / sum(b * t for b, t in ours.shapes), 3)},
            "lstm_gflops": round(flop["lstm_gflops"], 2),
            "matmul_gflops": round(flop["matmul_gflops"], 2),
            "infer_docs_per_second_end_to_end": round(inf["end_to_end"], 1),
            "tokenize_num_proc": procs,
            **{f"tokenize_{k}": round(v, 3) for k, v in tok.items() if "num_proc" in k},
            "peak_rss_reset": reset,
        },
    }
    if alternatives:
        result["alternatives"] = bench_alternatives(cfg, dm, ours_net.state_dict(), steps, log)
    if epochs:
        # after the timed steps (the same count for both), N full epochs each, then test accuracy
        for _ in range(epochs):
            naive_epoch = naive_loader(train_ds, cfg.data.batch_size, cfg.data.max_length, cfg.seed)
            naive.run(len(naive_epoch), timed=False)
            ours.run(len(dm.loader("train")), timed=False)
        test_naive = naive_loader(dm.splits["test"], cfg.data.eval_batch_size, cfg.data.max_length,
                                  cfg.seed)
        result["test_accuracy"] = {"naive": round(accuracy(naive_net, test_naive), 4),
                                   "textlstm": round(accuracy(ours_net, dm.loader("test")), 4),
                                   "epochs": epochs}
        log(f"  test accuracy after {epochs} epoch(s): naive "
            f"{result['test_accuracy']['naive']:.4f}, textlstm "
            f"{result['test_accuracy']['textlstm']:.4f}")
    return result


def bench_alternatives(cfg, dm: TextDataModule, state: dict, steps: int, log) -> dict:
    """textlstm's path with one setting changed at a time: real tokens/s for each, measured in
    alternating rounds (the same batches in the same order for every variant)."""
    from omegaconf import OmegaConf

    chosen_threads = torch.get_num_threads()
    variants = {"chosen": {}, "threads=1": {"threads": 1}, "num_workers=1": {"data.num_workers": 1},
                "threads=1,num_workers=1": {"threads": 1, "data.num_workers": 1},
                "impl=packed": {"model.encoder.impl": "packed"},
                "bucketing=exact": {"data.bucketing": "exact"}}
    if chosen_threads == 1:  # one core: compare with oversubscribing it instead
        variants = {k.replace("threads=1",
                              "threads=2"): ({**v, "threads": 2} if "threads" in v else v)
                    for k, v in variants.items()}
    steppers = {}
    for label, change in variants.items():
        c = OmegaConf.create(OmegaConf.to_container(cfg))
        for k, v in change.items():
            if k != "threads":
                OmegaConf.update(c, k, v)
        net = TextClassifier(len(dm.vocab), len(dm.labels), c.model, chunking(c))
        net.load_state_dict(state)
        dm.cfg = c.data
        steppers[label] = (Stepper(net, dm.loader("train"), c.optim.lr),
                           change.get("threads", chosen_threads))
    dm.cfg = cfg.data
    rounds = 3
    for r in range(rounds + 1):
        for s, threads in steppers.values():
            torch.set_num_threads(threads)
            s.run(max(1, steps // rounds), timed=r > 0)  # round 0 warms up
    torch.set_num_threads(chosen_threads)
    out = {}
    for label, (s, _) in steppers.items():
        out[label] = round(s.tokens_per_second, 1)
        log(f"    {label:<24} {s.tokens_per_second:>10,.0f} real tokens/s")
    steppers.clear()  # ends the DataLoader worker, if any
    return out


def run_bench(datasets: list[str], steps: int, out: str | Path, overrides: list[str],
              alternatives: bool = True,
              epochs: int = 0, log=print) -> dict:
    for name in datasets:
        if name not in DATASETS:
            raise UserError(f"'{name}' is not a benchmark data set; use "
                            f"{' and/or '.join(DATASETS)}.")
    if steps < 2:
        raise UserError("--steps must be at least 2 (timed training steps per path).")
    if epochs < 0:
        raise UserError("--epochs must be 0 or more.")
    quiet_libraries()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    results = {}
    t0 = time.perf_counter()
    for name in datasets:
        log(f"{name}:")
        results[name] = bench_dataset(name, steps, overrides, alternatives, epochs, log)
    results["_meta"] = {"torch": torch.__version__, "python": platform.python_version(),
                        "cpu_count": os.cpu_count(), "seconds": round(time.perf_counter() - t0, 1),
                        "steps": steps, "epochs": epochs, "overrides": list(overrides)}
    log(table(results))
    path = Path(out)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    log(f"wrote {path}")
    return results


def _raw(r: dict, engine: str) -> str:
    return f"{r['infer_raw_docs_per_second'][engine]:,.0f}"


def table(results: dict) -> str:
    names = [n for n in results if not n.startswith("_")]
    rows = [
        ("train tokens/s, naive", lambda r: f"{r['train_tokens_per_second']['naive']:,.0f}"),
        ("train tokens/s, textlstm", lambda r: f"{r['train_tokens_per_second']['textlstm']:,.0f}"),
        ("  ratio", lambda r: f"{r['train_tokens_per_second']['ratio']:.2f}x"),
        ("LSTM FLOP/s / matmul rate", lambda r: f"{r['lstm_flop_fraction']:.0%}"),
        ("inference docs/s (ids)", lambda r: f"{r['infer_docs_per_second']:,.0f}"),
        ("inference docs/s (text)",
         lambda r: f"{r['details']['infer_docs_per_second_end_to_end']:,.0f}"),
        ("predict --input docs/s, torch", lambda r: _raw(r, "torch")),
        ("  onnx fp32", lambda r: _raw(r, "onnx_fp32")),
        ("  onnx int8", lambda r: _raw(r, "onnx_int8")),
        ("  int8 / its floor", lambda r: f"{r['predict_floor']['onnx_int8_share']:.0%}"),
        ("  int8 / spaCy-alone floor",
         lambda r: f"{r['predict_floor']['onnx_int8_share_of_spacy_floor']:.0%}"),
        ("tokenize cold tokens/s", lambda r: f"{r['tokenize']['cold_tokens_per_second']:,.0f}"),
        ("tokenize cached / cold",
         lambda r: f"{r['tokenize']['cached_seconds'] / r['tokenize']['cold_seconds']:.1%}"),
        ("peak RSS MB (training)", lambda r: f"{r['peak_rss_mb']:,.0f}"),
    ]
    alts = sorted({k for n in names for k in results[n].get("alternatives", {})},
                  key=lambda k: (k != "chosen", k))
    w = max([len(r[0]) for r in rows] + [len("alt " + k) for k in alts])
    lines = [" " * w + "".join(f"{n:>20}" for n in names)]
    for label, fn in rows:
        lines.append(f"{label:<{w}}" + "".join(f"{fn(results[n]):>20}" for n in names))
    if any("test_accuracy" in results[n] for n in names):
        for k in ("naive", "textlstm"):
            lines.append(f"{'test accuracy, ' + k:<{w}}" + "".join(
                f"{results[n].get('test_accuracy', {}).get(k, float('nan')):>20.4f}"
                for n in names))
    for k in alts:
        lines.append(f"{'alt ' + k:<{w}}" + "".join(
            f"{results[n].get('alternatives', {}).get(k, float('nan')):>20,.0f}" for n in names))
    return "\n".join(lines)
