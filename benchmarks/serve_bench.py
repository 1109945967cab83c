"""`textlstm serve-bench RUN_OR_BUNDLE`: `textlstm serve` under load, on loopback only.

1. start the server in a subprocess on a free 127.0.0.1 port and wait for /health;
2. levels: 1, 8, 32, 128 concurrent clients sending 1-text requests, then 64-text requests,
   texts drawn from the tweets test split; each level bounded in requests and seconds;
3. a soak of `soak_requests` single-text requests at 32 clients, each text with a word of its
   own; the server's memory after the first 5,000 and at the end;
4. fuzz: malformed requests of every kind the server must refuse, random bytes, and valid
   requests whose texts hold lone surrogates, control characters, long tokens, non-BMP text;
5. 1,000 texts labelled by the server and by `textlstm predict`: the share that agree.

Load comes from wrk where it is installed (a compiled generator, so the load takes little of
the server's cores) or from httpx in this process; each level records which, and its CPU time.

Writes serve_bench.json: {"engine", "generator", "levels": [{"clients", "texts_per_request",
"requests_per_second", "texts_per_second", "p50_ms", "p95_ms", "p99_ms", "errors",
"generator", "generator_cpu_seconds", "share_of_predict"}], "predict_texts_per_second"
(`predict --input` on the same model, in this run, before the server starts),
"requests_total", "rss_mb": {"start", "after_5000", "end", "soak_requests"},
"fuzz": {"requests", "status_5xx", "alive", "odd_texts", "odd_texts_not_200"},
"agreement_with_predict"}."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from textlstm.core.errors import UserError
from textlstm.core.io import write_json

HOST = "127.0.0.1"  # the only address this benchmark ever sends to
MAX_TEXTS, MAX_CHARS = 1000, 20_000  # the server's defaults, which the fuzz phase probes


def run_serve_bench(path: str | Path, out: str | Path = "serve_bench.json",
                    levels: list[int] | tuple[int, ...] = (1, 8, 32, 128),
                    texts_per_request: list[int] | tuple[int, ...] = (1, 64),
                    requests_per_level: int = 20_000, seconds_per_level: float = 30.0,
                    soak_requests: int = 100_000, soak_seconds: float = 900.0,
                    fuzz_requests: int = 5000, agreement_texts: int = 1000,
                    data: str | Path = "data/tweets_sentiment/test.jsonl", workers: int = 0,
                    max_batch_size: int = 64, batch_timeout_ms: float = 0.0,
                    threads: int = 1, startup_seconds: float = 300.0,
                    generator: str = "auto", max_queue: int | None = None) -> dict:
    import logging

    import httpx  # noqa: F401  (fail before starting a server if the client is missing)

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise

    generator = pick_generator(generator)
    texts = read_texts(data)
    predict_rate = predict_texts_per_second(path, texts)  # before the server: a quiet machine
    print(json.dumps({"predict_texts_per_second": predict_rate}), file=sys.stderr)
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="serve-bench-", suffix=".log", delete=False)
    cmd = [sys.executable, "-m", "textlstm", "serve", str(path), "--host", HOST,
           "--port", str(port), "--workers", str(workers), "--max-batch-size", str(max_batch_size),
           "--batch-timeout-ms", str(batch_timeout_ms), "--threads", str(threads),
           *(["--max-queue", str(max_queue)] if max_queue is not None else [])]
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://{HOST}:{port}"
    try:
        wait_healthy(base, server, startup_seconds, log.name)
        info = _get_json(base + "/info")
        rss_start = tree_rss_mb(server.pid)
        results, total = [], 0
        for k in texts_per_request:
            for c in levels:
                settle(base)
                level = load_level(generator, base, texts, c, k, requests_per_level,
                                   seconds_per_level)
                total += level.pop("requests")
                level["share_of_predict"] = round(level["texts_per_second"] / predict_rate, 3)
                results.append(level)
                print(json.dumps(level), file=sys.stderr)
        rss_5000, soaked = None, 0
        if soak_requests:  # memory: every request carries a word the server has never seen
            first = min(5000, soak_requests)
            # the soak runs at 32 clients: its rate is that level's (the highest overall
            # sized wrk's seconds too short, and the soak ended at 81,277 of 100,000)
            rate = next((x["requests_per_second"] for x in results
                         if x["texts_per_request"] == 1 and x["clients"] == 32), 500.0)
            for n, offset in ((first, 0), (soak_requests - first, first)):
                done, t0 = 0, time.monotonic()
                while done < n and time.monotonic() - t0 < soak_seconds:  # until n answered
                    settle(base)
                    soak = soak_level(generator, base, texts, n - done, offset + done,
                                      soak_seconds - (time.monotonic() - t0), rate)
                    sent = soak.pop("requests")
                    done, total = done + sent, total + sent
                    # no rate: wrk's soak seconds include the wait after its last answer
                    print(json.dumps({"soak": {"requests": sent, "errors": soak["errors"],
                                               "p99_ms": soak["p99_ms"]}}), file=sys.stderr)
                    if not sent:
                        break
                soaked += done
                if rss_5000 is None:
                    rss_5000 = tree_rss_mb(server.pid)
        rss_end = tree_rss_mb(server.pid)
        settle(base)
        fuzz = asyncio.run(fuzz_server(base, fuzz_requests))
        agreement = agreement_with_predict(base, path, texts[:agreement_texts])
    finally:
        stop(server)
        log.close()
    result = {"engine": info.get("engine"), "generator": generator,
              "predict_texts_per_second": predict_rate, "levels": results,
              "requests_total": total,
              "rss_mb": {"start": round(rss_start, 1), "end": round(rss_end, 1),
                         "after_5000": round(rss_5000 or rss_end, 1),
                         "soak_requests": soaked},
              "fuzz": fuzz, "agreement_with_predict": agreement}
    write_json(out, result)
    os.unlink(log.name)
    return result


def predict_texts_per_second(path: str | Path, texts: list[str], n: int = 20_000) -> float:
    """What `textlstm predict --input` does with `n` texts (the data repeated), in texts per
    second: the same bundle's batch throughput, which a server's figures are compared with."""
    import textlstm

    pred = textlstm.load(path)
    texts = (texts * -(-n // len(texts)))[:n]
    list(pred.predict_blocks(texts[:256]))  # warm-up: spaCy, the session
    t0 = time.perf_counter()
    for _ in pred.predict_blocks(texts):  # the JSON lines `predict --input` writes
        pass
    return round(n / (time.perf_counter() - t0), 1)


def soak_level(generator: str, base: str, texts: list[str], n: int, offset: int,
               max_seconds: float, rate: float) -> dict:
    """`n` single-text requests from 32 clients, request k's text ending in a word made of
    offset + k, so the server's tokenizer meets a new string in every request. wrk stops
    sending after n answers but runs out its -d seconds, so those are sized from `rate` (the
    requests/s the levels measured); its requests count says how many were answered, which
    can pass n by up to the 31 other connections' requests already in flight at the stop."""
    if generator == "wrk":
        seconds = min(max_seconds, 2 + 1.5 * n / max(rate, 100.0))
        return run_wrk(base, texts, 32, 1, seconds, distinct=(n, offset))
    return asyncio.run(drive(base, texts, 32, 1, n, max_seconds, distinct_offset=offset))


