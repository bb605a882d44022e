"""A fingerprint of a pretrained model folder, so an adapter-only checkpoint is loaded onto its own base.

An adapter-only checkpoint (:mod:`peftlab.checkpoints.trainable_state`) holds what trained and a
pointer to the frozen base. Another model of the same shape saved into that folder would load
without complaint and give other results, so the checkpoint also records:

- ``config_sha256``: the folder's ``config.json`` as canonical JSON (keys sorted; the
  ``transformers_version`` / ``_name_or_path`` bookkeeping left out);
- ``weights_sha256``: SHA-256 over the names and SHA-256 digests of its weight files
  (``*.safetensors``, ``*.bin``, ...).

Hashing reads the weight files once per process: the result is kept per folder as long as the
files' sizes and modification times are unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# Files that hold a transformers model's weights (sharded or not).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")
# config.json entries that record who saved the folder, not what the model is.
CONFIG_BOOKKEEPING = ("transformers_version", "_name_or_path")
_CHUNK = 1 << 20  # bytes per read while hashing

_cache: dict[tuple, dict[str, str]] = {}


def _weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_fingerprint(folder: str | Path) -> dict[str, str]:
    """``{"config_sha256", "weights_sha256"}`` of a folder written by ``save_pretrained``."""
    folder = Path(folder).resolve()
    config_file = folder / "config.json"
    files = _weight_files(folder)
    signature = (str(folder), *((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in [config_file, *files] if p.is_file()))
    if signature not in _cache:
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        for key in CONFIG_BOOKKEEPING:
            config.pop(key, None)
        weights = hashlib.sha256()
        for p in files:
            weights.update(f"{p.name}\0{_file_sha256(p)}\n".encode())
        _cache[signature] = {
            "config_sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
            "weights_sha256": weights.hexdigest(),
        }
    return dict(_cache[signature])
