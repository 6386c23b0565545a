"""Fit the twin's photo to the working size (square; portrait photos keep their upper part).

``python -m twinflow.prep.photo --twin ID --photo IN --size 512 --out photo.png``
"""

from __future__ import annotations

import argparse

from twinflow.cli import stage_main
from twinflow.media.image import fit_to_size, load_image, save_image


def photo_box(width: int, height: int) -> tuple[int, int, int, int]:
    """A square box; for portrait images it sits a quarter of the way down (heads are high)."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 4, side, side


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.prep.photo", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--photo", required=True)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    rgb = load_image(args.photo)
    save_image(args.out, fit_to_size(rgb, photo_box(rgb.shape[1], rgb.shape[0]), args.size))


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
