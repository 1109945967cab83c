"""`textlstm serve RUN_OR_BUNDLE`: the model behind HTTP until SIGTERM or Ctrl+C.

The model is loaded here once before the server starts, so a wrong path or a refused checkpoint
ends in one sentence (exit 2) instead of a worker's traceback, and /info is answered from it;
with one process (the default) that model is the one that serves."""

from __future__ import annotations

import logging
from pathlib import Path

from textlstm.core.errors import UserError
from textlstm.serving.server import DEFAULT_MAX_BODY_MB, HOSTS, App, listen, model_info, run_workers

# defaults (docs/benchmarks.md "Serving"): one process per usable core (workers 0; each parses,
# tokenizes and labels, so Python's one-core-per-process limit is the bound: on 2 cores 2
# processes answered 7.0k single-text requests/s at 32 clients against 4.4k for one); batches
# of up to 64 requests that take what is queued without waiting for more (under load they fill
# while the last one runs: 2.9k requests/s at 8 clients against 0.9k when waiting 5 ms); 512
# texts in progress per process, then 503
DEFAULTS = {"workers": 0, "max_batch_size": 64, "batch_timeout_ms": 0.0, "max_queue": 512}


def check_limits(host: str, port: int, workers: int, max_batch_size: int, batch_timeout_ms: float,
                 max_texts: int, max_chars: int, max_body_mb: int,
                 max_queue: int = DEFAULTS["max_queue"]) -> None:
    if host not in HOSTS:
        raise UserError(f"--host {host} is not an address this server binds; use 127.0.0.1 (this "
                        "machine only, the default), 0.0.0.0 or ::.")
    if not 1024 <= port <= 65535:
        raise UserError(f"--port {port} is out of range; pick a port from 1024 to 65535.")
    if workers < 0:
        raise UserError(f"--workers is {workers}; use 0 (one per usable core) or more.")
    for name, value in (("--max-batch-size", max_batch_size),
                        ("--max-texts", max_texts), ("--max-chars", max_chars),
                        ("--max-body-mb", max_body_mb), ("--max-queue", max_queue)):
        if value < 1:
            raise UserError(f"{name} is {value}; it must be at least 1.")
    if batch_timeout_ms < 0:
        raise UserError(f"--batch-timeout-ms is {batch_timeout_ms}; it must be 0 or more.")


def serve(path: str | Path, host: str = "127.0.0.1", port: int = 8000,
          workers: int = DEFAULTS["workers"], max_batch_size: int = DEFAULTS["max_batch_size"],
          batch_timeout_ms: float = DEFAULTS["batch_timeout_ms"], max_texts: int = 1000,
          max_chars: int = 20_000, max_body_mb: int = DEFAULT_MAX_BODY_MB, threads: int = 1,
          max_queue: int = DEFAULTS["max_queue"]) -> None:
    """Serve `path` (a run folder or a bundle) on host:port until stopped."""
    from textlstm.serving.loader import load

    check_limits(host, port, workers, max_batch_size, batch_timeout_ms, max_texts, max_chars,
                 max_body_mb, max_queue)
    from textlstm.core.hardware import usable_cores

    workers = workers or usable_cores()
    model = load(path, threads=threads)  # a bundle's sessions take `threads` themselves
    info = model_info(path, model)
    if info["engine"] == "torch":  # a run's network: torch is loaded already
        import torch

        torch.set_num_threads(threads)
    if workers > 1:
        del model  # each forked process loads its own copy (a model is not shared across forks)
    app = App((lambda: model) if workers == 1 else (lambda: load(path, threads=threads)), info,
              max_texts=max_texts, max_chars=max_chars, max_body_mb=max_body_mb,
              max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms,
              max_queue=max_queue)
    try:
        sock = listen(host, port)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror}); pick another "
                        "--port.") from None
    logging.getLogger("textlstm").info(
        "serving %s (%s) on http://%s:%d with %d process(es)", path, info["engine"],
        "[::]" if host == "::" else host, port, workers)
    with sock:
        run_workers(sock, app, workers)
