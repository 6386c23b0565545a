"""Stage ``meshhead_mux``: the rendered frames with the driving audio -> the final video.

``python -m twinflow.meshhead.mux --render ID --video frames.mp4 --audio audio.wav --out R.mp4``
(picture copied without re-encoding, audio as AAC, cut or padded to the picture's length).
"""

from __future__ import annotations

import argparse

from twinflow.cli import stage_main
from twinflow.media.audio import read_wav
from twinflow.media.mux import mux_audio


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.mux", description=__doc__)
    p.add_argument("--render", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--audio", required=True)
    p.add_argument(
        "--trim-to-video",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="cut or pad the audio to the picture's length",
    )
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    samples, sr = read_wav(args.audio)
    mux_audio(args.video, samples, sr, args.out, trim_to_video=args.trim_to_video)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
