"""Data: task specs, sources and the multi-task datamodule."""

from peftlab.data.datamodule import MultiTaskDataModule
from peftlab.data.digits import DigitsSource
from peftlab.data.local_files import LocalFileSource
from peftlab.data.table import LabelledTable
from peftlab.tasks import TaskSpec, parse_task_specs

__all__ = ["MultiTaskDataModule", "DigitsSource", "LocalFileSource", "LabelledTable", "TaskSpec", "parse_task_specs"]