def pick_generator(name: str) -> str:
    """auto: wrk where it is installed (`make serve-bench` installs it), else httpx."""
    import shutil

    if name == "auto":
        return "wrk" if shutil.which("wrk") else "httpx"
    if name == "wrk" and not shutil.which("wrk"):
        raise UserError("--generator wrk: wrk is not installed; `make serve-bench` installs it "
                        "(apt-get install wrk), or use --generator httpx.")
    return name


def load_level(generator: str, base: str, texts: list[str], clients: int, per_request: int,
               max_requests: int, max_seconds: float) -> dict:
    """One level of load; wrk runs for the level's seconds (it has no request count)."""
    if generator == "wrk":
        return run_wrk(base, texts, clients, per_request, max_seconds)
    cpu = time.process_time()  # the generator runs in this process: its CPU is ours
    level = asyncio.run(drive(base, texts, clients, per_request, max_requests, max_seconds))
    return level | {"generator": "httpx",
                    "generator_cpu_seconds": round(time.process_time() - cpu, 2)}


def read_texts(data: str | Path) -> list[str]:
    path = Path(data)
    if not path.is_file():
        raise UserError(f"{path} does not exist; run `textlstm prepare tweets_sentiment` or pass "
                        "--data FILE.jsonl.")
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        if isinstance(row.get("text"), str) and row["text"].strip():
            texts.append(row["text"])
    if not texts:
        raise UserError(f"{path} has no \"text\" fields; pass a JSONL file with one.")
    return texts


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_healthy(base: str, server: subprocess.Popen, seconds: float, log: str) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = Path(log).read_text(errors="replace").strip().splitlines()[-1:]
            raise UserError(f"the server exited with code {server.returncode} before it was ready "
                            f"({' '.join(tail)}); run `textlstm serve` alone to see why.")
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise UserError(f"the server was not ready within {seconds:.0f} s; the machine may be busy.")


