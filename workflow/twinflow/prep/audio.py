"""Extract speech as 16 kHz mono wav from an audio file or a video's audio track.

``python -m twinflow.prep.audio --twin ID --media IN --out audio.wav [--sample-rate 16000]``
"""

from __future__ import annotations

import argparse

from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.audio import load_audio, write_wav


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.prep.audio", description=__doc__)
    p.add_argument("--twin", required=True, help="twin id (for messages)")
    p.add_argument("--render", default="", help="render id, for a driving input (for messages)")
    p.add_argument("--media", required=True, help="audio file, or a video with an audio track")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--min-seconds", type=float, default=0.1)
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    try:
        samples = load_audio(args.media, args.sample_rate)
    except InputError as err:
        if "no audio stream" in err.message:
            err.message += "; give a speech recording in the sheet's audio column"
        raise
    seconds = len(samples) / args.sample_rate
    if seconds < args.min_seconds:
        raise InputError(f"audio is only {seconds:.3f} s long", path=args.media)
    write_wav(args.out, samples, args.sample_rate)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
