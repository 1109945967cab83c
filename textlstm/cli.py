"""The `textlstm` command: train, pretrain, evaluate, predict, export, inspect, report, sweep,
prepare, demo, bench, bench-scale, audit, suggest.

Every verb takes `key=value` config overrides after its own arguments. User mistakes end in
one line on stderr and exit code 2 (see textlstm.core.errors.UserError).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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


def _require_path(path: str) -> None:
    """A missing run folder or bundle is refused here, before torch and Lightning load: the
    user's typo costs a fraction of a second, not the several seconds those imports take.
    Everything else about the folder is checked where it is read."""
    from pathlib import Path

    from textlstm.core.runfolder import require_run_dir

    if not str(path).startswith("hf://") and not Path(path).exists():
        require_run_dir(path)  # raises the sentence every reader of a run gives


def _require_data_files(data) -> None:
    """The config's local data files, checked (exist, not empty, known format) before the
    training stack loads; the same check the loader makes later."""
    from pathlib import Path

    from textlstm.data.formats import loader_for

    if data.source == "files":
        for split in ("train", "validation", "test"):
            if data.get(f"{split}_file"):
                loader_for(Path(data[f"{split}_file"]))
    if data.get("extra_train_file"):
        loader_for(Path(data.extra_train_file))
    if data.get("unlabeled_file"):
        from textlstm.batches.lm import check_unlabeled_file

        check_unlabeled_file(data.unlabeled_file)


def cmd_train(args) -> int:
    from textlstm.core.config import load_config
    from textlstm.core.runfolder import load_run_config, read_metrics, require_run_dir

    if args.resume:
        if args.config:
            raise UserError("train takes --config or --resume, not both; a resumed run keeps its "
                            "own config.")
        run = require_run_dir(args.resume, "resume")
        cfg = load_run_config(run, [*args.overrides, f"resume={run}"])
    else:
        cfg = load_config(args.config, args.overrides)
        _require_data_files(cfg.data)
    from textlstm.commands.train import train

    run_dir = train(cfg)
    if _is_rank_zero():
        t = read_metrics(run_dir)["test"]
        print(f"run directory: {run_dir}")
        keys = ("f1_micro", "f1_macro", "subset_accuracy") if "per_label" in t else ("accuracy",
                                                                                     "f1_macro")
        print("test: " + " ".join(f"{k}={t[k]:.4f}" for k in (*keys, "loss")))
    return 0


def cmd_pretrain(args) -> int:
    from textlstm.core.config import load_config
    from textlstm.core.runfolder import read_metrics

    cfg = load_config(args.config, args.overrides)
    _require_data_files(cfg.data)
    from textlstm.commands.pretrain import check_pretrain_config, pretrain

    check_pretrain_config(cfg)
    run_dir = pretrain(cfg)
    m = read_metrics(run_dir)
    print(f"run directory: {run_dir}")
    print(f"held-out perplexity {m['perplexity']:.2f} (unigram {m['unigram_perplexity']:.2f}); "
          f"train with model.init_from={run_dir}")
    return 0


def cmd_audit(args) -> int:
    from textlstm.core.config import load_config

    cfg = load_config(args.config, args.overrides)
    _require_data_files(cfg.data)
    from textlstm.commands.audit import audit

    out = audit(cfg, folds=args.folds, out=args.out, fast=args.fast,
                log=lambda m: print(m, file=sys.stderr))
    print(out)
    return 0


def cmd_suggest(args) -> int:
    _require_path(args.run)
    from textlstm.commands.suggest import suggest

    rest, overrides = _split_overrides(args.rest)
    if rest or overrides:
        raise UserError(f"suggest got unexpected argument(s) {' '.join(rest + overrides)}; it "
                        "takes RUN, --pool FILE, --k, --strategy, --seed, --out and --overwrite.")
    out, n = suggest(args.run, args.pool, args.k, args.strategy, args.seed, args.out,
                     args.overwrite, args.text_field)
    print(f"wrote {n} texts to label to {out} ({args.strategy})")
    return 0


def cmd_evaluate(args) -> int:
    _require_path(args.run)
    from textlstm.commands.evaluate import evaluate

    rest, overrides = _split_overrides(args.rest)
    if rest:
        raise UserError(f"evaluate got unexpected argument(s) {' '.join(rest)}; use --data FILE "
                        "and key=value overrides.")
    report = evaluate(args.run, args.data, overrides)
    if _is_rank_zero():
        print(json.dumps(report))
    return 0


def cmd_predict(args) -> int:
    _require_path(args.run)
    from textlstm.commands.predict import predict

    texts, overrides = _split_overrides(args.rest)
    predict(args.run, texts, args.input, args.output, args.overwrite, overrides, args.min_labels)
    return 0


def cmd_export(args) -> int:
    _require_path(args.run)
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


def cmd_explain(args) -> int:
    _require_path(args.run)
    from textlstm.commands.explain import explain_text

    rest, overrides = _split_overrides(args.rest)
    if len(rest) != 1:
        raise UserError('explain takes one quoted text, e.g. textlstm explain RUN "a good film" '
                        '--json.')
    r = explain_text(args.run, rest[0], args.label, args.out, args.steps, overrides)
    if args.json:
        print(json.dumps(r, ensure_ascii=False))
        return 0
    print(f"label: {r['label']} (p = {r['probabilities'][r['label']]:.4f}); convergence delta "
          f"{r['delta']:+.2e}")
    ranked = sorted(zip(r["tokens"], r["attributions"], strict=True), key=lambda ta: -abs(ta[1]))
    for tok, a in ranked[:10]:
        print(f"  {a:+.4f}  {tok}")
    if args.out:
        print(f"wrote {args.out}")
    return 0


def cmd_inspect(args) -> int:
    _require_path(args.run)
    from textlstm.commands.inspect import inspect_text

    rest, overrides = _split_overrides(args.rest)
    if len(rest) != 1:
        raise UserError('inspect takes one quoted text, e.g. textlstm inspect RUN "a good film" '
                        '--out gates.png.')
    print(json.dumps(inspect_text(args.run, rest[0], out=args.out, html=args.html,
                                  overrides=overrides)))
    return 0


def cmd_bench(args) -> int:
    from textlstm.commands.benchmarks import benchmark

    benchmark("bench").run_bench(args.datasets, args.steps, args.out, args.overrides,
                                 alternatives=not args.no_alternatives, epochs=args.epochs)
    return 0


def cmd_bench_scale(args) -> int:
    from textlstm.commands.benchmarks import benchmark

    b = benchmark("bench_scale")
    b.run_scale(b.parse_sizes(args.sizes), args.steps, args.eval_size, args.seed, args.out,
                args.overrides, args.data_dir, b.parse_memory(args.memory_limit))
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


def cmd_serve(args) -> int:
    from textlstm.commands.serve import serve

    serve(args.path, host=args.host, port=args.port, workers=args.workers,
          max_batch_size=args.max_batch_size, batch_timeout_ms=args.batch_timeout_ms,
          max_texts=args.max_texts, max_chars=args.max_chars, max_body_mb=args.max_body_mb,
          threads=args.threads, max_queue=args.max_queue)
    # the server has stopped and flushed; skip the interpreter's teardown, which for a process
    # holding torch takes seconds on a busy machine and would delay a SIGTERM'd exit
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cmd_serve_bench(args) -> int:
    from textlstm.commands.benchmarks import benchmark

    result = benchmark("serve_bench").run_serve_bench(
        args.path, out=args.out, levels=args.clients, texts_per_request=args.texts_per_request,
        requests_per_level=args.requests_per_level, seconds_per_level=args.seconds_per_level,
        soak_requests=args.soak_requests, soak_seconds=args.soak_seconds,
        fuzz_requests=args.fuzz_requests,
        agreement_texts=args.agreement_texts, data=args.data, workers=args.workers,
        max_batch_size=args.max_batch_size, batch_timeout_ms=args.batch_timeout_ms,
        threads=args.threads, generator=args.generator, max_queue=args.max_queue)
    print(json.dumps(result))
    return 0


def cmd_push(args) -> int:
    from textlstm.commands.push import push

    print(push(args.path, args.repo_id, private=args.private))
    return 0


def _add_server_options(sp: argparse.ArgumentParser) -> None:
    """Options `serve` and `serve-bench` share (how the server runs)."""
    from textlstm.commands.serve import DEFAULTS

    sp.add_argument("--workers", type=int, default=DEFAULTS["workers"],
                    help="server processes on one socket, each with its own model (default 0: "
                         "one per usable core)")
    sp.add_argument("--max-batch-size", type=int, default=DEFAULTS["max_batch_size"],
                    help="requests labelled together at most (dynamic batching; default "
                         f"{DEFAULTS['max_batch_size']})")
    sp.add_argument("--batch-timeout-ms", type=float, default=DEFAULTS["batch_timeout_ms"],
                    help="how long a batch waits to fill, in ms (default "
                         f"{DEFAULTS['batch_timeout_ms']:g})")
    sp.add_argument("--threads", type=int, default=1,
                    help="threads per server process for the network (default 1)")
    sp.add_argument("--max-queue", type=int, default=DEFAULTS["max_queue"],
                    help="texts in progress per server process (a request of n texts counts "
                         "n) past which a request gets 503 with Retry-After (default "
                         f"{DEFAULTS['max_queue']})")


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train a model from a config", epilog=_config_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--config", "-c", default=None, help="YAML config file (configs/*.yaml)")
    t.add_argument("--resume", default=None, metavar="RUN",
                   help="continue a stopped run directory from its latest checkpoint (same folder, "
                        "same W&B run)")
    t.add_argument("overrides", nargs="*", help="config overrides key=value")
    t.set_defaults(func=cmd_train)


def _add_pretrain(sub) -> None:
    p = sub.add_parser("pretrain", help="train a bidirectional language model on the training "
                                        "(+ data.unlabeled_file) texts; model.init_from=RUN "
                                        "then starts a classifier from it",
                       epilog=_config_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", default=None, help="YAML config file (configs/*.yaml): the "
                                                        "one the classifier will train with")
    p.add_argument("overrides", nargs="*", help="config overrides key=value (pretrain.*, "
                                                "data.unlabeled_file, ...)")
    p.set_defaults(func=cmd_pretrain)


def _add_audit(sub) -> None:
    a = sub.add_parser("audit", help="find likely mislabelled training texts: out-of-fold "
                                     "probabilities + cleanlab; writes label_issues.csv and "
                                     "audit.html")
    a.add_argument("--config", "-c", required=True, help="YAML config file (configs/*.yaml)")
    a.add_argument("--folds", type=int, default=5,
                   help="folds; each is a training run on the others (default 5)")
    a.add_argument("--out", default=None,
                   help="output folder (default <run_root>/<name>/audit-<timestamp>); pass an "
                        "earlier audit's folder to resume it, finished folds are skipped")
    a.add_argument("--fast", action="store_true",
                   help="TF-IDF + logistic regression instead of the LSTM: seconds, not minutes")
    a.add_argument("overrides", nargs="*", help="config overrides key=value")
    a.set_defaults(func=cmd_audit)


def _add_suggest(sub) -> None:
    from textlstm.commands.suggest import STRATEGIES

    s = sub.add_parser("suggest", help="rank unlabelled texts for labelling (active learning); "
                                       "writes a CSV to fill in")
    s.add_argument("run", help="run directory or bundle folder")
    s.add_argument("--pool", required=True,
                   help="unlabelled texts: .csv/.jsonl (the run's data.text_field) or .txt")
    s.add_argument("--k", type=int, default=100, help="texts to suggest (default 100)")
    s.add_argument("--strategy", choices=STRATEGIES, default="breaking-ties",
                   help="breaking-ties (default): smallest gap between the top two labels "
                        "first; diverse-ties: the k picks spread over the closest calls (a run "
                        "folder only; fewer labels on the tweets loop); entropy: most uncertain "
                        "first; random: seeded shuffle")
    s.add_argument("--seed", type=int, default=0,
                   help="seed of --strategy random and diverse-ties (default 0)")
    s.add_argument("--out", default="to_label.csv", help="CSV to write (default to_label.csv)")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    s.add_argument("--text-field", default=None,
                   help="the pool's text column (default: the run's data.text_field)")
    s.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_suggest)


def _add_evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="metrics of a trained run (or bundle) on its test split "
                                        "or a labelled file")
    e.add_argument("run", help="run directory (runs/<config>/<timestamp>) or bundle folder (a "
                               "bundle needs --data)")
    e.add_argument("--data", default=None,
                   help="labelled CSV/JSONL/Parquet file (default: the run's test split)")
    e.add_argument("rest", nargs="*", help="key=value overrides")
    e.set_defaults(func=cmd_evaluate)


def _add_predict(sub) -> None:
    pr = sub.add_parser("predict", help="label texts with a trained run or an exported bundle "
                                        "(one JSON line per text)")
    pr.add_argument("run", help="run directory, bundle folder or hf://OWNER/NAME")
    pr.add_argument("rest", nargs="*", help="texts to label, and key=value overrides")
    pr.add_argument("--input", "-i", default=None,
                    help=".txt (a text per line), .csv or .jsonl file of texts")
    pr.add_argument("--output", "-o", default=None, help="write JSON lines here instead of stdout")
    pr.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    pr.add_argument("--min-labels", type=int, default=0, metavar="N",
                    help="multi-label runs: answer at least N labels per text, the most probable "
                         "first (1: the top label rather than an empty answer); default 0")
    pr.set_defaults(func=cmd_predict)


def _add_inspect(sub) -> None:
    i = sub.add_parser("inspect", help="draw a trained run's LSTM gates for one text")
    i.add_argument("run", help="run directory")
    i.add_argument("rest", nargs="*", help="the text (quoted), and key=value overrides")
    i.add_argument("--out", default="gates.png", help="PNG to write (default gates.png)")
    i.add_argument("--html", default=None, help="also write a self-contained HTML page")
    i.set_defaults(func=cmd_inspect)


def _add_explain(sub) -> None:
    x = sub.add_parser("explain", help="which words decided a trained run's label for one text "
                                       "(integrated gradients)")
    x.add_argument("run", help="run directory")
    x.add_argument("rest", nargs="*", help="the text (quoted), and key=value overrides")
    x.add_argument("--label", default=None, help="explain this label (default: the predicted one)")
    x.add_argument("--out", default=None, help="also draw it: .html (shaded tokens beside the gate "
                                               "inspector) or .png (a bar per token)")
    x.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    x.add_argument("--steps", type=int, default=64, help="integration steps (default 64)")
    x.set_defaults(func=cmd_explain)


def _add_demo(sub) -> None:
    dm = sub.add_parser("demo", help="small worked examples of an LSTM: sine")
    dm.add_argument("name", help="sine")
    dm.add_argument("--out", default="sine.png", help="plot to write (default sine.png)")
    dm.add_argument("--epochs", type=int, default=5)
    dm.add_argument("--seed", type=int, default=42)
    dm.set_defaults(func=cmd_demo)


def _add_sweep(sub) -> None:
    sw = sub.add_parser("sweep", help="hyper-parameter search (Optuna offline, W&B sweep online)")
    sw.add_argument("file", help="sweep file (configs/sweeps/*.yaml)")
    sw.add_argument("--trials", type=int, default=None,
                    help="number of trials (default: the file's)")
    sw.add_argument("overrides", nargs="*",
                    help="config overrides applied to every trial, key=value")
    sw.set_defaults(func=cmd_sweep)


def _add_report(sub) -> None:
    rp = sub.add_parser("report",
                        help="self-contained HTML report of a run, or of several side by side")
    rp.add_argument("runs", nargs="+", help="run directories")
    rp.add_argument("--out", default=None, help="HTML file (default: <run>/report.html for one "
                                                "run, report.html for several)")
    rp.set_defaults(func=cmd_report)


def _add_bench(sub) -> None:
    b = sub.add_parser("bench", help="speed benchmark: naive vs textlstm training, LSTM FLOP rate, "
                                     "inference, tokenization, memory; writes bench.json")
    b.add_argument("--datasets", nargs="+", default=["bbc_news", "tweets_sentiment"])
    b.add_argument("--steps", type=int, default=24,
                   help="timed training steps per path (default 24)")
    b.add_argument("--out", default="bench.json",
                   help="where to write the JSON results (default bench.json)")
    b.add_argument("--epochs", type=int, default=2,
                   help="then train both paths this many full epochs and compare test accuracy (0 "
                        "skips; default 2)")
    b.add_argument("--no-alternatives", action="store_true",
                   help="skip the threads/workers/packed comparison")
    b.add_argument("overrides", nargs="*",
                   help="config overrides key=value, applied to every data set")
    b.set_defaults(func=cmd_bench)


def _add_bench_scale(sub) -> None:
    bs = sub.add_parser("bench-scale", help="memory and preparation throughput on synthetic "
                                            "corpora of growing size (default 1M, 2M, 4M "
                                            "documents); writes bench_scale.json")
    bs.add_argument("--sizes", default="1M,2M,4M",
                    help="comma-separated corpus sizes (default 1M,2M,4M)")
    bs.add_argument("--steps", type=int, default=50,
                    help="training steps in each epoch slice (default 50)")
    bs.add_argument("--eval-size", type=int, default=10_000,
                    help="validation and test documents (default 10000)")
    bs.add_argument("--seed", type=int, default=0, help="seed of the synthetic corpus (default 0)")
    bs.add_argument("--data-dir", default="data",
                    help="where the corpora are written (default data/)")
    bs.add_argument("--out", default="bench_scale.json",
                    help="JSON results (default bench_scale.json)")
    bs.add_argument("--memory-limit", default=None, metavar="SIZE",
                    help="also run each size inside a memory cgroup capped at SIZE (e.g. 1.2G): "
                         "shows the memory a run needs, which peak RSS overstates by the "
                         "memory-mapped pages it read")
    bs.add_argument("overrides", nargs="*", help="config overrides key=value for every size")
    bs.set_defaults(func=cmd_bench_scale)


def _add_serve(sub) -> None:
    sv = sub.add_parser("serve", help="serve a run or bundle over HTTP: POST /predict, "
                                      "GET /health, GET /info")
    sv.add_argument("path", help="run directory, bundle folder or hf://OWNER/NAME")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for all)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    _add_server_options(sv)
    sv.add_argument("--max-texts", type=int, default=1000, help="texts per request at most (1000)")
    sv.add_argument("--max-chars", type=int, default=20_000,
                    help="characters per text at most (20000)")
    sv.add_argument("--max-body-mb", type=int, default=32,
                    help="request body size at most (32 MiB)")
    sv.set_defaults(func=cmd_serve)


def _add_serve_bench(sub) -> None:
    sb = sub.add_parser("serve-bench", help="load-test `serve` on loopback: throughput, latency "
                                            "at 1-128 clients, fuzz, memory; writes "
                                            "serve_bench.json")
    sb.add_argument("path", help="run directory or bundle folder")
    sb.add_argument("--out", default="serve_bench.json", help="JSON results (serve_bench.json)")
    sb.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128],
                    help="concurrent clients per level (default 1 8 32 128)")
    sb.add_argument("--texts-per-request", type=int, nargs="+", default=[1, 64],
                    help="texts per request, each run at every client level (default 1 64)")
    sb.add_argument("--requests-per-level", type=int, default=20_000,
                    help="requests per level at most (default 20000)")
    sb.add_argument("--seconds-per-level", type=float, default=30.0,
                    help="seconds per level at most (default 30)")
    sb.add_argument("--soak-requests", type=int, default=100_000,
                    help="single-text requests at 32 clients, each text with a word of its own; "
                         "memory is read after the first 5000 and at the end (default 100000)")
    sb.add_argument("--soak-seconds", type=float, default=900.0,
                    help="seconds the soak may take at most (default 900)")
    sb.add_argument("--fuzz-requests", type=int, default=5000,
                    help="fuzz requests: malformed, and valid with odd texts (default 5000)")
    sb.add_argument("--agreement-texts", type=int, default=1000,
                    help="texts compared with `textlstm predict` (default 1000)")
    sb.add_argument("--generator", choices=["auto", "wrk", "httpx"], default="auto",
                    help="load generator: wrk (compiled; `make serve-bench` installs it), httpx "
                         "(in this process), auto: wrk if installed (default)")
    sb.add_argument("--data", default="data/tweets_sentiment/test.jsonl",
                    help="JSONL file of texts to send (default the tweets test split)")
    _add_server_options(sb)
    sb.set_defaults(func=cmd_serve_bench)


def _add_push(sub) -> None:
    pu = sub.add_parser("push", help="upload a bundle (or a run, exported first) to the Hugging "
                                     "Face Hub; load it back with "
                                     "textlstm.load(\"hf://OWNER/NAME\")")
    pu.add_argument("path", help="bundle folder (has textlstm.json) or run directory")
    pu.add_argument("repo_id", metavar="OWNER/NAME", help="Hub model repository")
    pu.add_argument("--private", action="store_true", help="create the repository private")
    pu.set_defaults(func=cmd_push)


def _add_export(sub) -> None:
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


def _add_prepare(sub) -> None:
    d = sub.add_parser("prepare", help="build the embedded data sets under data/")
    d.add_argument("names", nargs="*", default=["bbc_news", "tweets_sentiment"])
    d.add_argument("--data-dir", default="data")
    d.set_defaults(func=cmd_prepare)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="textlstm",
                                description="BiLSTM text classification: train, evaluate, predict.")
    sub = p.add_subparsers(dest="verb", required=True)
    # one helper per verb, in the order `textlstm --help` lists them
    for add in (_add_train, _add_pretrain, _add_evaluate, _add_predict, _add_inspect,
                _add_explain, _add_demo,
                _add_audit, _add_suggest, _add_sweep,
                _add_report, _add_bench, _add_bench_scale, _add_export, _add_serve,
                _add_serve_bench, _add_push, _add_prepare):
        add(sub)
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
