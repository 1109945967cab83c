"""`textlstm serve`: a model behind HTTP, on LitServe (FastAPI + uvicorn underneath).

    POST /predict  {"text": "..."} | {"texts": [...]}  ->  {"predictions": [{label, probabilities}]}
    GET  /health   200 once the inference workers have loaded the model, 503 before
    GET  /info     labels, test metrics, engine, model architecture version, textlstm version

Processes (LitServe's): this one supervises; `workers` API processes (uvicorn) parse HTTP and
hand requests over a queue to `workers` inference processes, which load the model in `setup`
and label batches of requests (dynamic batching: up to `max_batch_size` requests, waiting at
most `batch_timeout_ms` for a batch to fill).

Pieces written by hand, and why:
- `RequestGuard` checks every /predict body before LitServe sees it. LitServe parses the body
  with `await request.json()` in its request handler and turns any exception there (invalid
  JSON, invalid UTF-8, a body nested past the recursion limit) into a 500; a 4xx needs the
  check to happen first. Doing it in the API process also keeps bad requests off the queue.
- The /info route is ours (LitServe's own /info shows server settings, not the model); LitServe's
  is moved to /litserve/info.
- SIGTERM: LitServe's supervisor has no handler for it (the process would die and leave its
  workers running), and its own shutdown closes the response queues before it stops uvicorn, so
  requests in flight would be lost. `_Server` stops the API processes first (uvicorn finishes
  the requests they hold), then lets LitServe stop the inference workers.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import litserve as ls
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

DEFAULT_MAX_BODY_MB = 32
HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # what LitServe's run() accepts

log = logging.getLogger(__name__)


def engine_of(model: Any) -> str:
    """"torch" for a run folder's Predictor; a bundle's model says its own (e.g. "onnx")."""
    return getattr(model, "engine", "torch")


class BadRequest(Exception):
    """A request the server refuses: an HTTP status and one sentence for {"error": ...}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


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


class RequestGuard:
    """ASGI middleware: reads a POST /predict body (at most `max_body` bytes), checks it with
    `parse_request`, and answers a bad one itself with a 4xx and {"error": "..."}. A good body
    is replayed to LitServe as application/json (curl -d sends form-encoded by default, and
    LitServe would then parse the body as a form)."""

    def __init__(self, app, *, path: str, max_body: int, max_texts: int, max_chars: int):
        self.app, self.path, self.max_body = app, path, max_body
        self.max_texts, self.max_chars = max_texts, max_chars

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
            parse_request(body, self.max_texts, self.max_chars)
        except BadRequest as e:
            await _send_json(send, e.status, error_body(e.message))
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the client's disconnect

        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        headers.append((b"content-type", b"application/json"))
        await self.app({**scope, "headers": headers}, replay, send)

    async def _read(self, scope, receive) -> bytes:
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


async def _send_json(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class TextClassifierAPI(ls.LitAPI):
    """LitServe's hooks around `textlstm.load(path)`: each request is a list of texts; a batch
    of requests is labelled in one call, so texts from many clients share a forward pass."""

    def __init__(self, path: str, *, max_texts: int = 1000, max_chars: int = 20_000,
                 max_batch_size: int = 64, batch_timeout_ms: float = 5.0, threads: int = 1):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout_ms / 1000)
        self.path, self.threads = path, threads
        self.max_texts, self.max_chars = max_texts, max_chars
        self.model = None

    def setup(self, device):
        from textlstm.serving.loader import load

        self.model = load(self.path)
        if engine_of(self.model) == "torch":
            import torch

            # several processes share 2 cores (API server, workers): one thread each avoids the
            # oversubscription that slows an LSTM step many times over (see core/hardware.py)
            torch.set_num_threads(self.threads)

    def decode_request(self, request):
        # RequestGuard has checked the body already; this check is for clients of the Python API
        # (and costs microseconds). HTTPException is how LitServe passes a 4xx back.
        try:
            return texts_of(request, self.max_texts, self.max_chars)
        except BadRequest as e:
            raise HTTPException(e.status, e.message) from None

    def predict(self, x):
        if self.max_batch_size == 1:  # LitServe passes a single request when not batching
            return self.model.predict(x)
        flat = [t for texts in x for t in texts]
        preds = self.model.predict(flat)
        out, start = [], 0
        for texts in x:
            out.append(preds[start:start + len(texts)])
            start += len(texts)
        return out

    def encode_response(self, output):
        return {"predictions": output}


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


