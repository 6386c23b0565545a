"""``python -m twinflow.report [--config C] [--results R] [--logs L] [--benchmarks B] [--out O]``

Writes the run's HTML report (:mod:`twinflow.report.build`); by default into results/report.
Reads whatever the run has produced so far: failed renders are shown as failed with their logs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from twinflow.report.build import ReportConfig, build
from twinflow.report.collect import Paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="twinflow.report", description=__doc__)
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--results", default="results")
    p.add_argument("--logs", default="logs")
    p.add_argument("--benchmarks", default="benchmarks")
    p.add_argument("--out", default=None, help="report folder (default: RESULTS/report)")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    paths = Paths(Path(args.config), Path(args.results), Path(args.logs), Path(args.benchmarks))
    out = Path(args.out) if args.out else paths.results / "report"
    build(ReportConfig(paths=paths, out=out))
    print(f"report: {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
