"""Reporting: metrics.json, parameter counts and the run summary."""

from peftlab.reporting.metrics_file import METRICS_FILE, failure_payload, write_metrics
from peftlab.reporting.params import count_parameters, default_prunable, sharing_comparison
from peftlab.reporting.summary import print_summary, report_run, summary_table

__all__ = [
    "METRICS_FILE", "failure_payload", "write_metrics", "count_parameters", "default_prunable",
    "sharing_comparison", "print_summary", "report_run", "summary_table",
]
