"""Tasks: what one task predicts and how it is scored (shared by data/ and models/, which import
nothing of each other).

* :class:`TaskSpec` (spec.py): one entry of ``data.tasks`` — name, label, kind, metrics.
* :class:`TaskType` (base.py): what a kind of task is — head, loss, metrics, labels; one file
  per kind, each registered by name (registry.py). Adding a kind: a new file here with a
  ``@register_task_type`` subclass, and its import below.
"""

from peftlab.tasks.base import TaskType
from peftlab.tasks.causal_lm import CausalLMTask
from peftlab.tasks.classification import ClassificationTask
from peftlab.tasks.registry import get_task_type, register_task_type, task_type_names
from peftlab.tasks.regression import RegressionTask
from peftlab.tasks.spec import TaskSpec, parse_task_specs

__all__ = [
    "TaskType",
    "ClassificationTask",
    "RegressionTask",
    "CausalLMTask",
    "TaskSpec",
    "parse_task_specs",
    "get_task_type",
    "register_task_type",
    "task_type_names",
]
