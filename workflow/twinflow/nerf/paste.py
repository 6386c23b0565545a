"""Stage ``paste``: rendered frames back into the twin's original framing.

``python -m twinflow.nerf.paste --render ID --frames render.mkv --render-json render.json
--dataset dataset.npz --video results/{twin}/media/video.mp4 --mode full|head --out pasted.mp4``

Schemes (the render's ``paste=`` option, else ``config.yaml: nerf: paste``):

``full``  the whole rendered image (head over torso over the plate) is scaled to the crop and put
          on the background plate of the full frame: every pixel is synthetic. With the ``paper``
          preset the crop is the whole frame; with ``tiny`` the frame outside the crop is plate.
``head``  only the rendered head (its opacity, slightly eroded and feathered) is composited onto
          the original frames of the twin's video, the frames whose head pose the render used
          (``frame_index`` of ``render.json``); body, hands and background stay real.

Output: H.264 video at the render's frame rate, the size of the normalised video.
"""

from __future__ import annotations

import argparse
import logging

import cv2
import numpy as np

from twinflow.errors import InputError, TwinflowError

log = logging.getLogger("twinflow.nerf.paste")
MODES = ("full", "head")


def feathered(alpha: np.ndarray, side: int) -> np.ndarray:
    """Head opacity ``(res, res) uint8`` -> ``(side, side) float32`` in [0, 1], eroded by ~1% of
    the side and blurred, so the seam falls inside the rendered head."""
    a = cv2.resize(alpha.astype(np.float32) / 255.0, (side, side), interpolation=cv2.INTER_LINEAR)
    k = max(1, int(round(side * 0.01)))
    a = cv2.erode(a, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    return cv2.GaussianBlur(a, (0, 0), sigmaX=max(0.5, 1.5 * k))


def paste_full(rgba: np.ndarray, plate: np.ndarray, crop: tuple[int, int, int]) -> np.ndarray:
    x, y, side = crop
    out = plate.copy()
    out[y : y + side, x : x + side] = cv2.resize(
        rgba[..., :3], (side, side), interpolation=cv2.INTER_CUBIC
    )
    return out


def paste_head(rgba: np.ndarray, frame: np.ndarray, crop: tuple[int, int, int]) -> np.ndarray:
    x, y, side = crop
    out = frame.copy()
    rgb = cv2.resize(rgba[..., :3], (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    a = feathered(rgba[..., 3], side)[..., None]
    region = out[y : y + side, x : x + side].astype(np.float32)
    out[y : y + side, x : x + side] = (
        (a * rgb + (1 - a) * region).round().clip(0, 255).astype(np.uint8)
    )
    return out


def run(args: argparse.Namespace) -> None:
    from twinflow.atomic import read_json
    from twinflow.media.video import VideoWriter, read_frames
    from twinflow.perception.store import iter_masks, load_npz

    if args.mode not in MODES:
        raise TwinflowError(f"paste mode '{args.mode}' is not one of {', '.join(MODES)}")
    meta = read_json(args.render_json)
    ds = load_npz(args.dataset)
    x, y, side, frame_side = (int(v) for v in meta["crop"])
    crop = (x, y, side)
    originals = None
    if args.mode == "head":
        originals = read_frames(args.video)
        if len(originals) == 0 or originals.shape[1] != frame_side:
            raise InputError(f"expected {frame_side}x{frame_side} frames", path=args.video)
    plate = ds["bg_frame"]
    index = meta["frame_index"]
    with VideoWriter(args.out, meta["fps"], crf=args.crf, preset=args.x264_preset) as writer:
        for k, rgba in enumerate(iter_masks(args.frames)):
            if args.mode == "full":
                writer.write(paste_full(rgba, plate, crop))
            else:
                writer.write(paste_head(rgba, originals[min(index[k], len(originals) - 1)], crop))
        n = writer.frames_written
    if n != meta["frames"]:
        raise TwinflowError(f"render has {n} frames, render.json says {meta['frames']}")
    log.info("%d frames pasted (%s) into %dx%d frames", n, args.mode, frame_side, frame_side)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.nerf.paste", description=__doc__)
    p.add_argument("--render", required=True, help="render id (for messages)")
    p.add_argument("--frames", required=True, help="render.mkv")
    p.add_argument("--render-json", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--video", required=True, help="the twin's normalised video")
    p.add_argument("--mode", default="full", help="full or head")
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--x264-preset", default="veryfast")
    p.add_argument("--out", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    from twinflow.cli import stage_main

    return stage_main(build_parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
