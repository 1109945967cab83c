"""The `textlstm` command: train, evaluate, predict, inspect, report, sweep, prepare, demo, bench,
bench-scale.

Every verb takes `key=value` config overrides after its own arguments. User mistakes end in
one line on stderr and exit code 2 (see textlstm.errors.UserError).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import sys
import warnings
from pathlib import Path

from textlstm.errors import UserError

OVERRIDE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+=")


def _quiet() -> None:
    """Keep the terminal for what matters: our lines and the progress bar."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_SILENT", "true")
    # a W&B service inherited from a parent process (wandb exports its address) would tie this
    # run to it: a killed sibling's run id stays "in use" there and blocks `train --resume`
    os.environ.pop("WANDB_SERVICE", None)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    # data.streaming: StreamBatches shares batches among workers itself, so its length is exact
    warnings.filterwarnings("ignore", message=r".*`IterableDataset` has `__len__` defined.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "datasets", "wandb"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import datasets

    datasets.disable_progress_bars()
    # its loaders log an ERROR line before raising; we turn the exception into one sentence
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)


def _split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    overrides = [x for x in items if OVERRIDE.match(x)]
    return [x for x in items if not OVERRIDE.match(x)], overrides


def _config_help() -> str:
    from omegaconf import OmegaConf

    from textlstm.config import Config, schema_keys

    base = OmegaConf.structured(Config)
    lines = [f"  {k} = {OmegaConf.select(base, k)}" for k in schema_keys()]
    return "config keys (override any as key=value):\n" + "\n".join(lines)


def cmd_train(args) -> int:
    from textlstm.config import load_config
    from textlstm.training.train import train

    if args.resume:
        if args.config:
            raise UserError("train takes --config or --resume, not both; a resumed run keeps its own config.")
        run = Path(args.resume)
        if not (run / "config.yaml").is_file():
            raise UserError(f"cannot resume {run}: it is not a run directory (no config.yaml); "
                            "pass a folder printed by `textlstm train`.")
        cfg = load_config(run / "config.yaml", [*args.overrides, f"resume={run}"])
    else:
        cfg = load_config(args.config, args.overrides)
    run_dir = train(cfg)
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:  # a DDP worker: rank 0 reports
        return 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    t = metrics["test"]
    print(f"run directory: {run_dir}")
    print(f"test: accuracy={t['accuracy']:.4f} f1_macro={t['f1_macro']:.4f} loss={t['loss']:.4f}")
    return 0


def cmd_evaluate(args) -> int:
    from textlstm.training.evaluate import evaluate

    rest, overrides = _split_overrides(args.rest)
    if rest:
        raise UserError(f"evaluate got unexpected argument(s) {' '.join(rest)}; use --data FILE and key=value overrides.")
    report = evaluate(args.run, args.data, overrides)
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:  # under DDP every rank has the synced numbers; one prints
        print(json.dumps(report))
    return 0


def _read_input_texts(path: Path, text_field: str):
    """Texts from .txt (a line each), .csv/.tsv (column text_field) or .jsonl (key text_field)."""
    if not path.is_file():
        raise UserError(f"input file {path} does not exist; pass an existing .txt, .csv or .jsonl file.")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        fh = open(path, encoding="utf-8", errors="replace", newline="")
        reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
        if not reader.fieldnames or text_field not in reader.fieldnames:
            fh.close()
            raise UserError(f"input file {path} has no column '{text_field}' (columns: "
                            f"{', '.join(reader.fieldnames or [])}); set data.text_field=<column>.")
        with fh:
            for row in reader:
                yield row[text_field] or ""
    elif suffix in (".jsonl", ".ndjson", ".json"):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    raise UserError(f"input file {path} line {n} is not valid JSON; use one JSON object per line.") from None
                value = obj.get(text_field) if isinstance(obj, dict) else obj
                if not isinstance(value, str):
                    raise UserError(f"input file {path} line {n}: '{text_field}' is not a string; "
                                    f"give text in the '{text_field}' key.")
                yield value
    else:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                yield line.rstrip("\n")


def cmd_predict(args) -> int:
    from textlstm.predictor import load

    texts, overrides = _split_overrides(args.rest)
    if args.input and texts:
        raise UserError("predict takes texts or --input, not both; choose one.")
    if not args.input and not texts:
        raise UserError("predict needs texts to label; pass them as arguments or with --input FILE.")
    if args.output and Path(args.output).exists() and not args.overwrite:
        raise UserError(f"output file {args.output} already exists; pass --overwrite to replace it or choose another name.")
    pred = load(args.run, overrides)
    source = _read_input_texts(Path(args.input), pred.cfg.data.text_field) if args.input else texts
    if args.output:
        out = Path(args.output)
        tmp = out.with_name(out.name + ".partial")
        n = 0
        from tqdm import tqdm

        # streams: texts are read, labelled and written a chunk at a time (constant memory);
        # the bar shows on a terminal only (stderr), never in pipes or logs
        try:
            with open(tmp, "w", encoding="utf-8") as fh, tqdm(unit=" texts", disable=None, file=sys.stderr) as bar:
                for text, row in _with_texts(source, pred):
                    fh.write(json.dumps({"text": text, **row}, ensure_ascii=False) + "\n")
                    n += 1
                    bar.update()
        except BaseException:
            tmp.unlink(missing_ok=True)  # never leave a half-written file that looks like output
            raise
        tmp.replace(out)  # the output appears whole or not at all
        print(f"wrote {n} predictions to {out}", file=sys.stderr)
    else:
        for text, row in _with_texts(source, pred):
            print(json.dumps({"text": text, **row}, ensure_ascii=False))
    return 0


