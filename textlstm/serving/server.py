"""`textlstm serve`: a model behind HTTP, in the processes that answer (uvicorn + a small ASGI
app; `--workers N` processes share one listening socket, each holding its own model).

    POST /predict  {"text": "..."} | {"texts": [...]}  ->  {"predictions": [{label, probabilities}]}
    GET  /health   200 once the model is loaded, 503 before
    GET  /info     labels, test metrics, engine, model architecture version, textlstm version

Micro-batching: requests that arrive together are labelled in one call (up to `max_batch_size`
requests, waiting at most `batch_timeout_ms` for a batch to fill), in one worker thread, so the
event loop goes on reading requests while a batch runs. Admission control: at most `max_queue`
texts are in progress in a process; a request that would pass that gets 503 with Retry-After at
once instead of queuing for seconds.

Why not LitServe, which served until 2026-12 (docs/benchmarks.md "Serving"): it hands every
request from its API process to an inference process through a multiprocessing Manager queue
and back through another queue. On 2 cores that round trip and FastAPI's middleware layers cost
more than labelling a tweet: profiled at 32 clients (py-spy), its inference process spent 65 %
of its time in queue calls and 31 % labelling, and a third process (the Manager) was busy
relaying. Here a request never leaves the process that parsed it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing as mp
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

DEFAULT_MAX_BODY_MB = 32
RETRY_AFTER_S = 1  # what a 503 asks a client to wait: a full queue drains within about that
HOSTS = ("127.0.0.1", "0.0.0.0", "::")
ROUTES = "use POST /predict, GET /health or GET /info"

log = logging.getLogger("textlstm")


def engine_of(model: Any) -> str:
    """"torch" for a run folder's Predictor; a bundle's model says its own (e.g. "onnx")."""
    return getattr(model, "engine", "torch")


class BadRequest(Exception):
    """A request the server refuses: an HTTP status and one sentence for {"error": ...}."""

    def __init__(self, status: int, message: str, headers: list | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or []


def parse_request(body: bytes, max_texts: int, max_chars: int) -> list[str]:
    """The texts of a /predict body, or BadRequest saying what is wrong with it."""
    try:
        raw = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(400, f"the body is not valid UTF-8 (byte {e.start}); send UTF-8 "
                              "JSON.") from None
    try:
        payload = json.loads(raw)
    except RecursionError:
        raise BadRequest(400, "the JSON body is nested too deeply; send {\"text\": \"...\"} or "
                              "{\"texts\": [...]}.") from None
    except ValueError as e:
        raise BadRequest(400, f"the body is not valid JSON ({str(e).split(':')[0]}); send "
                              "{\"text\": \"...\"} or {\"texts\": [...]}.") from None
    return texts_of(payload, max_texts, max_chars)


def texts_of(payload: Any, max_texts: int, max_chars: int) -> list[str]:
    if not isinstance(payload, dict):
        raise BadRequest(422, f"the body is a JSON {type(payload).__name__}, not an object; send "
                              "{\"text\": \"...\"} or {\"texts\": [...]}.")
    if ("text" in payload) == ("texts" in payload):
        raise BadRequest(422, "the body needs exactly one of the fields \"text\" (a string) or "
                              "\"texts\" (a list of strings).")
    if "text" in payload:
        texts = [payload["text"]]
    else:
        texts = payload["texts"]
        if not isinstance(texts, list):
            raise BadRequest(422, f"\"texts\" is a JSON {type(texts).__name__}, not a list; send a "
                                  "list of strings.")
        if not texts:
            raise BadRequest(422, "\"texts\" is an empty list; send at least one text.")
        if len(texts) > max_texts:
            raise BadRequest(413, f"\"texts\" has {len(texts)} texts, over the limit of "
                                  f"{max_texts}; split them into several requests.")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise BadRequest(422, f"text #{i + 1} is a JSON {type(t).__name__}, not a string; send "
                                  "texts as strings.")
        if len(t) > max_chars:
            raise BadRequest(413, f"text #{i + 1} has {len(t)} characters, over the limit of "
                                  f"{max_chars}; shorten it or raise --max-chars.")
    return texts


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


async def _send_json(send, status: int, body: bytes, headers: list | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class MicroBatcher:
    """Requests' texts labelled together: the first request waiting opens a batch, which takes
    every request already queued and waits up to `timeout_s` for more, up to `max_requests`;
    the batch runs in one worker thread (onnxruntime and torch release the GIL while they
    compute). While it runs, the next batch fills, so under load batches grow by themselves."""

    def __init__(self, predict, max_requests: int, timeout_s: float):
        self.predict, self.max_requests, self.timeout_s = predict, max_requests, timeout_s
        self.queue: asyncio.Queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="textlstm-batch")

    async def submit(self, texts: list[str]) -> list[dict]:
        done = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((texts, done))
        return await done

    async def _collect(self) -> list[tuple[list[str], asyncio.Future]]:
        loop = asyncio.get_running_loop()
        batch = [await self.queue.get()]
        deadline = loop.time() + self.timeout_s
        while len(batch) < self.max_requests:
            if self.queue.empty():
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            else:
                batch.append(self.queue.get_nowait())
        return batch

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            flat = [t for texts, _ in batch for t in texts]
            try:
                preds = await loop.run_in_executor(self.executor, self.predict, flat)
            except Exception as e:  # every request of the batch learns of it (a 500)
                log.exception("labelling a batch of %d texts failed", len(flat))
                for _, done in batch:
                    if not done.done():
                        done.set_exception(e)
                continue
            start = 0
            for texts, done in batch:
                if not done.done():  # a client that went away cancelled its future
                    done.set_result(preds[start:start + len(texts)])
                start += len(texts)


class App:
    """The ASGI application of one server process. `load` returns the model (anything with
    `predict(texts) -> list[dict]`); it runs in a thread at startup, so /health answers 503
    while the model loads."""

    def __init__(self, load, info: dict, *, max_texts: int = 1000, max_chars: int = 20_000,
                 max_body_mb: int = DEFAULT_MAX_BODY_MB, max_batch_size: int = 64,
                 batch_timeout_ms: float = 0.0, max_queue: int | None = None):
        self.load, self.info_body = load, json.dumps(info).encode()
        self.max_texts, self.max_chars, self.max_body = max_texts, max_chars, max_body_mb * 2**20
        self.max_batch_size, self.timeout_s = max_batch_size, batch_timeout_ms / 1000
        self.max_queue, self.in_flight = max_queue, 0  # texts; one event loop: no lock
        self.batcher: MicroBatcher | None = None
        self._tasks: list[asyncio.Task] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                await self._route(scope, receive, send)
            except BadRequest as e:
                await _send_json(send, e.status, error_body(e.message), e.headers)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._tasks.append(asyncio.create_task(self._start()))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:  # uvicorn has answered every request by now
                    task.cancel()
                if self.batcher is not None:
                    self.batcher.executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        try:
            model = await asyncio.get_running_loop().run_in_executor(None, self.load)
        except Exception:  # a worker process without a model must not sit there answering 503
            log.exception("the model could not be loaded; this server process stops")
            os._exit(3)
        self.batcher = MicroBatcher(model.predict, self.max_batch_size, self.timeout_s)
        self._tasks.append(asyncio.create_task(self.batcher.run()))

    async def _route(self, scope, receive, send) -> None:
        method, path = scope["method"], scope["path"]
        if path == "/predict" and method == "POST":
            await self._predict(scope, receive, send)
        elif path == "/health" and method in ("GET", "HEAD"):
            ready = self.batcher is not None
            await _send_json(send, 200 if ready else 503,
                             b'"ok"' if ready else error_body("the model is still loading."))
        elif path == "/info" and method in ("GET", "HEAD"):
            await _send_json(send, 200, self.info_body)
        elif path in ("/predict", "/health", "/info"):
            raise BadRequest(405, f"{method} is not allowed on {path}; {ROUTES}.")
        else:
            raise BadRequest(404, f"there is nothing at {path}; {ROUTES}.")

    async def _predict(self, scope, receive, send) -> None:
        texts = parse_request(await self._read(scope, receive), self.max_texts, self.max_chars)
        retry = [(b"retry-after", str(RETRY_AFTER_S).encode())]
        if self.batcher is None:
            raise BadRequest(503, f"the model is still loading; retry after {RETRY_AFTER_S} s.",
                             retry)
        # texts, not requests, are the work: a request of 64 texts weighs 64 (one alone is
        # always admitted into an idle process, whatever its size)
        if self.max_queue is not None and self.in_flight and \
                self.in_flight + len(texts) > self.max_queue:
            raise BadRequest(503, f"the server is busy ({self.in_flight} texts in progress, "
                                  f"--max-queue {self.max_queue}); retry after "
                                  f"{RETRY_AFTER_S} s.", retry)
        self.in_flight += len(texts)
        try:
            preds = await self.batcher.submit(texts)
        finally:
            self.in_flight -= len(texts)
        await _send_json(send, 200, json.dumps({"predictions": preds}).encode())

    async def _read(self, scope, receive) -> bytes:
        """The whole body, at most max_body bytes. The content type is not read: curl -d sends
        JSON as a form unless told otherwise."""
        too_big = BadRequest(413, f"the body is over {self.max_body // 2**20} MiB; send fewer or "
                                  "shorter texts per request.")
        for k, v in scope["headers"]:
            if k == b"content-length" and v.isdigit() and int(v) > self.max_body:
                raise too_big
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest(400, "the client went away before sending the whole body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def model_info(path: str | Path, model: Any) -> dict:
    """What GET /info answers, read once in the supervising process."""
    from textlstm import __version__
    from textlstm.core import runfolder

    path = Path(getattr(model, "run_dir", None) or path)
    engine = engine_of(model)
    # a bundle carries its description (textlstm.json, checked when it loaded); a run its
    # metrics.json, read through core.runfolder like every reader of a run
    meta = getattr(model, "meta", None) or {}
    metrics = (runfolder.read_metrics(path, missing_ok=True).get("test") if engine == "torch"
               else None) or meta.get("metrics")
    version = meta.get("arch_version", meta.get("model_version"))
    if version is None and engine == "torch":
        from textlstm.models.classifier import ARCH_VERSION

        version = ARCH_VERSION  # the loader refuses a checkpoint of any other version
    return {"model": str(path), "labels": list(model.labels), "metrics": metrics,
            "engine": engine, "model_version": version, "textlstm_version": __version__}


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that every worker process accepts on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_socket(sock: socket.socket, app: App) -> None:
    """One server process: uvicorn on `sock` until SIGTERM/SIGINT, which it handles by
    finishing the requests it holds before it exits."""
    import uvicorn

    # access logs off: one log line per request costs more than labelling a tweet
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=30)
    # uvicorn handles the signal (a graceful shutdown), then restores the handlers it found
    # and raises the signal again; with these the process then ends as a clean stop (exit 0)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    uvicorn.Server(config).run(sockets=[sock])


def _worker(sock: socket.socket, app: App) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the supervisor, which says
    serve_socket(sock, app)


def run_workers(sock: socket.socket, app: App, workers: int) -> None:
    """`workers` forked processes on one socket (the kernel spreads the connections); this
    process waits, passes SIGTERM/SIGINT on, and stops them all if one dies."""
    if workers == 1:
        serve_socket(sock, app)
        return
    ctx = mp.get_context("fork")  # the children inherit the socket and the imports
    procs = [ctx.Process(target=_worker, args=(sock, app), daemon=False) for _ in range(workers)]
    for p in procs:
        p.start()
    stopping, died = False, False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    previous = [signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)]
    try:
        from multiprocessing.connection import wait

        alive = list(procs)
        while alive:
            wait([p.sentinel for p in alive])
            alive = [p for p in alive if p.is_alive()]
            if not stopping and len(alive) < workers:
                log.error("a server process died; stopping the server")
                died = True
                stop(None, None)
    finally:
        for s, h in zip((signal.SIGTERM, signal.SIGINT), previous, strict=True):
            signal.signal(s, h)
    if died:
        raise RuntimeError("a server process died; see the log above for its error.")
