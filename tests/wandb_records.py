"""Read the records of an offline W&B run (``run-<id>.wandb``) for tests.

wandb (0.2x/0.3x) ships no Python reader for its transaction log; the format is LevelDB's log
format (32 KiB blocks of [crc32, length, type] + data; records may span blocks) after a 7-byte
``:W&B`` header, and each record is a ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path) -> list[Any]:
    """Every protobuf Record in an offline run's ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B transaction log"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        space = BLOCK - pos % BLOCK
        if space < 7:  # block trailer padding
            pos += space
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:  # zero padding
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def offline_run(run_dir: Path) -> dict[str, Any]:
    """The run header, history keys, last summary, config keys and media files of one offline run dir."""
    (log,) = run_dir.glob("run-*.wandb")
    out: dict[str, Any] = {"history": set(), "summary": {}, "config": set(), "run": None}
    for record in read_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
            out["config"] |= {item.key for item in record.run.config.update}
        elif kind == "config":
            out["config"] |= {item.key for item in record.config.update}
        elif kind == "history":
            out["history"] |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        elif kind == "summary":
            for item in record.summary.update:
                out["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    out["media"] = sorted(p.relative_to(run_dir / "files" / "media").as_posix() for p in (run_dir / "files" / "media").rglob("*") if p.is_file())
    return out