ROUTES = "use POST /predict, GET /health or GET /info"


async def _http_error(request, exc: StarletteHTTPException):
    # FastAPI answers {"detail": ...}; every refusal of ours is {"error": "<one sentence>"}
    detail = exc.detail if isinstance(exc.detail, str) else "the request was refused."
    if exc.status_code == 404:
        detail = f"there is nothing at {request.url.path}; {ROUTES}."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}; {ROUTES}."
    return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)


class _Server(ls.LitServer):
    """LitServer with a SIGTERM that drains, and a quieter worker watch: see the module
    docstring."""

    _api_servers: dict = {}

    def _start_server(self, *args, **kwargs):
        self._stopping = threading.Event()
        self.worker_died = False
        self._api_servers = super()._start_server(*args, **kwargs)
        return self._api_servers

    def _start_worker_monitoring(self, manager, uvicorn_workers):
        # LitServe's watch polls the manager's event, which is gone once shutdown has begun, and
        # logs a traceback at every stop; this one stops when we do
        def watch():
            while not self._stopping.wait(1.0):
                if any(not p.is_alive() for p in self.inference_workers):
                    log.error("an inference worker died; stopping the server")
                    self.worker_died = True
                    self.drain_and_stop(timeout=5.0)
                    return

        threading.Thread(target=watch, daemon=True, name="textlstm-worker-watch").start()

    def _perform_graceful_shutdown(self, *args, **kwargs):
        self._stopping.set()
        super()._perform_graceful_shutdown(*args, **kwargs)

    def drain_and_stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        for proc in list(self._api_servers.values()):
            if proc.is_alive():
                proc.terminate()  # uvicorn: stop accepting, finish held requests, exit
        for proc in list(self._api_servers.values()):
            proc.join(timeout)
        if self._shutdown_event is not None:
            self._shutdown_event.set()  # LitServe's own shutdown: queues, inference workers


def build_server(path: str | Path, info: dict, *, workers: int = 1, max_batch_size: int = 64,
                 batch_timeout_ms: float = 5.0, max_texts: int = 1000, max_chars: int = 20_000,
                 max_body_mb: int = DEFAULT_MAX_BODY_MB, threads: int = 1,
                 fast_queue: bool = True) -> _Server:
    api = TextClassifierAPI(str(path), max_texts=max_texts, max_chars=max_chars,
                            max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms,
                            threads=threads)
    guard = {"path": "/predict", "max_body": max_body_mb * 2**20, "max_texts": max_texts,
             "max_chars": max_chars}
    server = _Server(api, accelerator="cpu", workers_per_device=workers, info_path="/litserve/info",
                     middlewares=[(RequestGuard, guard)], fast_queue=fast_queue,
                     disable_openapi_url=True)
    server.app.add_exception_handler(StarletteHTTPException, _http_error)
    server.app.add_api_route("/info", lambda: JSONResponse(info), methods=["GET"])
    return server


def run_server(server: _Server, host: str, port: int, workers: int) -> None:
    """Serve until SIGTERM or Ctrl+C."""

    main_pid = os.getpid()

    def on_sigterm(signum, frame):
        if os.getpid() != main_pid:
            # a child forked from here (LitServe's queue manager) ends as it would without us
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        # the main thread sits in a call on the manager's connection; a new thread gets its own
        threading.Thread(target=server.drain_and_stop, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    # after our drain LitServe finds the API processes already gone and says so; that is expected
    logging.getLogger("litserve.server").addFilter(
        lambda record: "Already not alive" not in record.getMessage())
    try:
        # access logs off: one log line per request costs more than labelling a tweet
        server.run(host=host, port=port, num_api_servers=workers, log_level="warning",
                   generate_client_file=False, access_log=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if getattr(server, "worker_died", False):
        raise RuntimeError("an inference worker died; see the log above for its error.")
