"""Data: sources (digits, local files, text files, Hugging Face datasets, GLUE, tweets, synthetic generation tasks) and the multi-task datamodule."""

from peftlab.data.datamodule import MultiTaskDataModule
from peftlab.data.digits import DigitsSource
from peftlab.data.glue import GlueSource
from peftlab.data.hf_datasets import HFDatasetSource
from peftlab.data.local_files import LocalFileSource
from peftlab.data.synthetic_generation import SyntheticGeneration
from peftlab.data.table import LabelledTable
from peftlab.data.text_files import TextFileSource
from peftlab.data.text_inputs import Conversations, PromptResponses, TextColumn, TokenizedTexts
from peftlab.data.tweets import TweetsSource
from peftlab.tasks import TaskSpec, parse_task_specs

__all__ = [
    "Conversations",
    "MultiTaskDataModule",
    "DigitsSource",
    "GlueSource",
    "HFDatasetSource",
    "LocalFileSource",
    "PromptResponses",
    "SyntheticGeneration",
    "LabelledTable",
    "TextFileSource",
    "TextColumn",
    "TokenizedTexts",
    "TweetsSource",
    "TaskSpec",
    "parse_task_specs",
]
