"""A server's memory over a long run of requests, every one carrying words it has never seen.

`make serve-bench` repeats the tweets test split, so after one pass spaCy meets nothing new;
real traffic does (URLs, handles, typos). This starts `textlstm serve` on loopback, sends ROUNDS
rounds of REQUESTS single-text requests from 8 clients, each tweet with WORDS random words
appended, and prints the server's RSS (with its child processes) after each round:

    .venv/bin/python -m benchmarks.experiments.serve_rss RUN_OR_BUNDLE [ROUNDS] [REQUESTS] [WORDS]

ROUNDS defaults to 6, REQUESTS to 5000, WORDS to 20 (0: the tweets as they are).
"""

import asyncio
import random
import subprocess
import sys
import tempfile

from benchmarks.serve_bench import (
    HOST,
    drive,
    free_port,
    read_texts,
    stop,
    tree_rss_mb,
    wait_healthy,
)

path = sys.argv[1]
rounds, requests, words = ([int(a) for a in sys.argv[2:5]] + [6, 5000, 20][len(sys.argv[2:5]):])
texts = read_texts("data/tweets_sentiment/test.jsonl")
port = free_port()
log = tempfile.NamedTemporaryFile("w+", prefix="serve-rss-", suffix=".log", delete=False)
server = subprocess.Popen([sys.executable, "-m", "textlstm", "serve", path, "--host", HOST,
                           "--port", str(port), "--threads", "1"],
                          stdout=log, stderr=subprocess.STDOUT)
base = f"http://{HOST}:{port}"
try:
    wait_healthy(base, server, 300, log.name)
    print(f"start: {tree_rss_mb(server.pid):.1f} MB", flush=True)
    rng = random.Random(0)
    for r in range(rounds):
        batch = [t + "".join(f" w{rng.getrandbits(40):x}" for _ in range(words))
                 for t in (texts * (requests // len(texts) + 1))[:requests]]
        # every request a different tweet (serve-bench cycles through 512 bodies)
        level = asyncio.run(drive(base, batch, 8, 1, requests, 600, distinct_bodies=requests))
        print(f"after round {r + 1} ({level['requests']} requests, "
              f"{level['requests_per_second']:.0f}/s): {tree_rss_mb(server.pid):.1f} MB",
              flush=True)
finally:
    stop(server)
