"""Train a multi-task model: `python train.py [overrides]` (see README)."""

from peftlab.cli import train_entry

if __name__ == "__main__":
    train_entry()
