"""`textlstm serve RUN_OR_BUNDLE`: the model behind HTTP until SIGTERM or Ctrl+C.

The model is loaded here once before any worker starts, so a wrong path or a refused checkpoint
ends in one sentence (exit 2) instead of a worker's traceback, and /info is answered from it."""

from __future__ import annotations

import logging
from pathlib import Path

from textlstm.core.errors import UserError
from textlstm.serving.server import DEFAULT_MAX_BODY_MB, HOSTS, build_server, model_info, run_server

# defaults: 1 worker (half the memory of 2; on the busy 2-core machine 2 workers were within
# its noise, docs/benchmarks.md "Serving"), batches of up to 64 requests, 5 ms to fill one
# max_queue: requests in progress per API process before a 503 (docs/benchmarks.md "Serving")
DEFAULTS = {"workers": 1, "max_batch_size": 64, "batch_timeout_ms": 5.0, "max_queue": 128}


def check_limits(host: str, port: int, workers: int, max_batch_size: int, batch_timeout_ms: float,
                 max_texts: int, max_chars: int, max_body_mb: int,
                 max_queue: int = DEFAULTS["max_queue"]) -> None:
    if host not in HOSTS:
        raise UserError(f"--host {host} is not one LitServe can bind; use 127.0.0.1 (this machine "
                        "only, the default), 0.0.0.0 or ::.")
    if not 1024 <= port <= 65535:
        raise UserError(f"--port {port} is out of range; pick a port from 1024 to 65535.")
    for name, value in (("--workers", workers), ("--max-batch-size", max_batch_size),
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
          fast_queue: bool = True, max_queue: int = DEFAULTS["max_queue"]) -> None:
    """Serve `path` (a run folder or a bundle) on host:port until stopped."""
    from textlstm.serving.loader import load

    check_limits(host, port, workers, max_batch_size, batch_timeout_ms, max_texts, max_chars,
                 max_body_mb, max_queue)
    model = load(path)
    info = model_info(path, model)
    del model  # the inference workers load their own copies
    server = build_server(path, info, workers=workers, max_batch_size=max_batch_size,
                          batch_timeout_ms=batch_timeout_ms, max_texts=max_texts,
                          max_chars=max_chars, max_body_mb=max_body_mb, threads=threads,
                          fast_queue=fast_queue, max_queue=max_queue)
    logging.getLogger(__name__).info(
        "serving %s (%s) on http://%s:%d with %d worker(s)", path, info["engine"],
        "[::]" if host == "::" else host, port, workers)
    try:
        run_server(server, host, port, workers)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror}); pick another "
                        "--port.") from None
    except RuntimeError as e:
        if "workers failed to start" in str(e):
            raise UserError(f"the inference worker could not load {path}; run `textlstm predict "
                            f"{path} \"a text\"` to see why.") from None
        raise