def _with_texts(texts, pred, chunk: int = 8192):
    buf = []
    for t in texts:
        buf.append(t)
        if len(buf) >= chunk:
            yield from zip(buf, pred.predict(buf), strict=True)
            buf = []
    if buf:
        yield from zip(buf, pred.predict(buf), strict=True)


def cmd_prepare(args) -> int:
    from textlstm.data.sources import EMBEDDED, prepare_embedded

    for name in args.names:
        if name not in EMBEDDED:
            raise UserError(f"'{name}' is not an embedded data set; use one of {', '.join(EMBEDDED)}.")
        folder = prepare_embedded(name, args.data_dir)
        print(f"{name}: {folder}")
    return 0


def cmd_demo(args) -> int:
    if args.name != "sine":
        raise UserError(f"unknown demo '{args.name}'; the demos are: sine.")
    from textlstm.demo.sine import run_sine_demo

    result = run_sine_demo(out=args.out, epochs=args.epochs, seed=args.seed, quiet=True)
    print(json.dumps(result))
    return 0


def cmd_inspect(args) -> int:
    from textlstm.tracking.gates import inspect_text

    rest, overrides = _split_overrides(args.rest)
    if len(rest) != 1:
        raise UserError('inspect takes one quoted text, e.g. textlstm inspect RUN "a good film" --out gates.png.')
    print(json.dumps(inspect_text(args.run, rest[0], out=args.out, html=args.html, overrides=overrides)))
    return 0


def cmd_bench(args) -> int:
    from textlstm.bench import DATASETS, run_bench

    for name in args.datasets:
        if name not in DATASETS:
            raise UserError(f"'{name}' is not a benchmark data set; use {' and/or '.join(DATASETS)}.")
    if args.steps < 2:
        raise UserError("--steps must be at least 2 (timed training steps per path).")
    if args.epochs < 0:
        raise UserError("--epochs must be 0 or more.")
    run_bench(args.datasets, args.steps, args.out, args.overrides, alternatives=not args.no_alternatives,
              epochs=args.epochs)
    return 0


def _count(text: str) -> int:
    """1000000, 1M, 500k -> an int."""
    t = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    try:
        n = int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise UserError(f"--sizes has '{text}', which is not a count; give e.g. 1M,2M,4M or 100000,200000.") from None
    if n < 1000:
        raise UserError(f"--sizes has {n}; use at least 1000 documents per size.")
    return n


def cmd_bench_scale(args) -> int:
    from textlstm.bench_scale import run_scale

    sizes = [_count(x) for x in args.sizes.split(",") if x.strip()]
    if len(sizes) < 2:
        raise UserError("--sizes needs at least two sizes to compare, e.g. 1M,2M,4M.")
    if args.steps < 1:
        raise UserError("--steps must be at least 1.")
    limit = None
    if args.memory_limit:
        mult = {"m": 1 << 20, "g": 1 << 30}.get(args.memory_limit[-1:].lower())
        try:
            limit = int(float(args.memory_limit[:-1]) * mult) if mult else int(args.memory_limit)
        except ValueError:
            raise UserError(f"--memory-limit is '{args.memory_limit}'; give bytes or e.g. 1500M, 1.5G.") from None
    run_scale(sizes, args.steps, args.eval_size, args.seed, args.out, args.overrides, args.data_dir, limit)
    return 0


def cmd_report(args) -> int:
    from textlstm.tracking.report import compare_report, run_report

    if len(args.runs) == 1:
        path = run_report(args.runs[0], args.out)
    else:
        path = compare_report(args.runs, args.out or "report.html")
    print(path)
    return 0


