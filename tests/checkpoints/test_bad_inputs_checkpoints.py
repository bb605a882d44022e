"""Bad-input catalogue: checkpoints a user was sent (crafted configs, pickles, foreign or ancient
files) and model folders that are not there.

Each case runs the real command and must exit with status 2, print exactly one ``error: <key or
file>: ...`` line, print no traceback and leave a finished run directory unchanged
(bad_input_harness); the crafted ones also assert that the code they carry never ran: no
marker file appears.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

from bad_input_harness import ROOT, check_bad_input
from hf_helpers import save_tiny_bert

MARKER = "MARKER"  # the file a crafted checkpoint's code would create in the case's temp dir


def craft(finished_run: Path, out: Path, change: Callable[[dict], None]) -> None:
    """``out``: the finished run's last.ckpt (a real, weights_only-loadable checkpoint) changed by ``change``."""
    checkpoint = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, out)


def stored_open(tmp: Path, run: Path) -> None:
    """A stored data section whose target opens (empties) a file."""
    craft(run, tmp / "crafted.ckpt", lambda c: c["peftlab_config"].update(data={"_target_": "builtins.open", "file": str(tmp / MARKER), "mode": "w"}))


class _RunsCode:
    """Pickled by reference to builtins.open: unpickling it without weights_only creates the marker."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def stored_torch_load(tmp: Path, run: Path) -> None:
    """A stored data section that torch.loads a code-running pickle with weights_only: false."""
    (tmp / "payload.pkl").write_bytes(pickle.dumps(_RunsCode(str(tmp / MARKER))))
    craft(run, tmp / "crafted.ckpt", lambda c: c["peftlab_config"].update(data={"_target_": "torch.load", "f": str(tmp / "payload.pkl"), "weights_only": False}))


def stored_trust_remote_code(tmp: Path, run: Path) -> None:
    """A model folder whose custom code creates the marker, and ``trust_remote_code: true`` stored."""
    folder = save_tiny_bert(tmp / "model_with_code")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_marker.MarkerModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_marker.py").write_text(
        f"from pathlib import Path\nfrom transformers import BertModel\nPath({str(tmp / MARKER)!r}).write_text('ran')\n\nclass MarkerModel(BertModel):\n    pass\n"
    )

    def change(c: dict) -> None:
        model = c["peftlab_config"]["model"]
        model["trust_remote_code"] = True
        model["backbone"] = {"_target_": "peftlab.models.HFBackbone", "_partial_": True, "name_or_path": str(folder), "pooling": "cls", "trust_remote_code": True}

    craft(run, tmp / "crafted.ckpt", change)


def stored_interpolation(tmp: Path, run: Path) -> None:
    craft(run, tmp / "crafted.ckpt", lambda c: c["peftlab_config"]["data"].update(batch_size="${oc.env:HOME}"))


def raw_pickle(tmp: Path, run: Path) -> None:
    """A plain pickle (not torch's zip format) holding an object: weights_only refuses it."""
    (tmp / "crafted.ckpt").write_bytes(pickle.dumps({"state_dict": {}, "hook": _RunsCode(str(tmp / MARKER))}))


def without_version(tmp: Path, run: Path) -> None:
    craft(run, tmp / "crafted.ckpt", lambda c: c.pop("pytorch-lightning_version"))


def ancient_version(tmp: Path, run: Path) -> None:
    craft(run, tmp / "crafted.ckpt", lambda c: c.update({"pytorch-lightning_version": "0.7.6"}))


def nothing(tmp: Path, run: Path) -> None:
    """No file to prepare."""


CKPT = "ckpt_path={tmp}/crafted.ckpt"
# (id, script, args (with {tmp}, {run}), what the error line must name, how to prepare {tmp})
CASES = [
    ("eval_stored_target_builtins_open", "eval.py", [CKPT], "data._target_='builtins.open'", stored_open),
    ("eval_stored_target_torch_load", "eval.py", [CKPT], "data._target_='torch.load'", stored_torch_load),
    ("eval_stored_trust_remote_code", "eval.py", [CKPT], "trust_remote_code=true; a file cannot allow", stored_trust_remote_code),
    ("eval_stored_interpolation", "eval.py", [CKPT], "data.batch_size holds an interpolation", stored_interpolation),
    ("eval_weights_only_refused_pickle", "eval.py", [CKPT], "weights_only loading refuses (it could run code)", raw_pickle),
    ("resume_weights_only_refused_pickle", "train.py", [CKPT], "weights_only loading refuses", raw_pickle),
    ("eval_without_lightning_version", "eval.py", [CKPT], "ckpt_path: ", without_version),
    ("eval_ancient_lightning_version", "eval.py", [CKPT], "Lightning '0.7.6'", ancient_version),
    ("resume_without_lightning_version", "train.py", [CKPT], "'pytorch-lightning_version'", without_version),
    ("resume_ancient_lightning_version", "train.py", [CKPT], "Lightning '0.7.6'", ancient_version),
    ("eval_trust_remote_code_not_bool", "eval.py", ["ckpt_path={run}/checkpoints/last.ckpt", "trust_remote_code=maybe"], "trust_remote_code", nothing),
    ("missing_local_model_dir", "train.py", ["model=hf", "model.name_or_path={tmp}/no_model_here"], "model.name_or_path: no such directory: ", nothing),
    ("missing_local_model_dir_relative", "train.py", ["model=hf", "model.name_or_path=./no_model_here"], f"no such directory: {ROOT / 'no_model_here'}", nothing),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_checkpoint_input_is_one_line_and_runs_no_code(case, finished_run, tmp_path):
    case_id, script, args, named, prepare = case
    prepare(tmp_path, finished_run)
    check_bad_input((case_id, script, args, named, {}), finished_run, tmp_path)
    assert not (tmp_path / MARKER).exists(), "the checkpoint's code ran"


def export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "export.py"), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(
    "prepare, extra, named",
    [(stored_open, [], "data._target_='builtins.open'"), (stored_trust_remote_code, [], "trust_remote_code=true; a file cannot allow"), (nothing, ["trust_remote_code=yes"], "trust_remote_code")],
    ids=["export_stored_target_builtins_open", "export_stored_trust_remote_code", "export_trust_remote_code_not_bool"],
)
def test_export_of_a_crafted_checkpoint_is_one_line_and_runs_no_code(prepare, extra, named, finished_run, tmp_path):
    prepare(tmp_path, finished_run)
    ckpt = tmp_path / "crafted.ckpt" if (tmp_path / "crafted.ckpt").exists() else finished_run / "checkpoints" / "last.ckpt"
    proc = export(f"ckpt_path={ckpt}", f"out={tmp_path / 'model.pt'}", *extra)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], proc.stderr[-2000:]
    assert not (tmp_path / MARKER).exists() and not (tmp_path / "model.pt").exists()
