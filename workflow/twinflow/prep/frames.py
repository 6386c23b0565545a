"""Write every frame of a normalised video as numbered PNG files (000000.png, ...).

``python -m twinflow.prep.frames --twin ID --video video.mp4 --out DIR``
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from tqdm import tqdm

from twinflow.cli import stage_main
from twinflow.media.image import save_image
from twinflow.media.video import iter_frames, probe_video


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.prep.frames", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--out", required=True, help="output folder")
    return p


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    total = probe_video(args.video).n_frames
    for i, rgb in enumerate(tqdm(iter_frames(args.video), total=total, desc="frames")):
        save_image(tmp / f"{i:06d}.png", rgb)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
