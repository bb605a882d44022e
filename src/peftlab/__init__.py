"""peftlab: parameter-efficient multi-task fine-tuning with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
