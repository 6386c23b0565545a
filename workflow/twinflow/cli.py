"""The one entry-point harness every ``python -m twinflow.<stage>`` module uses.

It sets up logging to stderr (the rule's ``log:`` file), runs the stage, and turns a
:class:`~twinflow.errors.TwinflowError` into one readable line and exit code 1, so that Snakemake
shows the twin and file that failed and ``--keep-going`` carries on with the other twins.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence

from twinflow.errors import TwinflowError

log = logging.getLogger("twinflow")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


def stage_main(
    build_parser: Callable[[], argparse.ArgumentParser],
    run: Callable[[argparse.Namespace], None],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse arguments, run the stage, report errors; returns the process exit code.

    The parser should define ``--twin`` when the stage works on one twin (and ``--render`` when
    on a render's driving input), so errors raised without that context still name them.
    """
    parser = build_parser()
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    name = parser.prog
    start = time.perf_counter()
    try:
        run(args)
    except TwinflowError as err:
        err.with_context(twin=getattr(args, "twin", None), render=getattr(args, "render", None))
        print(f"twinflow error: {err}", file=sys.stderr)
        return 1
    log.info("%s done in %.1f s", name, time.perf_counter() - start)
    return 0
