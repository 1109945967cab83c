"""The `textlstm` command: train, evaluate, predict, export, inspect, report, sweep, prepare, demo,
bench, bench-scale.

Every verb takes `key=value` config overrides after its own arguments. User mistakes end in
one line on stderr and exit code 2 (see textlstm.core.errors.UserError).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys

from textlstm.core.errors import UserError
from textlstm.core.logs import quiet_everything

OVERRIDE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+=")


def _split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    overrides = [x for x in items if OVERRIDE.match(x)]
    return [x for x in items if not OVERRIDE.match(x)], overrides


def _config_help() -> str:
    from textlstm.core.config import config_help

    return config_help()


def _is_rank_zero() -> bool:
    """Under DDP every rank runs the verb; one prints."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return rank_zero_only.rank == 0


def cmd_train(args) -> int:
    from textlstm.commands.train import train
    from textlstm.core.config import load_config
    from textlstm.core.runfolder import CONFIG, require_run_dir

    if args.resume:
        if args.config:
            raise UserError("train takes --config or --resume, not both; a resumed run keeps its own config.")
        run = require_run_dir(args.resume, "resume")
        cfg = load_config(run / CONFIG, [*args.overrides, f"resume={run}"])
    else:
        cfg = load_config(args.config, args.overrides)
    run_dir = train(cfg)
    if _is_rank_zero():
        t = json.loads((run_dir / "metrics.json").read_text())["test"]
        print(f"run directory: {run_dir}")
        print(f"test: accuracy={t['accuracy']:.4f} f1_macro={t['f1_macro']:.4f} loss={t['loss']:.4f}")
    return 0


def cmd_evaluate(args) -> int:
    from textlstm.commands.evaluate import evaluate

    rest, overrides = _split_overrides(args.rest)
    if rest:
        raise UserError(f"evaluate got unexpected argument(s) {' '.join(rest)}; use --data FILE and key=value "
                        "overrides.")
    report = evaluate(args.run, args.data, overrides)
    if _is_rank_zero():
        print(json.dumps(report))
    return 0


def cmd_predict(args) -> int:
    from textlstm.commands.predict import predict

    texts, overrides = _split_overrides(args.rest)
    predict(args.run, texts, args.input, args.output, args.overwrite, overrides)
    return 0


def cmd_export(args) -> int:
    from textlstm.commands.export import export

    rest, overrides = _split_overrides(args.rest)
    if rest or overrides:
        raise UserError(f"export got unexpected argument(s) {' '.join(rest + overrides)}; it "
                        "takes RUN, --out DIR, --quantize, --opset and --overwrite.")
    export(args.run, args.out, args.quantize, args.opset, args.overwrite,
           log=lambda m: print(m, file=sys.stderr))
    print(args.out)
    return 0


def cmd_prepare(args) -> int:
    from textlstm.data.sources import prepare

    for name in args.names:
        print(f"{name}: {prepare(name, args.data_dir)}")
    return 0


def cmd_demo(args) -> int:
    from textlstm.commands.demo import run_demo

    print(json.dumps(run_demo(args.name, out=args.out, epochs=args.epochs, seed=args.seed)))
    return 0


def cmd_inspect(args) -> int:
    from textlstm.commands.inspect import inspect_text

    rest, overrides = _split_overrides(args.rest)
    if len(rest) != 1:
        raise UserError('inspect takes one quoted text, e.g. textlstm inspect RUN "a good film" --out gates.png.')
    print(json.dumps(inspect_text(args.run, rest[0], out=args.out, html=args.html, overrides=overrides)))
    return 0


def cmd_bench(args) -> int:
    from textlstm.commands.bench import run_bench

    run_bench(args.datasets, args.steps, args.out, args.overrides, alternatives=not args.no_alternatives,
              epochs=args.epochs)
    return 0


def cmd_bench_scale(args) -> int:
    from textlstm.commands.bench_scale import parse_memory, parse_sizes, run_scale

    run_scale(parse_sizes(args.sizes), args.steps, args.eval_size, args.seed, args.out, args.overrides,
              args.data_dir, parse_memory(args.memory_limit))
    return 0


def cmd_report(args) -> int:
    from textlstm.tracking.report import compare_report, run_report

    if len(args.runs) == 1:
        print(run_report(args.runs[0], args.out))
    else:
        print(compare_report(args.runs, args.out or "report.html"))
    return 0


def cmd_sweep(args) -> int:
    from textlstm.commands.sweep import run_sweep

    out = run_sweep(args.file, args.overrides, args.trials)
    print(f"sweep results: {out}")
    best = out / "best.yaml"
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

    e = sub.add_parser("evaluate", help="metrics of a trained run (or bundle) on its test split "
                                        "or a labelled file")
    e.add_argument("run", help="run directory (runs/<config>/<timestamp>) or bundle folder (a "
                               "bundle needs --data)")
    e.add_argument("--data", default=None, help="labelled CSV/JSONL/Parquet file (default: the run's test split)")
    e.add_argument("rest", nargs="*", help="key=value overrides")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="label texts with a trained run or an exported bundle (one "
                                        "JSON line per text)")
    pr.add_argument("run", help="run directory or bundle folder")
    pr.add_argument("rest", nargs="*", help="texts to label, and key=value overrides")
    pr.add_argument("--input", "-i", default=None, help=".txt (a text per line), .csv or .jsonl file of texts")
    pr.add_argument("--output", "-o", default=None, help="write JSON lines here instead of stdout")
    pr.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    pr.set_defaults(func=cmd_predict)

    x = sub.add_parser("export", help="write a run as a bundle folder (ONNX model, vocabulary, "
                                      "model card) that predicts without torch; checks it against "
                                      "the run")
    x.add_argument("run", help="run directory")
    x.add_argument("--out", required=True, help="bundle folder to write (must not exist)")
    # free strings, checked by the export itself, so a wrong value is one sentence and exit 2
    x.add_argument("--quantize", default="none", help="none (fp32) or int8 (dynamic quantization)")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    x.add_argument("--overwrite", action="store_true", help="replace --out if it is a bundle")
    x.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    x.set_defaults(func=cmd_export)

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
    quiet_everything()
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
