"""Stage ``paste``: rendered frames back into the twin's original framing.

``python -m twinflow.nerf.paste --render ID --frames render.mkv --render-json render.json
--dataset dataset.npz --video results/{twin}/media/video.mp4 --mode full|head|face|face_neck
[--parsing parsing.mkv] [--resolution normalised|original --meta meta.json --source VIDEO]
--out pasted.mp4``

Schemes (the render's ``paste=`` option, else ``config.yaml: nerf: paste``); the seed wrapper's
three (head box, face area, face + neck parsing masks) and the whole image:

``full``       the whole rendered image (head over torso over the plate) is scaled to the crop
               and put on the background plate of the full frame: every pixel is synthetic.
               With the ``paper`` preset the crop is the whole frame; with ``tiny`` the frame
               outside the crop is plate.
``head``       only the rendered head (its opacity, slightly eroded and feathered) is composited
               onto the original frames of the twin's video, the frames whose head pose the
               render used (``frame_index`` of ``render.json``); body, hands and background stay
               real.
``face``       the rendered image inside the face area of that original frame's parsing
               (perception's ``parsing.mkv``: skin, brows, eyes, lips, mouth), eroded and
               feathered like ``head``: hair, ears, neck and everything else stay real.
``face_neck``  the same with the parsing's neck added (the jaw line and the throat rendered).

``face`` and ``face_neck`` need the twin's perception parsing (not made for an imported model).

Output: H.264 video at the render's frame rate, the size of the normalised video
(``--resolution normalised``), or (``original``) the size of the twin's source video: the
normalised frame (a square crop ``crop_xywh`` of the source, padded to a square when not
square, resized to ``size``; ``results/{twin}/media/meta.json``) is mapped back through that
transform onto the source frame the normalised frame came from (the source resampled to the
normalised frame rate as :mod:`twinflow.prep.normalise` does), at its position; outside the crop
the source stays as it is (with ``full`` too). An odd source width or height loses its last
column or row (H.264 yuv420p).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import cv2
import numpy as np

from twinflow.errors import InputError, TwinflowError

log = logging.getLogger("twinflow.nerf.paste")
MODES = ("full", "head", "face", "face_neck")
RESOLUTIONS = ("normalised", "original")


def parsing_labels(mode: str) -> tuple[int, ...]:
    """Perception parsing labels of the ``face`` / ``face_neck`` masks."""
    from twinflow.perception.parsing import BROWS, EYES, LIPS, MOUTH, NECK, SKIN

    face = (SKIN, BROWS, EYES, LIPS, MOUTH)
    return face + (NECK,) if mode == "face_neck" else face


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


def crop_alpha(
    rgba: np.ndarray, crop: tuple[int, int, int], mode: str, labels: np.ndarray | None = None
) -> np.ndarray:
    """The paste mask ``(side, side) float32`` inside the crop: the feathered head opacity
    (``head``) or the feathered parsing mask of ``labels (H, W)`` (``face``, ``face_neck``)."""
    x, y, side = crop
    if mode == "head":
        return feathered(rgba[..., 3], side)
    if labels is None:
        raise ValueError(f"paste '{mode}' needs the parsing labels")
    mask = np.isin(labels[y : y + side, x : x + side], parsing_labels(mode))
    return feathered(mask.astype(np.uint8) * 255, side)


def paste_masked(
    rgba: np.ndarray, frame: np.ndarray, crop: tuple[int, int, int], a: np.ndarray
) -> np.ndarray:
    """The rendered image, scaled to the crop, over ``frame`` with the mask ``a (side, side)``."""
    x, y, side = crop
    out = frame.copy()
    rgb = cv2.resize(rgba[..., :3], (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    a = a[..., None]
    region = out[y : y + side, x : x + side].astype(np.float32)
    out[y : y + side, x : x + side] = (
        (a * rgb + (1 - a) * region).round().clip(0, 255).astype(np.uint8)
    )
    return out


def paste_head(rgba: np.ndarray, frame: np.ndarray, crop: tuple[int, int, int]) -> np.ndarray:
    return paste_masked(rgba, frame, crop, crop_alpha(rgba, crop, "head"))


def normalised_layer(
    rgba: np.ndarray,
    crop: tuple[int, int, int],
    size: int,
    mode: str,
    plate: np.ndarray,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """What a scheme puts on the ``size x size`` normalised frame: ``rgb (size, size, 3) uint8``
    and its opacity ``(size, size) float32`` (``full``: the whole frame, opaque)."""
    if mode == "full":
        return paste_full(rgba, plate, crop), np.ones((size, size), np.float32)
    x, y, side = crop
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[y : y + side, x : x + side] = cv2.resize(
        rgba[..., :3], (side, side), interpolation=cv2.INTER_CUBIC
    )
    a = np.zeros((size, size), np.float32)
    a[y : y + side, x : x + side] = crop_alpha(rgba, crop, mode, labels)
    return rgb, a


def to_source(
    rgb: np.ndarray, a: np.ndarray, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Invert :func:`twinflow.media.image.fit_to_size` on a normalised ``(S, S)`` layer: back to
    the source box ``(x, y, w, h)`` -> ``rgb (h, w, 3) uint8``, ``a (h, w) float32``."""
    _, _, w, h = box
    side = max(w, h)
    up = cv2.INTER_CUBIC if side > rgb.shape[0] else cv2.INTER_AREA
    rgb = cv2.resize(rgb, (side, side), interpolation=up)
    a = cv2.resize(a, (side, side), interpolation=cv2.INTER_LINEAR)
    top, left = (side - h) // 2, (side - w) // 2
    return rgb[top : top + h, left : left + w], a[top : top + h, left : left + w]