def settle(base: str, seconds: float = 60.0) -> None:
    """Wait until the server admits a request again: a level's generator stops with requests
    still queued in the server, which it labels (and counts against --max-queue) after the
    clients have gone; the next phase starts on a drained server."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if httpx.post(base + "/predict", json={"text": "ready?"}, timeout=30).status_code == 200:
            return
        time.sleep(0.1)


def _get_json(url: str) -> dict:
    import httpx

    return httpx.get(url, timeout=10).json()


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (the server's workers), in MB."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return 0.0
    return round(sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))], 2)


# a level: wrk cycles through prepared request bodies
WRK_REQUESTS = """
local bodies = {%s}
local n = 0
request = function()
  n = n %% #bodies + 1
  return wrk.format("POST", "/predict", {["Content-Type"] = "application/json"}, bodies[n])
end
"""
# the soak: request k's text gets a word of its own; wrk stops after `limit` answers
WRK_DISTINCT = """
local texts = {%s}
local n, answered, limit = %d, 0, %d
request = function()
  n = n + 1
  return wrk.format("POST", "/predict", {["Content-Type"] = "application/json"},
                    '{"text": "' .. texts[n %% #texts + 1] .. ' w' .. n .. 'z"}')
end
response = function(status, headers, body)
  answered = answered + 1
  if answered >= limit then wrk.thread:stop() end
end
"""
# wrk calls done() once at the end; the JSON line it writes is what parse_wrk reads
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nWRK {"requests": %d, "duration_us": %d, "non_2xx": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, ' ..
    '"p99_us": %d}\\n', summary.requests, summary.duration, e.status, e.connect, e.read,
    e.write, e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def _lua_string(body: bytes) -> str:
    """A Lua string literal holding `body` byte for byte."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}"
                         for b in body) + '"'


def parse_wrk(stdout: str, clients: int, per_request: int) -> dict:
    """The level's figures from the JSON line WRK_DONE writes. Throughput counts
    answered requests only: a 503 (load shed) or any other non-2xx is an error, not work."""
    line = next(x for x in stdout.splitlines() if x.startswith("WRK "))
    w = json.loads(line[4:])
    seconds = w["duration_us"] / 1e6
    ok = w["requests"] - w["non_2xx"]
    errors = {k: w[k] for k in ("non_2xx", "connect", "read", "write", "timeout") if w[k]}
    return {"clients": clients, "texts_per_request": per_request,
            "requests_per_second": round(ok / seconds, 1),
            "texts_per_second": round(ok * per_request / seconds, 1),
            "p50_ms": round(w["p50_us"] / 1000, 2), "p95_ms": round(w["p95_us"] / 1000, 2),
            "p99_ms": round(w["p99_us"] / 1000, 2), "errors": errors, "requests": w["requests"]}




def _wrk_script(texts: list[str], clients: int, per_request: int, distinct_bodies: int,
                distinct: tuple[int, int] | None) -> str:
    rng = random.Random(clients * 1000 + per_request)
    if distinct:  # the texts as JSON string contents, closed around the new word in Lua
        n, offset = distinct
        inner = [json.dumps(t)[1:-1].encode() for t in rng.sample(texts, min(512, len(texts)))]
        return WRK_DISTINCT % (", ".join(map(_lua_string, inner)), offset, n) + WRK_DONE
    bodies = [json.dumps({"text": rng.choice(texts)} if per_request == 1 else
                         {"texts": rng.sample(texts, per_request)}).encode()
              for _ in range(distinct_bodies)]
    return WRK_REQUESTS % ", ".join(map(_lua_string, bodies)) + WRK_DONE


def run_wrk(base: str, texts: list[str], clients: int, per_request: int, seconds: float,
            distinct_bodies: int = 512, distinct: tuple[int, int] | None = None) -> dict:
    """One level driven by wrk (a compiled generator: one thread, epoll), so the load takes
    little of the cores the server needs; its CPU seconds are recorded beside the figures.
    `distinct` (n, offset): the soak's n requests, each with a word of its own."""
    import resource

    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(_wrk_script(texts, clients, per_request, distinct_bodies, distinct))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        p = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s",
                            "--timeout", "30s", "-s", fh.name, base], capture_output=True,
                           text=True)
    finally:
        os.unlink(fh.name)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0 or "WRK " not in p.stdout:
        raise UserError(f"wrk failed ({(p.stderr or p.stdout).strip()[-200:]}); run with "
                        "--generator httpx.")
    level = parse_wrk(p.stdout, clients, per_request)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return level | {"generator": "wrk", "generator_cpu_seconds": round(cpu, 2)}


