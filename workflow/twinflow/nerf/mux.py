"""Stage ``mux``: the pasted video with the driving audio -> ``results/renders/{render}.mp4``.

``python -m twinflow.nerf.mux --render ID --video pasted.mp4 --audio audio.wav [--fps 25]
[--render-json render.json] --out final.mp4``

The picture is copied (not re-encoded); the audio (16 kHz mono wav of ``extract_driving_audio``)
is encoded as AAC and cut or padded to the video's length (:func:`twinflow.media.mux.mux_audio`).
With ``--render-json``, the audio starts where the render's time range does
(``audio_start_s``, render options ``start=`` / ``end=``).
"""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> None:
    from twinflow.errors import InputError
    from twinflow.media.audio import read_wav
    from twinflow.media.mux import mux_audio
    from twinflow.perception.store import stream_info

    fps, _ = stream_info(args.video)
    if args.fps and abs(fps - args.fps) > 1e-3:
        raise InputError(f"video is at {fps:g} fps, expected {args.fps:g}", path=args.video)
    samples, sr = read_wav(args.audio)
    if args.render_json:
        from twinflow.atomic import read_json

        start = float(read_json(args.render_json).get("audio_start_s", 0.0))
        samples = samples[int(round(start * sr)) :]
    mux_audio(args.video, samples, sr, args.out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.nerf.mux", description=__doc__)
    p.add_argument("--render", required=True, help="render id (for messages)")
    p.add_argument("--video", required=True)
    p.add_argument("--audio", required=True)
    p.add_argument("--fps", type=float, default=None, help="expected frame rate (checked)")
    p.add_argument("--render-json", default=None, help="render.json: the time range's start")
    p.add_argument("--out", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    from twinflow.cli import stage_main

    return stage_main(build_parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
