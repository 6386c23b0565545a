"""``python -m twinflow.convert KIND SOURCE --out OUT [options]``: see :mod:`twinflow.convert`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import twinflow.convert as package


def kinds() -> list[str]:
    """The conversion kinds present: the modules of :mod:`twinflow.convert`."""
    return sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")
    )


def main(argv: list[str] | None = None) -> int:
    from twinflow.cli import stage_main

    argv = list(sys.argv[1:] if argv is None else argv)
    available = kinds()
    if not argv or argv[0] not in available:
        p = argparse.ArgumentParser(prog="twinflow.convert", description=package.__doc__)
        p.add_argument("kind", choices=available, help="reference checkpoint format")
        p.parse_args(argv[:1] or ["--help"])  # exits with the usage and the kinds
    kind = importlib.import_module(f"twinflow.convert.{argv[0]}")

    def build_parser() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog=f"twinflow.convert {argv[0]}", description=kind.__doc__)
        p.add_argument("source", help="the reference checkpoint (file or folder)")
        p.add_argument("--out", required=True, help="the twinflow checkpoint to write")
        kind.build_parser(p)
        return p

    return stage_main(build_parser, kind.convert, argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
