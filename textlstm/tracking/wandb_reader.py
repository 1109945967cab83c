"""Read an offline W&B run file (`run-<id>.wandb`) without uploading it.

The file is W&B's record log: a 7-byte header (":W&B", magic, version), then LevelDB-style
blocks of 32 KiB holding chunks (CRC32, length, type: full / first / middle / last), each
record a `wandb.proto.wandb_internal_pb2.Record`. wandb 0.31 ships no Python reader for it
(its Go core writes and syncs it), so this is ours; tests use it to check what a run logged.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7


def records(path: str | Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    chunks, buf, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer: padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:  # zero padding up to the block end
            pos += left
            continue
        body = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            chunks.append(body)
        elif kind == 2:
            buf = body
        elif kind == 3:
            buf += body
        elif kind == 4:
            chunks.append(buf + body)
            buf = b""
    out = []
    for c in chunks:
        r = pb.Record()
        r.ParseFromString(c)
        out.append(r)
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def summarize(path: str | Path) -> dict:
    """A run file as a dict.

    {"config": {...}, "history": {key: [values]}, "summary": {...}, "artifacts": [names],
    "tags", "group", "name"}.
    """
    out = {"config": {}, "history": {}, "summary": {}, "artifacts": [], "tags": [], "group": "",
           "name": ""}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["tags"], out["group"] = list(r.run.tags), r.run.run_group
            out["name"] = r.run.display_name
            for item in r.run.config.update:
                out["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in r.config.update:
                out["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            for item in r.history.item:
                out["history"].setdefault(_key(item), []).append(json.loads(item.value_json))
        elif kind == "summary":
            for item in r.summary.update:
                out["summary"][_key(item)] = json.loads(item.value_json)
        elif kind == "artifact":
            out["artifacts"].append({"name": r.artifact.name, "type": r.artifact.type,
                                     "aliases": list(r.artifact.aliases),
                                     "metadata": json.loads(r.artifact.metadata or "{}"),
                                     "files": [e.path for e in r.artifact.manifest.contents]})
    return out
