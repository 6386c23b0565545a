"""Stage ``anchor_dataset``: one clip of the twin's video as anchor training data (``.npz``).

``python -m twinflow.anchor.dataset --twin ID --clips DIR --clip clip_000 --condition COND.mp4
--face face.npz [--parsing parsing.mkv --face-labels 1,2,3] --preset tiny [--set k=v]
--holdout 0.15 --out data/clip_000.npz``

Reads the clip's frames (``DIR/clip_000.mp4``), its conditioning renders (same frame count), the
twin's face landmarks for the clip's frame range (``DIR/clips.json``), and writes the arrays of
:mod:`twinflow.anchor.data`. The face mask comes from the parsing label map when ``--parsing``
and ``--face-labels`` are given, else from the landmarks' face silhouette.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from twinflow.anchor.data import build_clip_data, holdout_start
from twinflow.anchor.presets import get_preset
from twinflow.atomic import atomic_path, read_json
from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.video import read_frames
from twinflow.presets import parse_overrides

log = logging.getLogger("twinflow.anchor.dataset")


def clip_range(clips_json: dict, clip: str) -> tuple[int, int, int]:
    """``(start, stop, total frames of the video)`` of ``clip`` in ``clips.json``."""
    entries = clips_json["clips"]
    total = max(c["stop_frame"] for c in entries)
    for c in entries:
        if c["clip"] == clip:
            return int(c["start_frame"]), int(c["stop_frame"]), int(total)
    raise InputError(f"clip {clip} not in clips.json")


def read_parsing(path: str | Path, start: int, stop: int) -> np.ndarray:
    from twinflow.perception.store import iter_masks

    out = []
    for i, labels in enumerate(iter_masks(path)):
        if i >= stop:
            break
        if i >= start:
            out.append(labels)
    return np.stack(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.anchor.dataset", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--clips", required=True, help="the split_clips folder")
    p.add_argument("--clip", required=True, help="clip name, e.g. clip_000")
    p.add_argument("--condition", required=True, help="the clip's conditioning video")
    p.add_argument("--condition-source", default="mesh", help="recorded in the data's info")
    p.add_argument("--face", required=True, help="the twin's perception face.npz")
    p.add_argument("--parsing", default=None, help="perception label maps (optional)")
    p.add_argument("--face-labels", default="", help="comma-separated face labels of --parsing")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--holdout", type=float, default=0.15, help="evaluation block fraction")
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    try:
        cfg = get_preset(args.preset, parse_overrides(args.set))
    except ValueError as err:
        raise InputError(str(err)) from None
    clips = Path(args.clips)
    start, stop, total = clip_range(read_json(clips / "clips.json"), args.clip)
    frames = read_frames(clips / f"{args.clip}.mp4")
    conditions = read_frames(args.condition)
    with np.load(args.face, allow_pickle=False) as face:
        landmarks = face["landmarks"][start:stop]
        detected = face["detected"][start:stop]
    if len(frames) != stop - start:
        raise InputError(f"clip has {len(frames)} frames, clips.json says {stop - start}")
    if len(conditions) != len(frames):
        raise InputError(
            f"{len(conditions)} conditioning frames for {len(frames)} clip frames",
            path=args.condition,
        )
    labels = tuple(int(v) for v in args.face_labels.split(",") if v.strip())
    parsing = read_parsing(args.parsing, start, stop) if args.parsing and labels else None
    arrays = build_clip_data(
        frames,
        conditions,
        landmarks,
        cfg,
        first_frame=start,
        holdout_from=holdout_start(total, args.holdout),
        parsing=parsing,
        face_labels=labels,
        face_detected=detected,
        info={
            "twin": args.twin,
            "clip": args.clip,
            "condition_source": args.condition_source,
            "holdout": args.holdout,
        },
    )
    with atomic_path(args.out, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    log.info(
        "%s: %d frames (%d held out, %d without a face), body %d px, head %d px",
        args.clip,
        len(frames),
        int(arrays["held_out"].sum()),
        int((~detected).sum()),
        cfg.body_size,
        cfg.head_size,
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
