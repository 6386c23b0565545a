"""Assemble a twin's animate dataset: its normalised video plus optional extra videos, resized to
the preset size and split into train and test frames (rules: :mod:`twinflow.animate.data`).

``python -m twinflow.animate.dataset --twin ID --video results/ID/media/video.mp4
[--extra-videos A.mp4 B.mov ...] --size 64 [--fps 25] [--split time|video]
[--test-fraction 0.2] --out results/ID/animate/dataset``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from twinflow.animate.data import write_dataset
from twinflow.cli import stage_main

log = logging.getLogger("twinflow.animate.dataset")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.animate.dataset", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--video", required=True, help="the twin's normalised video")
    p.add_argument("--extra-videos", nargs="*", default=[], help="more training videos")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--split", default="time", choices=["time", "video"])
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    index = write_dataset(
        args.out,
        args.video,
        [Path(p) for p in args.extra_videos if p],
        size=args.size,
        fps=args.fps,
        split=args.split,
        test_fraction=args.test_fraction,
        twin=args.twin,
    )
    for v in index["videos"]:
        log.info(
            "%s: %d frames, train %s, test %s (%s)",
            v["name"],
            v["frames"],
            v["train"],
            v["test"],
            v["source"],
        )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
