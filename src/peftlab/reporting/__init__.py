"""Reporting: metrics.json, parameter counts and the run summary.

``METRICS_FILE``, ``failure_payload`` and ``write_metrics`` import nothing heavy; the parameter
counts and the summary import torch and Lightning, so they load on first use (PEP 562): the
command line can reject a bad override, or record a failure, without importing them (~10 s).
"""

from __future__ import annotations

import importlib
from typing import Any

from peftlab.reporting.metrics_file import METRICS_FILE, failure_payload, write_metrics

_LAZY = {
    "count_parameters": "peftlab.reporting.params",
    "default_prunable": "peftlab.reporting.params",
    "sharing_comparison": "peftlab.reporting.params",
    "print_summary": "peftlab.reporting.summary",
    "report_run": "peftlab.reporting.summary",
    "summary_table": "peftlab.reporting.summary",
}

__all__ = ["METRICS_FILE", "failure_payload", "write_metrics", *_LAZY]


def __getattr__(name: str) -> Any:
    """Load the torch-importing names of this package on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
