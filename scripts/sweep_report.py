"""Rebuild a multirun's report (summary.csv, summary.md, summary.png) from its job directories.

python scripts/sweep_report.py logs/train/multiruns/<sweep dir>
"""

import argparse
import sys


def main() -> None:
    """Parse the command line, write the report, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", help="a multirun directory, e.g. logs/train/multiruns/2026-01-01_12-00-00_ab12cd34")
    args = parser.parse_args()
    from peftlab.reporting.sweep_report import write_sweep_report  # after parsing: --help stays instant

    try:
        paths = write_sweep_report(args.sweep_dir)
    except FileNotFoundError as exc:
        print(f"error: sweep_dir: {exc}", file=sys.stderr)
        sys.exit(2)
    print(paths["md"].read_text())


if __name__ == "__main__":
    main()
