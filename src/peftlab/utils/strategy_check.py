"""Refuse Lightning distribution strategies that start their worker processes from inside ``fit``.

``ddp_spawn`` / ``ddp_fork`` / ``ddp_notebook`` train in child processes and hand only the
weights and logged metrics back to the main process. Everything else a run reports lives in
the children and is lost: the test metrics and pruning history behind ``metrics.json``, the step
timer, the logger's state (Lightning's CSVLogger then fails at test time with "dict contains
fields not in fieldnames"). ``ddp`` starts every rank as a full copy of the command instead, so
each rank reports what it trained; it is what peftlab supports (``trainer=ddp`` on GPUs,
``trainer=ddp_sim`` for CPU processes).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from peftlab.errors import ConfigError

IN_PROCESS_LAUNCHERS = ("spawn", "fork", "notebook", "forkserver")


def check_distribution_strategy(cfg: DictConfig) -> None:
    """ConfigError naming ``trainer.strategy`` for a strategy that spawns or forks its ranks."""
    strategy: Any = cfg.trainer.get("strategy")
    if isinstance(strategy, str):
        bad = any(word in strategy for word in IN_PROCESS_LAUNCHERS)
    elif isinstance(strategy, (dict, DictConfig)):
        bad = str(strategy.get("start_method", "popen")) in IN_PROCESS_LAUNCHERS
        strategy = f"{strategy.get('_target_', 'strategy')}(start_method={strategy.get('start_method')})"
    else:
        return
    if bad:
        raise ConfigError(
            "trainer.strategy",
            f"{strategy} starts its ranks inside the running process, and what they report (test metrics, pruning, timing, "
            "loggers) does not come back; use trainer.strategy=ddp (trainer=ddp on GPUs, trainer=ddp_sim for CPU processes)",
        )
