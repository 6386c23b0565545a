"""Stage ``mocap_render``: a mocap render's video (``results/renders/{render}.mp4``) is the
preview of its fit, copied atomically.

``python -m twinflow.mocap.publish --render ID --preview preview.mp4 --out renders/ID.mp4``
"""

from __future__ import annotations

import argparse
import shutil

from twinflow.atomic import atomic_path
from twinflow.cli import stage_main
from twinflow.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.mocap.publish", description=__doc__)
    p.add_argument("--render", required=True)
    p.add_argument("--preview", required=True)
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    try:
        with atomic_path(args.out) as tmp:
            shutil.copyfile(args.preview, tmp)
    except FileNotFoundError as err:
        raise InputError("preview video not found", path=args.preview) from err


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
