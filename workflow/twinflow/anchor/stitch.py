"""Stage ``anchor_stitch``: join a render's clips (cross-fading their overlaps), add the audio.

``python -m twinflow.anchor.stitch --render ID --clips clips.json --videos blend/clip_000.mp4 ...
[--audio drive/audio.wav] --out results/renders/ID.mp4``

Where clips ``i`` and ``i + 1`` share frames, the output fades linearly from clip ``i`` to clip
``i + 1`` across the shared frames. The driving audio (when the render has one) is muxed in as
AAC, cut or padded to the video's length.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from twinflow.atomic import read_json
from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.audio import read_wav
from twinflow.media.mux import mux_audio
from twinflow.media.video import read_frames, write_video

log = logging.getLogger("twinflow.anchor.stitch")


def crossfade(clips: list[np.ndarray], bounds: list[tuple[int, int]]) -> np.ndarray:
    """Frames ``(N, H, W, 3)`` of the whole motion from per-clip frames over ``bounds``."""
    n = max(b for _, b in bounds)
    acc = np.zeros((n, *clips[0].shape[1:]), np.float64)
    weight = np.zeros(n, np.float64)
    for i, (frames, (a, b)) in enumerate(zip(clips, bounds, strict=True)):
        if len(frames) != b - a:
            raise InputError(f"clip {i} has {len(frames)} frames, expected {b - a}")
        w = np.ones(b - a)
        if i > 0 and bounds[i - 1][1] > a:  # fade in over the overlap with the previous clip
            k = bounds[i - 1][1] - a
            w[:k] = np.arange(1, k + 1) / (k + 1)
        if i + 1 < len(bounds) and bounds[i + 1][0] < b:  # fade out into the next clip
            k = b - bounds[i + 1][0]
            w[-k:] = np.minimum(w[-k:], np.arange(k, 0, -1) / (k + 1))
        acc[a:b] += frames * w[:, None, None, None]
        weight[a:b] += w
    return np.clip(acc / weight[:, None, None, None] + 0.5, 0, 255).astype(np.uint8)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.anchor.stitch", description=__doc__)
    p.add_argument("--render", required=True)
    p.add_argument("--clips", required=True, help="the render's clips.json")
    p.add_argument("--videos", nargs="+", required=True, help="clip videos, in clip order")
    p.add_argument("--audio", default=None, help="wav to mux in (optional)")
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--x264-preset", default="veryfast")
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    plan = read_json(args.clips)
    bounds = [(c["start_frame"], c["stop_frame"]) for c in plan["clips"]]
    if len(bounds) != len(args.videos):
        raise InputError(f"{len(args.videos)} clip videos for {len(bounds)} clips", path=args.clips)
    frames = crossfade([read_frames(v) for v in args.videos], bounds)
    fps = float(plan["fps"])
    if not args.audio:
        write_video(args.out, frames, fps, crf=args.crf, preset=args.x264_preset)
    else:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
            silent = Path(tmp) / "video.mp4"
            write_video(silent, frames, fps, crf=args.crf, preset=args.x264_preset)
            samples, sr = read_wav(args.audio)
            mux_audio(silent, samples, sr, out)
    log.info("%d frames from %d clips -> %s", len(frames), len(bounds), args.out)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
