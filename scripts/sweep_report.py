"""Rebuild a multirun's report: `python scripts/sweep_report.py logs/train/multiruns/<sweep dir>`."""

import sys

from peftlab.reporting.sweep_report import write_sweep_report

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/sweep_report.py <sweep dir>")
    try:
        paths = write_sweep_report(sys.argv[1])
    except FileNotFoundError as exc:
        sys.exit(f"error: sweep dir: {exc}")
    print(paths["md"].read_text())
