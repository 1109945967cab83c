"""`make bench-scale` / `textlstm bench-scale`: does preparing and training stay flat in memory
as the corpus grows?

For each size (default 1M, 2M, 4M short documents) it writes a synthetic corpus to disk once
(`data/scale/<n>-seed<seed>/`, from the tweets vocabulary: per label, token frequencies and
text lengths of the real training tweets, sampled with a fixed seed), then runs a fresh child
process that prepares it cold (JSON -> Arrow, spaCy tokenization, vocabulary, ids, into an
empty cache) and trains one short epoch slice with the real `train()` path. The child samples
its own memory every 50 ms. Reported per size: preparation seconds and documents/s, the
training slice, and peak memory:

- peak RSS (VmHWM): what `top` would have shown at worst, including pages of the memory-mapped
  Arrow files that were read (the kernel may drop those at any time, they are the page cache);
- peak anonymous RSS (sampled): the memory the process really owns; this is what would run out.

Targets: peak RSS grows less than 20 % from the smallest to the largest size, and
preparation throughput does not fall with size.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from textlstm.core import runfolder
from textlstm.core.errors import UserError

CHECKOUT = Path(__file__).resolve().parents[1]
CHUNK = 100_000  # documents generated per random stream: the corpus does not depend on memory


# ---------------------------------------------------------------- the synthetic corpus


def _tweet_model(data_dir: str | Path) -> dict:
    """Per label: share, tokens with probabilities, observed token counts (tweets train split)."""
    from textlstm.data.sources import prepare_embedded
    from textlstm.tokens.tokenize import tokenize_texts

    folder = prepare_embedded("tweets_sentiment", data_dir)
    rows = [json.loads(line) for line in (folder / "train.jsonl").open(encoding="utf-8")]
    tokens = tokenize_texts([r["text"] for r in rows], lowercase=True)
    labels = sorted({r["label"] for r in rows})
    model = {"labels": labels, "share": [], "vocab": [], "p": [], "lengths": []}
    for lab in labels:
        docs = [t for t, r in zip(tokens, rows, strict=True) if r["label"] == lab and t]
        counts = Counter(w for d in docs for w in d)
        words = sorted(counts, key=lambda w: (-counts[w], w))
        freq = np.array([counts[w] for w in words], dtype=np.float64)
        model["share"].append(len(docs))
        model["vocab"].append(np.array(words, dtype=object))
        model["p"].append(freq / freq.sum())
        model["lengths"].append(np.array([len(d) for d in docs], dtype=np.int64))
    share = np.array(model["share"], dtype=np.float64)
    model["share"] = share / share.sum()
    return model


def _documents(model: dict, n: int, seed: int):
    """(text, label) pairs, generated CHUNK at a time from the random stream (seed, chunk)."""
    for c, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        rng = np.random.default_rng((seed, c))
        labels = rng.choice(len(model["labels"]), size=m, p=model["share"])
        texts = np.empty(m, dtype=object)
        for k in range(len(model["labels"])):
            rows = np.flatnonzero(labels == k)
            lens = rng.choice(model["lengths"][k], size=len(rows))
            words = model["vocab"][k][rng.choice(len(model["vocab"][k]), size=int(lens.sum()),
                                                 p=model["p"][k])]
            for row, piece in zip(rows, np.split(words, np.cumsum(lens)[:-1]), strict=True):
                texts[row] = " ".join(piece)
        for i in range(m):
            yield texts[i], model["labels"][labels[i]]


def make_corpus(n: int, seed: int, eval_size: int, data_dir: str | Path, log=print) -> Path:
    """data/scale/<n>-seed<seed>/{train,validation,test}.jsonl, written once (then reused)."""
    folder = Path(data_dir) / "scale" / f"{n}-seed{seed}"
    done = folder / "DONE"
    if done.is_file() and json.loads(done.read_text()) == {"n": n, "seed": seed,
                                                           "eval_size": eval_size}:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = _tweet_model(data_dir)
    for split, count, s in (("train", n, seed), ("validation", eval_size, seed + 1),
                            ("test", eval_size, seed + 2)):
        tmp = folder / f".{split}.jsonl.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            for text, label in _documents(model, count, s):
                fh.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
        tmp.replace(folder / f"{split}.jsonl")
    done.write_text(json.dumps({"n": n, "seed": seed, "eval_size": eval_size}))
    log(f"  wrote {n:,} synthetic documents to {folder} in {time.perf_counter() - t0:.0f} s")
    return folder


# ---------------------------------------------------------------- one size, in a fresh process


class MemorySampler(threading.Thread):
    """Samples /proc/self/status every `every` s; keeps the peaks of RssAnon and RssFile."""

    def __init__(self, every: float = 0.05):
        super().__init__(daemon=True)
        self.every, self.peak_anon, self.peak_file, self.phase = every, 0, 0, "start"
        self.peak_anon_phase = "start"
        self._halt = threading.Event()

    @staticmethod
    def read() -> dict[str, int]:
        out = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) // 1024  # kB -> MB
        return out

    def run(self) -> None:
        while not self._halt.is_set():
            m = self.read()
            if m.get("RssAnon", 0) > self.peak_anon:
                self.peak_anon, self.peak_anon_phase = m["RssAnon"], self.phase
            self.peak_file = max(self.peak_file, m.get("RssFile", 0))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def measure_one(folder: Path, steps: int, overrides: list[str]) -> dict:
    """Prepare `folder` cold and train `steps` batches; memory and timings of this process."""
    from textlstm.batches.datamodule import TextDataModule
    from textlstm.commands.train import train
    from textlstm.core.config import load_config, preset_path
    from textlstm.data.columns import column_array

    sampler = MemorySampler()
    sampler.start()
    work = Path(tempfile.mkdtemp(prefix="textlstm-scale-"))
    try:
        cfg = load_config(preset_path("tweets_sentiment"), [
            "data.source=files", f"data.train_file={folder / 'train.jsonl'}",
            f"data.validation_file={folder / 'validation.jsonl'}",
            f"data.test_file={folder / 'test.jsonl'}",
            f"data.data_dir={work / 'data'}", f"run_root={work / 'runs'}", "name=scale",
            "wandb.mode=disabled",
            "trainer.progress_bar=false", "trainer.max_epochs=1",
            f"trainer.limit_train_batches={steps}",
            *overrides])
        base = MemorySampler.read()
        sampler.phase = "prepare"
        t0 = time.perf_counter()
        dm = TextDataModule(cfg.data, seed=cfg.seed)
        dm.prepare_data()
        dm.setup()
        prepare_s = time.perf_counter() - t0
        after_prepare = MemorySampler.read()
        n_train = len(dm.splits["train"])
        tokens = int(column_array(dm.splits["train"], "length").sum())
        sampler.phase = "train"
        t0 = time.perf_counter()
        run_dir = train(cfg, datamodule=dm)
        train_s = time.perf_counter() - t0
        metrics = runfolder.read_metrics(run_dir)
        end = MemorySampler.read()
    finally:
        sampler.stop()
        shutil.rmtree(work, ignore_errors=True)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    return {
        "train_docs": n_train,
        "train_tokens": tokens,
        "vocab_size": len(dm.vocab),
        "prepare_seconds": round(prepare_s, 2),
        "prepare_steps_seconds": {k: round(v, 2) for k, v in dm.timings.items()},
        "prepare_docs_per_second": round(n_train / prepare_s, 1),
        "train_slice_steps": steps,
        "train_slice_seconds": round(train_s, 2),
        "train_tokens_per_second": metrics["train"]["tokens_per_second"],
        "peak_rss_mb": end["VmHWM"],
        "peak_rss_prepare_mb": after_prepare["VmHWM"],
        "peak_anon_mb": sampler.peak_anon,
        "peak_anon_phase": sampler.peak_anon_phase,
        "peak_file_mb": sampler.peak_file,
        "start_rss_mb": base["VmRSS"],
        "tokenizer_workers_peak_rss_mb": workers,
        "test_accuracy": metrics["test"]["accuracy"],
    }


# ---------------------------------------------------------------- an optional memory cap


class MemoryCap:
    """A child memory cgroup (v1 `memory.limit_in_bytes`, or v2 `memory.max`) that the child
    process joins: a run that needed more memory than the cap would be OOM-killed, while pages
    of memory-mapped files are simply reclaimed. It shows what peak RSS cannot: how much memory
    the run really needs."""

    def __init__(self, limit_bytes: int):
        self.limit = limit_bytes
        self.dir, self.v2 = self._create()

    def _create(self) -> tuple[Path, bool]:

        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                base, v2 = Path("/sys/fs/cgroup/memory") / path.lstrip("/"), False
                break
        else:
            path = next((ln.split(":",
                                  2)[2] for ln in Path("/proc/self/cgroup").read_text().splitlines()
                         if ln.startswith("0::")), "/")
            base, v2 = Path("/sys/fs/cgroup") / path.lstrip("/"), True
        d = base / f"textlstm-bench-{os.getpid()}"
        try:
            d.mkdir()
            (d / ("memory.max" if v2 else "memory.limit_in_bytes")).write_text(str(self.limit))
        except OSError as e:
            raise UserError(f"--memory-limit needs a memory cgroup this user may create ({d}: "
                            f"{e.strerror}); run without it.") from None
        return d, v2

    def join(self) -> None:  # in the child, before exec
        (self.dir / "cgroup.procs").write_text(str(os.getpid()))

    def report(self) -> dict:
        if self.v2:
            events_text = (self.dir / "memory.events").read_text()
            events = dict(line.split() for line in events_text.splitlines())
            return {"limit_mb": self.limit >> 20, "times_at_limit": int(events.get("max", 0)),
                    "oom_kills": int(events.get("oom_kill", 0)),
                    "max_usage_mb": int((self.dir / "memory.peak").read_text()) >> 20
                    if (self.dir / "memory.peak").exists() else None}
        oom_text = (self.dir / "memory.oom_control").read_text()
        oom = dict(line.split() for line in oom_text.splitlines())
        return {"limit_mb": self.limit >> 20,
                "times_at_limit": int((self.dir / "memory.failcnt").read_text()),
                "oom_kills": int(oom.get("oom_kill", 0)),
                "max_usage_mb": int((self.dir / "memory.max_usage_in_bytes").read_text()) >> 20}

    def remove(self) -> None:
        try:
            self.dir.rmdir()
        except OSError:
            pass


# ---------------------------------------------------------------- the benchmark


def parse_sizes(text: str) -> list[int]:
    """'1M,2M,4M' -> [1000000, 2000000, 4000000] (at least two sizes of at least 1000)."""
    sizes = [_count(x) for x in text.split(",") if x.strip()]
    if len(sizes) < 2:
        raise UserError("--sizes needs at least two sizes to compare, e.g. 1M,2M,4M.")
    return sizes


def _count(text: str) -> int:
    t = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    try:
        n = int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise UserError(f"--sizes has '{text}', which is not a count; give e.g. 1M,2M,4M or "
                        "100000,200000.") from None
    if n < 1000:
        raise UserError(f"--sizes has {n}; use at least 1000 documents per size.")
    return n


def parse_memory(text: str | None) -> int | None:
    """'1.2G', '1500M' or bytes -> bytes; None stays None."""
    if not text:
        return None
    mult = {"m": 1 << 20, "g": 1 << 30}.get(text[-1:].lower())
    try:
        return int(float(text[:-1]) * mult) if mult else int(text)
    except ValueError:
        raise UserError(f"--memory-limit is '{text}'; give bytes or e.g. 1500M, 1.5G.") from None


def run_scale(sizes: list[int], steps: int, eval_size: int, seed: int, out: str | Path,
              overrides: list[str],
              data_dir: str | Path = "data", memory_limit: int | None = None, log=print) -> dict:
    if steps < 1:
        raise UserError("--steps must be at least 1.")
    results = {}
    for n in sizes:
        log(f"[{n:,} documents]")
        folder = make_corpus(n, seed, eval_size, data_dir, log)
        cmd = [sys.executable, "-m", "benchmarks.bench_scale", str(Path(folder).resolve()),
               str(steps), json.dumps(overrides)]
        cap = MemoryCap(memory_limit) if memory_limit else None
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               preexec_fn=cap.join if cap else None,
                               env={**os.environ, "WANDB_MODE": "disabled",
                                    # the child imports benchmarks/ from this checkout
                                    "PYTHONPATH": os.pathsep.join(filter(None, [
                                        str(CHECKOUT), os.environ.get("PYTHONPATH")]))})
            capped = cap.report() if cap else None
        finally:
            if cap:
                cap.remove()
        if p.returncode != 0:
            if capped and capped["oom_kills"]:
                results[str(n)] = {"train_docs": n, "completed": False, "memory_cap": capped}
                log(f"  OOM-killed under the {capped['limit_mb']:,} MB cap")
                continue
            raise RuntimeError(f"bench-scale child for {n:,} documents failed:\n{p.stderr[-3000:]}")
        r = json.loads(p.stdout.strip().splitlines()[-1]) | {"completed": True}
        if capped:
            r["memory_cap"] = capped
        results[str(n)] = r
        log(f"  prepared in {r['prepare_seconds']:.0f} s ({r['prepare_docs_per_second']:,.0f} "
            f"docs/s), {steps} training steps in {r['train_slice_seconds']:.0f} s; peak RSS "
            f"{r['peak_rss_mb']:,} MB, peak anonymous {r['peak_anon_mb']:,} MB "
            f"({r['peak_anon_phase']})"
            + (f"; cap {capped['limit_mb']:,} MB reached {capped['times_at_limit']:,} "
               "times" if capped else ""))
    if not all(r["completed"] for r in results.values()):
        doc = {"results": results, "summary": {"sizes": sizes, "completed": False}}
        Path(out).write_text(json.dumps(doc, indent=2))
        log(f"not every size completed under the cap; wrote {out}")
        return doc
    small, large = results[str(min(sizes))], results[str(max(sizes))]
    summary = {
        "sizes": sizes,
        "peak_rss_growth": round(large["peak_rss_mb"] / small["peak_rss_mb"] - 1, 4),
        "peak_anon_growth": round(large["peak_anon_mb"] / small["peak_anon_mb"] - 1, 4),
        "prepare_throughput_ratio": round(large["prepare_docs_per_second"]
                                          / small["prepare_docs_per_second"], 3),
    }
    # VmHWM, mapped file pages included
    summary["rss_target_met"] = summary["peak_rss_growth"] < 0.20
    summary["anon_target_met"] = summary["peak_anon_growth"] < 0.20  # the memory the process owns
    # "does not fall", 5 % noise
    summary["throughput_target_met"] = summary["prepare_throughput_ratio"] >= 0.95
    doc = {"results": results, "summary": summary,
           "_meta": {"seed": seed, "eval_size": eval_size, "steps": steps, "overrides": overrides,
                     "memory_limit_mb": memory_limit >> 20 if memory_limit else None,
                     "cpu_count": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}}
    Path(out).write_text(json.dumps(doc, indent=2))
    log(table(doc))
    log(f"wrote {out}")
    return doc


def table(doc: dict) -> str:
    sizes = doc["summary"]["sizes"]
    rows = [("documents", lambda r: f"{r['train_docs']:,}"),
            ("prepare s (cold)", lambda r: f"{r['prepare_seconds']:.1f}"),
            ("prepare docs/s", lambda r: f"{r['prepare_docs_per_second']:,.0f}"),
            *[(f"  {k} s", lambda r, k=k: f"{r['prepare_steps_seconds'].get(k, 0):.1f}")
              for k in ("load", "tokenize", "vocab", "encode", "stats")],
            ("train slice s", lambda r: f"{r['train_slice_seconds']:.1f}"),
            ("peak RSS MB", lambda r: f"{r['peak_rss_mb']:,}"),
            ("  after prepare", lambda r: f"{r['peak_rss_prepare_mb']:,}"),
            ("peak anonymous MB", lambda r: f"{r['peak_anon_mb']:,}"),
            ("peak file-backed MB", lambda r: f"{r['peak_file_mb']:,}"),
            ("tokenizer worker MB", lambda r: f"{r['tokenizer_workers_peak_rss_mb']:,}")]
    res = doc["results"]
    if doc["_meta"].get("memory_limit_mb"):
        rows.append(("cap reached (times)", lambda r: f"{r['memory_cap']['times_at_limit']:,}"))
    lines = [f"{'':22}" + "".join(f"{n:>14,}" for n in sizes)]
    for name, fmt in rows:
        lines.append(f"{name:22}" + "".join(f"{fmt(res[str(n)]):>14}" for n in sizes))
    s = doc["summary"]
    lines.append(f"peak RSS growth {s['peak_rss_growth']:+.1%} (target < +20 %: "
                 f"{'met' if s['rss_target_met'] else 'NOT met'}); anonymous "
                 f"{s['peak_anon_growth']:+.1%}; preparation throughput "
                 f"x{s['prepare_throughput_ratio']:.2f} (target: not falling: "
                 f"{'met' if s['throughput_target_met'] else 'NOT met'})")
    return "\n".join(lines)


if __name__ == "__main__":  # the child process of run_scale: one size, JSON on the last line
    from textlstm.core.logs import quiet_everything

    quiet_everything()
    result = measure_one(Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]))
    print(json.dumps(result))