def cmd_sweep(args) -> int:
    from textlstm.training.sweep import run_sweep

    if args.trials is not None and args.trials < 1:
        raise UserError("--trials must be at least 1.")
    out = run_sweep(args.file, args.overrides, args.trials)
    best = (out / "best.yaml")
    print(f"sweep results: {out}")
    if best.is_file():
        print(best.read_text(encoding="utf-8").splitlines()[0])
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="textlstm", description="BiLSTM text classification: train, evaluate, predict.")
    sub = p.add_subparsers(dest="verb", required=True)

    t = sub.add_parser("train", help="train a model from a config", epilog=_config_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--config", "-c", default=None, help="YAML config file (configs/*.yaml)")
    t.add_argument("--resume", default=None, metavar="RUN",
                   help="continue a stopped run directory from its latest checkpoint (same folder, same W&B run)")
    t.add_argument("overrides", nargs="*", help="config overrides key=value")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="metrics of a trained run on its test split or a labelled file")
    e.add_argument("run", help="run directory (runs/<config>/<timestamp>)")
    e.add_argument("--data", default=None, help="labelled CSV/JSONL/Parquet file (default: the run's test split)")
    e.add_argument("rest", nargs="*", help="key=value overrides")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="label texts with a trained run (one JSON line per text)")
    pr.add_argument("run", help="run directory")
    pr.add_argument("rest", nargs="*", help="texts to label, and key=value overrides")
    pr.add_argument("--input", "-i", default=None, help=".txt (a text per line), .csv or .jsonl file of texts")
    pr.add_argument("--output", "-o", default=None, help="write JSON lines here instead of stdout")
    pr.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    pr.set_defaults(func=cmd_predict)

    i = sub.add_parser("inspect", help="draw a trained run's LSTM gates for one text")
    i.add_argument("run", help="run directory")
    i.add_argument("rest", nargs="*", help="the text (quoted), and key=value overrides")
    i.add_argument("--out", default="gates.png", help="PNG to write (default gates.png)")
    i.add_argument("--html", default=None, help="also write a self-contained HTML page")
    i.set_defaults(func=cmd_inspect)

    dm = sub.add_parser("demo", help="the seed notes' demos: sine")
    dm.add_argument("name", help="sine")
    dm.add_argument("--out", default="sine.png", help="plot to write (default sine.png)")
    dm.add_argument("--epochs", type=int, default=5)
    dm.add_argument("--seed", type=int, default=42)
    dm.set_defaults(func=cmd_demo)

    sw = sub.add_parser("sweep", help="hyper-parameter search (Optuna offline, W&B sweep online)")
    sw.add_argument("file", help="sweep file (configs/sweeps/*.yaml)")
    sw.add_argument("--trials", type=int, default=None, help="number of trials (default: the file's)")
    sw.add_argument("overrides", nargs="*", help="config overrides applied to every trial, key=value")
    sw.set_defaults(func=cmd_sweep)

    rp = sub.add_parser("report", help="self-contained HTML report of a run, or of several side by side")
    rp.add_argument("runs", nargs="+", help="run directories")
    rp.add_argument("--out", default=None, help="HTML file (default: <run>/report.html for one run, "
                                                "report.html for several)")
    rp.set_defaults(func=cmd_report)

    b = sub.add_parser("bench", help="speed benchmark: naive vs textlstm training, LSTM FLOP rate, inference, "
                                     "tokenization, memory; writes bench.json")
    b.add_argument("--datasets", nargs="+", default=["bbc_news", "tweets_sentiment"])
    b.add_argument("--steps", type=int, default=24, help="timed training steps per path (default 24)")
    b.add_argument("--out", default="bench.json", help="where to write the JSON results (default bench.json)")
    b.add_argument("--epochs", type=int, default=2,
                   help="then train both paths this many full epochs and compare test accuracy (0 skips; default 2)")
    b.add_argument("--no-alternatives", action="store_true", help="skip the threads/workers/packed comparison")
    b.add_argument("overrides", nargs="*", help="config overrides key=value, applied to every data set")
    b.set_defaults(func=cmd_bench)

    bs = sub.add_parser("bench-scale", help="memory and preparation throughput on synthetic corpora of growing size "
                                            "(default 1M, 2M, 4M documents); writes bench_scale.json")
    bs.add_argument("--sizes", default="1M,2M,4M", help="comma-separated corpus sizes (default 1M,2M,4M)")
    bs.add_argument("--steps", type=int, default=50, help="training steps in each epoch slice (default 50)")
    bs.add_argument("--eval-size", type=int, default=10_000, help="validation and test documents (default 10000)")
    bs.add_argument("--seed", type=int, default=0, help="seed of the synthetic corpus (default 0)")
    bs.add_argument("--data-dir", default="data", help="where the corpora are written (default data/)")
    bs.add_argument("--out", default="bench_scale.json", help="JSON results (default bench_scale.json)")
    bs.add_argument("--memory-limit", default=None, metavar="SIZE",
                    help="also run each size inside a memory cgroup capped at SIZE (e.g. 1.2G): shows the memory "
                         "a run needs, which peak RSS overstates by the memory-mapped pages it read")
    bs.add_argument("overrides", nargs="*", help="config overrides key=value for every size")
    bs.set_defaults(func=cmd_bench_scale)

    d = sub.add_parser("prepare", help="build the embedded data sets under data/")
    d.add_argument("names", nargs="*", default=["bbc_news", "tweets_sentiment"])
    d.add_argument("--data-dir", default="data")
    d.set_defaults(func=cmd_prepare)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = build_parser()
    # texts and key=value overrides may come before or after the --options
    args, extra = parser.parse_known_args(argv)
    unknown = [x for x in extra if x.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    for attr in ("overrides", "rest"):
        if hasattr(args, attr):
            setattr(args, attr, list(getattr(args, attr)) + extra)
            extra = []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _quiet()
    try:
        return args.func(args)
    except UserError as e:
        print(f"textlstm: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("textlstm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