async def drive(base: str, texts: list[str], clients: int, per_request: int, max_requests: int,
                max_seconds: float, distinct_bodies: int = 512,
                distinct_offset: int | None = None) -> dict:
    """`clients` concurrent keep-alive clients sending until `max_requests` requests in all or
    `max_seconds` have passed, whichever comes first, cycling through `distinct_bodies`
    request bodies drawn from `texts` (built before the clock starts). With
    `distinct_offset`, request k's text ends in a word of its own (the soak, as WRK_DISTINCT)."""
    import httpx

    rng = random.Random(clients * 1000 + per_request)
    bodies = [json.dumps({"text": rng.choice(texts)} if per_request == 1 else
                         {"texts": rng.sample(texts, per_request)}).encode()
              for _ in range(min(max_requests, distinct_bodies))]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        start = time.perf_counter()
        deadline = start + max_seconds

        async def one_client():
            nonlocal sent
            while sent < max_requests and time.perf_counter() < deadline:
                body = bodies[sent % len(bodies)]
                if distinct_offset is not None:
                    n = distinct_offset + sent + 1
                    body = body[:-2] + f" w{n}z\"}}".encode()  # before the closing quote
                sent += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/predict", content=body, headers=headers)
                    status = r.status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                latencies.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    errors[str(status)] = errors.get(str(status), 0) + 1

        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {"clients": clients, "texts_per_request": per_request,
            "requests_per_second": round(sent / elapsed, 1),
            "texts_per_second": round(sent * per_request / elapsed, 1),
            "p50_ms": _percentile(latencies, 0.50), "p95_ms": _percentile(latencies, 0.95),
            "p99_ms": _percentile(latencies, 0.99), "errors": errors, "requests": sent}


def fuzz_cases(rng: random.Random) -> list[tuple[str, str, bytes, dict]]:
    """(method, path, body, headers) of every kind of request the server must refuse."""
    js = {"content-type": "application/json"}
    cases = [
        ("POST", "/predict", b'{"text": "unfinished', js),
        ("POST", "/predict", b"", js),
        ("POST", "/predict", b'{"text": "caf\xe9 \xff\xfe"}', js),  # not UTF-8
        ("POST", "/predict", b"{}", js),
        ("POST", "/predict", b'{"txt": "typo"}', js),
        ("POST", "/predict", b'{"text": "a", "texts": ["b"]}', js),
        ("POST", "/predict", b'["a list", "not an object"]', js),
        ("POST", "/predict", b'"a string"', js),
        ("POST", "/predict", b'{"text": 42}', js),
        ("POST", "/predict", b'{"text": null}', js),
        ("POST", "/predict", b'{"text": ["nested"]}', js),
        ("POST", "/predict", b'{"texts": "not a list"}', js),
        ("POST", "/predict", b'{"texts": []}', js),
        ("POST", "/predict", b'{"texts": ["ok", 7, "ok"]}', js),
        ("POST", "/predict", b'{"texts": [{"text": "x"}]}', js),
        ("POST", "/predict", json.dumps({"texts": ["t"] * (MAX_TEXTS + 1)}).encode(), js),
        ("POST", "/predict", json.dumps({"text": "x" * (MAX_CHARS + 1)}).encode(), js),
        ("POST", "/predict", b"[" * 100_000 + b"]" * 100_000, js),
        ("POST", "/predict", b'{"texts": ' + b"[" * 5000 + b"]" * 5000 + b"}", js),
        ("POST", "/predict", b"NaN", js),
        ("POST", "/predict", b'{"text": "form encoded"}',
         {"content-type": "application/x-www-form-urlencoded"}),
        ("POST", "/predict", b"text=hello", {"content-type": "application/x-www-form-urlencoded"}),
        ("GET", "/predict", b"", {}),
        ("POST", "/nowhere", b'{"text": "x"}', js),
        ("PUT", "/info", b"", {}),
    ]
    for _ in range(15):  # random bytes, with and without a JSON content type
        cases.append(("POST", "/predict", rng.randbytes(rng.randint(1, 4096)),
                      js if rng.random() < 0.5 else {}))
    return cases


