"""Normalise a video: constant frame rate, crop, square working size, H.264.

``python -m twinflow.prep.normalise --twin ID --video IN --probe probe.json --out video.mp4
--meta meta.json [--crop x,y[,w,h]] [--fps 25] [--size 512]``
"""

from __future__ import annotations

import argparse

from tqdm import tqdm

from twinflow.atomic import read_json, write_json
from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.image import crop_box, fit_to_size
from twinflow.media.video import VideoWriter, constant_rate, iter_frames_timed


def parse_crop(text: str | None) -> tuple[int, ...] | None:
    return tuple(int(v) for v in text.split(",")) if text else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.prep.normalise", description=__doc__)
    p.add_argument("--twin", required=True, help="twin id (for messages)")
    p.add_argument("--render", default="", help="render id, for a driving input (for messages)")
    p.add_argument("--video", required=True)
    p.add_argument("--probe", required=True)
    p.add_argument("--crop", default="", help="x,y,w,h or x,y (reference corner); default centre")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--x264-preset", default="veryfast")
    p.add_argument("--out", required=True)
    p.add_argument("--meta", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    info = read_json(args.probe)
    width, height = info["width"], info["height"]
    if info["rotation"] in (90, 270, -90, -270):
        width, height = height, width
    try:
        box = crop_box(width, height, parse_crop(args.crop))
    except ValueError as err:
        raise InputError(str(err), path=args.video) from err
    count = max(1, round(info["duration"] * args.fps))
    frames = constant_rate(iter_frames_timed(args.video), args.fps, count)
    with VideoWriter(args.out, args.fps, crf=args.crf, preset=args.x264_preset) as writer:
        for rgb in tqdm(frames, total=count, desc=f"normalise {args.twin}", unit="frame"):
            writer.write(fit_to_size(rgb, box, args.size))
    write_json(
        args.meta,
        {
            "twin": args.twin,
            "source": info,
            "crop_xywh": list(box),
            "fps": args.fps,
            "size": [args.size, args.size],
            "n_frames": writer.frames_written,
            "duration": writer.frames_written / args.fps,
            "codec": "h264",
            "crf": args.crf,
            "steps": [
                f"decoded {info['n_frames']} frames at {info['fps']:.3f} fps",
                f"resampled to constant {args.fps:g} fps ({writer.frames_written} frames)",
                f"cropped to x,y,w,h={','.join(map(str, box))}",
                f"resized to {args.size}x{args.size}",
                f"encoded H.264 yuv420p crf {args.crf}",
            ],
        },
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
