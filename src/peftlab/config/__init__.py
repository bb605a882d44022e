"""What runs before or around Hydra: resolvers, composition, override and group checks, CLI misuse.

Nothing here imports torch or Lightning at module level, so a bad command line is refused fast.
"""

from pathlib import Path

# The Hydra config tree (configs/ at the repository root) that train.py and eval.py compose from.
CONFIG_DIR = str(Path(__file__).resolve().parents[3] / "configs")
