"""Stage ``anchor_clips`` (a checkpoint): split a render's driving motion into overlapping clips.

``python -m twinflow.anchor.clips --render ID --video VIDEO.mp4 --seconds 10 --overlap 8
[--max-seconds S] --out clips.json``

Clip ``i`` covers frames ``[start, stop)`` of the driving motion (the driving video, or the twin's
own video when the render has none); neighbours share ``overlap`` frames, which the stitch stage
cross-fades. A tail of fewer than ``length // 5`` new frames joins the last clip. ``clips.json``:
``{"render", "fps", "n_frames", "overlap", "clips": [{"clip": "clip_000", "start_frame",
"stop_frame"}, ...]}``. ``--max-seconds`` keeps only the beginning of the motion (demo runs).
"""

from __future__ import annotations

import argparse
import logging

from twinflow.atomic import write_json
from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.video import probe_video

log = logging.getLogger("twinflow.anchor.clips")


def overlapping_clips(
    n_frames: int, length: int, overlap: int, min_new: int | None = None
) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` clips of ``length`` frames covering ``n_frames``; neighbours share
    ``overlap`` frames; a tail that would add fewer than ``min_new`` new frames (default
    ``length // 5``, 2 s of a 10 s clip) extends the last clip instead."""
    if n_frames <= 0:
        return []
    if not 0 <= overlap < length:
        raise ValueError(f"overlap ({overlap}) must be in [0, clip length {length})")
    min_new = max(1, length // 5) if min_new is None else min_new
    out = [(0, min(length, n_frames))]
    while out[-1][1] < n_frames:
        if n_frames - out[-1][1] < min_new:
            out[-1] = (out[-1][0], n_frames)
            break
        start = out[-1][1] - overlap
        out.append((start, min(start + length, n_frames)))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.anchor.clips", description=__doc__)
    p.add_argument("--render", required=True)
    p.add_argument("--video", required=True, help="the driving motion's normalised video")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--overlap", type=int, default=8, help="frames shared by neighbours")
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    info = probe_video(args.video)
    n = info.n_frames
    if args.max_seconds:
        n = min(n, max(1, int(round(args.max_seconds * info.fps))))
    length = max(args.overlap + 2, int(round(args.seconds * info.fps)))
    bounds = overlapping_clips(n, length, args.overlap)
    if not bounds:
        raise InputError("driving motion has no frames", path=args.video)
    write_json(
        args.out,
        {
            "render": args.render,
            "video": str(args.video),
            "fps": info.fps,
            "n_frames": n,
            "overlap": args.overlap,
            "clips": [
                {"clip": f"clip_{i:03d}", "start_frame": a, "stop_frame": b}
                for i, (a, b) in enumerate(bounds)
            ],
        },
    )
    log.info("%d frames -> %d clips of up to %d frames", n, len(bounds), length)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