def odd_text(rng: random.Random) -> str:
    """A valid text a tokenizer may choke on: lone UTF-16 surrogates (JSON "\\ud800" decodes
    to one), control characters, one very long token, non-BMP characters, or a mix."""
    def piece() -> str:
        kind = rng.randrange(5)
        if kind == 0:
            return chr(rng.randint(0xD800, 0xDFFF))
        if kind == 1:
            return "".join(chr(rng.choice([*range(0x20), 0x7F, 0x85, 0x2028])) for _ in range(3))
        if kind == 2:
            return rng.choice("abcxyz") * rng.randint(100, MAX_CHARS // 4)
        if kind == 3:
            return "".join(chr(rng.randint(0x10000, 0x10FFFF)) for _ in range(rng.randint(1, 8)))
        return rng.choice(["ok", "a\u200db", "\u202eevil", "caf\u00e9", "\ufeff"])
    return " ".join(piece() for _ in range(rng.randint(1, 4)))[:MAX_CHARS]


async def fuzz_server(base: str, n: int, seed: int = 0) -> dict:
    """`n` malformed requests (cycling through `fuzz_cases`), a few oversized bodies and raw
    non-HTTP bytes; 5xx answers counted; then the server must still answer."""
    import httpx

    rng = random.Random(seed)
    cases = fuzz_cases(rng)
    status_5xx = sent = odd = odd_refused = 0
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for i in range(n):
            method, path, body, headers = cases[i % len(cases)]
            if i % len(cases) >= len(cases) - 15:  # fresh random bytes each round
                body = rng.randbytes(rng.randint(1, 4096))
            if i % 3 == 2:  # a valid body with odd texts: it must be answered, not refused
                texts = [odd_text(rng) for _ in range(rng.randint(1, 3))]
                method, path, headers = "POST", "/predict", {"content-type": "application/json"}
                body = json.dumps({"texts": texts}).encode()  # ASCII: surrogates as \\udxxx
            sent += 1
            try:
                r = await client.request(method, path, content=body, headers=headers)
                status_5xx += r.status_code >= 500
                if i % 3 == 2:
                    odd += 1
                    odd_refused += r.status_code != 200
            except httpx.HTTPError:
                pass  # a connection the server closed on a bad request is not a 5xx
        for _ in range(3):  # bodies over the server's size limit, by header and by stream
            sent += 1
            try:
                r = await client.post("/predict", content=b"x" * (33 * 2**20), headers={})
                status_5xx += r.status_code >= 500
            except httpx.HTTPError:
                pass
        for _ in range(5):  # bytes that are not HTTP at all
            sent += 1
            status_5xx += await _raw_garbage(base, rng.randbytes(256))
        health = await client.get("/health")
        ok = await client.post("/predict", json={"text": "still here?"})
    alive = health.status_code == 200 and ok.status_code == 200
    return {"requests": sent, "status_5xx": status_5xx, "alive": alive, "odd_texts": odd,
            "odd_texts_not_200": odd_refused}


async def _raw_garbage(base: str, data: bytes) -> int:
    host, port = base.rsplit("/", 1)[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data + b"\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.read(64), 10)
    except (OSError, asyncio.TimeoutError):
        return 0
    finally:
        writer.close()
    parts = head.split(b" ")
    return int(len(parts) > 1 and parts[1][:1] == b"5")


def agreement_with_predict(base: str, path: str | Path, texts: list[str]) -> float:
    """Share of `texts` the server labels as `textlstm predict` does."""
    import httpx

    # predict --input reads a .txt file a text per line
    texts = [t for t in texts if "\n" not in t and "\r" not in t]
    served = []
    for s in range(0, len(texts), 64):
        r = httpx.post(base + "/predict", json={"texts": texts[s:s + 64]}, timeout=60)
        served += [p["label"] for p in r.json()["predictions"]]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "texts.txt", Path(tmp) / "predictions.jsonl"
        src.write_text("\n".join(texts) + "\n", encoding="utf-8")
        p = subprocess.run([sys.executable, "-m", "textlstm", "predict", str(path), "--input",
                            str(src), "--output", str(dst)], capture_output=True, text=True)
        if p.returncode != 0:
            raise UserError(f"`textlstm predict` failed: {p.stderr.strip().splitlines()[-1:]}")
        labels = [json.loads(x)["label"] for x in dst.read_text(encoding="utf-8").splitlines()]
    if len(labels) != len(served) or not served:
        return 0.0
    return round(sum(a == b for a, b in zip(served, labels, strict=True)) / len(served), 6)
