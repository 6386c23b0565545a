"""Stage ``anchor_body``: body frames of one render clip from its conditioning renders.

``python -m twinflow.anchor.body --render ID --model body.pt --condition condition/clip_000.mp4
[--seed 0] [--guidance G] [--steps N] --out body/clip_000.mp4``

The inflated model (keys and values of self-attention from all frames of a 16-frame window),
windows overlapping by 4 with per-frame averaged noise predictions at every DDIM step, the same
initial noise for every frame, classifier-free guidance on the reference tokens. Writes the clip
at the preset's body size.
"""

from __future__ import annotations

import argparse
import logging

from twinflow.anchor import runtime
from twinflow.anchor.inference import Trained, render_body
from twinflow.cli import stage_main
from twinflow.media.video import read_frames, write_video
from twinflow.models import REGISTRY

log = logging.getLogger("twinflow.anchor.body")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.anchor.body", description=__doc__)
    p.add_argument("--render", required=True, help="render id (for messages)")
    p.add_argument("--model", required=True, help="body.pt")
    p.add_argument("--condition", required=True, help="the clip's conditioning renders")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance", type=float, default=None, help="default: the preset's")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the preset's)")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--crf", type=int, default=12)
    p.add_argument("--registry", default=str(REGISTRY))
    p.add_argument("--out", required=True)
    runtime.add_args(p)
    return p


def run(args: argparse.Namespace) -> None:
    device = runtime.setup(args.device, args.threads)
    body = Trained.load(args.model, "body", args.registry, device)
    conditions = read_frames(args.condition)
    frames = render_body(
        body, conditions, seed=args.seed, guidance=args.guidance, steps=args.steps, device=device
    )
    write_video(args.out, frames, args.fps, crf=args.crf)
    log.info("%d body frames at %d px -> %s", len(frames), frames.shape[1], args.out)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
