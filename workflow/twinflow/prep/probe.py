"""Probe a video and validate it: decodable, has frames, frame rate, duration, size.

``python -m twinflow.prep.probe --twin ID --video IN --out probe.json``
"""

from __future__ import annotations

import argparse

from twinflow.atomic import write_json
from twinflow.cli import stage_main
from twinflow.media.video import probe_video


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.prep.probe", description=__doc__)
    p.add_argument("--twin", required=True, help="twin id (for messages)")
    p.add_argument("--render", default="", help="render id, for a driving input (for messages)")
    p.add_argument("--video", required=True)
    p.add_argument("--min-frames", type=int, default=1)
    p.add_argument("--out", required=True, help="probe JSON")
    return p


def run(args: argparse.Namespace) -> None:
    info = probe_video(args.video, min_frames=args.min_frames)
    write_json(args.out, info.to_dict())


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
