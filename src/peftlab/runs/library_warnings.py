"""Keep the terminal to our progress, our summary and real warnings.

Lightning prints advertising tips and hardware banners at INFO level, and a few warnings that
ask users to act when nothing is wrong in peftlab's setup. They are dropped with standard
``logging`` filters and ``warnings`` filters on their exact messages; every other log line and
warning still shows. Lightning offers no switch for these, hence the filters.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

#: INFO lines of Lightning's that carry no information for a peftlab user (matched at the start).
NOISE_PREFIXES = (
    "💡 Tip:",  # advertising for LitLogger / LitModels
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "Trainer already configured with model summary callbacks",
    "Restoring states from the checkpoint path",  # the summary names the checkpoint
    "Loaded model weights from the checkpoint",
)

#: Warnings (message regexes) that are framework internals, not something the user can act on.
NOISE_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",  # Lightning's own use of a deprecated torch API
    r"The anonymous setting has no effect",  # Lightning's WandbLogger always passes `anonymous`
    r"The `srun` command is available on your system but is not used",  # any local run on a SLURM login node
)

#: Warnings that only make sense when training; eval restores a checkpoint just to test it.
EVAL_NOISE_WARNINGS = (
    r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be provided",
    r"The dirpath has changed from",
)


class DropNoise(logging.Filter):
    """A logging filter that drops records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes=NOISE_PREFIXES):
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) for noise, True otherwise."""
        return not str(record.getMessage()).startswith(self.prefixes)


#: Environment switches of Hugging Face's loading/download bars ("Loading weights", "Map", downloads);
#: set to 0 in the environment to see them again.
LOADING_BAR_SWITCHES = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")


def quiet_loading_bars() -> None:
    """Turn Hugging Face's loading bars off unless the environment asks for them.

    The switches are read when the libraries are imported, so they are set before that; a
    library imported earlier is told through its public call. Nothing is imported here (a digits
    run never loads transformers).
    """
    for name in LOADING_BAR_SWITCHES:
        os.environ.setdefault(name, "1")
    if os.environ[LOADING_BAR_SWITCHES[0]] != "1":
        return
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "datasets" in sys.modules and os.environ[LOADING_BAR_SWITCHES[1]] == "1":
        sys.modules["datasets"].disable_progress_bars()


def quiet_framework_noise(evaluating: bool = False) -> None:
    """Install the filters (idempotent) and turn loading bars off; ``evaluating`` also drops the training-only warnings."""
    quiet_loading_bars()
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        # Lightning adds its own console handler at import; Hydra's root handlers already print
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropNoise) for f in logger.filters):
            logger.addFilter(DropNoise())
    for pattern in NOISE_WARNINGS + (EVAL_NOISE_WARNINGS if evaluating else ()):
        warnings.filterwarnings("ignore", message=pattern)