def paste_source(
    rgb: np.ndarray, a: np.ndarray, source: np.ndarray, box: tuple[int, int, int, int]
) -> np.ndarray:
    """A normalised layer (:func:`normalised_layer`) over a source frame, at the crop's place."""
    x, y, w, h = box
    rgb, a = to_source(rgb, a, box)
    out = source.copy()
    region = out[y : y + h, x : x + w].astype(np.float32)
    a = a[..., None]
    out[y : y + h, x : x + w] = (
        (a * rgb.astype(np.float32) + (1 - a) * region).round().clip(0, 255).astype(np.uint8)
    )
    return out


class SourceFrames:
    """The twin's source video resampled to the normalised video's frames (as
    :mod:`twinflow.prep.normalise`: same rate and count), decoded once into a memory-mapped file
    in ``workdir``, read by index."""

    def __init__(self, video: str | Path, meta: dict, workdir: str | Path):
        from twinflow.media.video import constant_rate, iter_frames_timed

        n = int(meta["n_frames"])
        frames = constant_rate(iter_frames_timed(video), float(meta["fps"]), n)
        self.tmp = tempfile.TemporaryDirectory(dir=workdir, prefix=".source_frames_")
        self.frames = None
        count = 0
        for k, rgb in enumerate(frames):
            if self.frames is None:
                self.frames = np.lib.format.open_memmap(
                    Path(self.tmp.name) / "frames.npy", "w+", np.uint8, (n, *rgb.shape)
                )
            self.frames[k] = rgb
            count += 1
        if count != n:
            raise InputError(f"expected {n} frames (meta.json), decoded {count}", path=video)

    def __getitem__(self, k: int) -> np.ndarray:
        return np.asarray(self.frames[k])

    def close(self) -> None:
        self.frames = None
        self.tmp.cleanup()


def run(args: argparse.Namespace) -> None:
    from twinflow.atomic import read_json
    from twinflow.media.video import VideoWriter, read_frames
    from twinflow.perception.store import iter_masks, load_npz

    if args.mode not in MODES:
        raise TwinflowError(f"paste mode '{args.mode}' is not one of {', '.join(MODES)}")
    if args.resolution not in RESOLUTIONS:
        raise TwinflowError(f"resolution '{args.resolution}' is not one of {RESOLUTIONS}")
    meta = read_json(args.render_json)
    ds = load_npz(args.dataset)
    x, y, side, frame_side = (int(v) for v in meta["crop"])
    crop = (x, y, side)
    index = meta["frame_index"]
    originals = labels = source = None
    if args.mode != "full" and args.resolution == "normalised":
        originals = read_frames(args.video)
        if len(originals) == 0 or originals.shape[1] != frame_side:
            raise InputError(f"expected {frame_side}x{frame_side} frames", path=args.video)
    if args.mode in ("face", "face_neck"):
        if not args.parsing:
            raise TwinflowError(f"paste '{args.mode}' needs --parsing (perception parsing.mkv)")
        labels = np.stack(list(iter_masks(args.parsing)))
        if labels.shape[1:] != (frame_side, frame_side):
            raise InputError(f"expected {frame_side}x{frame_side} label maps", path=args.parsing)
    if args.resolution == "original":
        if not (args.meta and args.source):
            raise TwinflowError("resolution 'original' needs --meta (meta.json) and --source")
        media = read_json(args.meta)
        box = tuple(int(v) for v in media["crop_xywh"])
        if int(media["size"][0]) != frame_side:
            raise InputError(f"normalised size {media['size']} is not {frame_side}", path=args.meta)
        source = SourceFrames(args.source, media, Path(args.out).parent)
    plate = ds["bg_frame"]
    try:
        with VideoWriter(args.out, meta["fps"], crf=args.crf, preset=args.x264_preset) as writer:
            for k, rgba in enumerate(iter_masks(args.frames)):
                j = index[k]
                lab = None if labels is None else labels[min(j, len(labels) - 1)]
                if source is not None:
                    rgb, a = normalised_layer(rgba, crop, frame_side, args.mode, plate, lab)
                    frame = paste_source(rgb, a, source[min(j, len(source.frames) - 1)], box)
                    h, w = frame.shape[:2]
                    writer.write(frame[: h - h % 2, : w - w % 2])
                elif args.mode == "full":
                    writer.write(paste_full(rgba, plate, crop))
                else:
                    frame = originals[min(j, len(originals) - 1)]
                    a = crop_alpha(rgba, crop, args.mode, lab)
                    writer.write(paste_masked(rgba, frame, crop, a))
            n = writer.frames_written
    finally:
        if source is not None:
            source.close()
    if n != meta["frames"]:
        raise TwinflowError(f"render has {n} frames, render.json says {meta['frames']}")
    log.info("%d frames pasted (%s, %s resolution)", n, args.mode, args.resolution)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.nerf.paste", description=__doc__)
    p.add_argument("--render", required=True, help="render id (for messages)")
    p.add_argument("--frames", required=True, help="render.mkv")
    p.add_argument("--render-json", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--video", required=True, help="the twin's normalised video")
    p.add_argument("--mode", default="full", help=", ".join(MODES))
    p.add_argument("--parsing", default=None, help="perception parsing.mkv (face, face_neck)")
    p.add_argument("--resolution", default="normalised", help=", ".join(RESOLUTIONS))
    p.add_argument("--meta", default=None, help="the twin's media/meta.json (original)")
    p.add_argument("--source", default=None, help="the twin's source video (original)")
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--x264-preset", default="veryfast")
    p.add_argument("--out", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    from twinflow.cli import stage_main

    return stage_main(build_parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
