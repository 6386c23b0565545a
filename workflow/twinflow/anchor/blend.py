"""Stage ``anchor_blend``: paste a clip's regenerated heads into its body frames.

``python -m twinflow.anchor.blend --render ID --body body/clip_000.mp4 --heads head/clip_000.npz
--out blend/clip_000.mp4``

Each head crop is warped back with the inverse of its alignment transform and mixed in with its
feathered face mask.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from twinflow.anchor.inference import Heads, blend_heads
from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.video import read_frames, write_video

log = logging.getLogger("twinflow.anchor.blend")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.anchor.blend", description=__doc__)
    p.add_argument("--render", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--heads", required=True)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--crf", type=int, default=12)
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    body = read_frames(args.body)
    with np.load(args.heads, allow_pickle=False) as data:
        heads = Heads(crops=data["crops"], matrices=data["matrices"], alpha=data["alpha"])
    if len(heads.crops) != len(body):
        raise InputError(f"{len(heads.crops)} heads for {len(body)} body frames", path=args.heads)
    frames = blend_heads(body, heads)
    write_video(args.out, frames, args.fps, crf=args.crf)
    log.info("%d frames -> %s", len(frames), args.out)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
