"""Test a checkpoint: `python eval.py ckpt_path=<run dir>/checkpoints/<file>.ckpt`."""

from peftlab.cli import eval_entry

if __name__ == "__main__":
    eval_entry()
