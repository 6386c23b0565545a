"""Split a normalised video into fixed-length clips (Make-Your-Anchor works on 10 s clips).

Clip ``i`` covers frames ``[i * n, (i + 1) * n)`` with ``n = seconds * fps``; a tail shorter than
``min_seconds`` joins the last clip. Writes ``clip_000.mp4, ...`` and ``clips.json`` into a folder.

``python -m twinflow.prep.clips --twin ID --video video.mp4 --seconds 10 --out DIR``
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from twinflow.atomic import write_json
from twinflow.cli import stage_main
from twinflow.media.video import VideoWriter, iter_frames, probe_video


def clip_bounds(n_frames: int, fps: float, seconds: float, min_seconds: float) -> list[tuple]:
    """Frame ranges ``[(start, stop), ...]`` covering ``n_frames`` in clips of ``seconds``."""
    size = max(1, round(seconds * fps))
    bounds = [(s, min(s + size, n_frames)) for s in range(0, n_frames, size)]
    if len(bounds) > 1 and (bounds[-1][1] - bounds[-1][0]) < min_seconds * fps:
        tail = bounds.pop()
        bounds[-1] = (bounds[-1][0], tail[1])
    return bounds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.prep.clips", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--min-seconds", type=float, default=2.0)
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--out", required=True, help="output folder")
    return p


def run(args: argparse.Namespace) -> None:
    info = probe_video(args.video)
    bounds = clip_bounds(info.n_frames, info.fps, args.seconds, args.min_seconds)
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    frames = iter_frames(args.video)
    for index, (start, stop) in enumerate(bounds):
        with VideoWriter(tmp / f"clip_{index:03d}.mp4", info.fps, crf=args.crf) as writer:
            for _ in range(stop - start):
                writer.write(next(frames))
    write_json(
        tmp / "clips.json",
        {
            "twin": args.twin,
            "fps": info.fps,
            "clips": [
                {"clip": f"clip_{i:03d}", "start_frame": a, "stop_frame": b}
                for i, (a, b) in enumerate(bounds)
            ],
        },
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
