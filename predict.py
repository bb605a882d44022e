"""Predict with a trained model: `python predict.py ckpt_path=<checkpoint or export> input=<file>` (see README)."""

from peftlab.cli import predict_entry

if __name__ == "__main__":
    predict_entry()
