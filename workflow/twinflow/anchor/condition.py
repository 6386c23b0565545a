"""Stage ``anchor_condition``: the conditioning images of one clip, as a video.

Make-Your-Anchor conditions every frame on a render of the fitted body mesh (SMPL-X in the paper;
face and fingers included), shaded on black, in the frame's camera. :func:`mesh_condition_frames`
is the interface the anchor models rely on: ``(T, H, W, 3) uint8`` renders of frames
``[start, stop)`` of a mocap fit (``results/{twin}/mocap/...`` or ``results/drive/{render}/mocap/...``)
through the shared renderer :mod:`twinflow.render`.

``--source standin`` draws perception skeletons instead (:mod:`twinflow.anchor.standin`): a
development and test stand-in, never the default.

``python -m twinflow.anchor.condition --twin ID --source mesh --fit person0.npz --start A
--stop B --size 512 --out condition/clip_000.mp4``
``python -m twinflow.anchor.condition --twin ID --source standin --face face.npz --body body.npz
--start A --stop B --size 512 --out condition/clip_000.mp4``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from twinflow.cli import stage_main
from twinflow.errors import InputError, TwinflowError
from twinflow.media.video import write_video

log = logging.getLogger("twinflow.anchor.condition")

SOURCES = ("mesh", "standin")


def fit_meshes(fit: str | Path, start: int, stop: int):
    """Per-frame meshes of a mocap fit: ``(vertices (T, V, 3), faces (F, 3), K (3, 3),
    (width, height))`` in OpenCV camera coordinates, for frames ``[start, stop)``.

    The wiring point to the mocap pipeline: the body model evaluated at the fitted parameters.
    """
    try:
        from twinflow.mocap.mesh import fit_vertices  # provided by the mocap pipeline
    except ImportError as err:
        raise TwinflowError(
            "the mocap pipeline does not provide fitted meshes yet "
            "(twinflow.mocap.mesh.fit_vertices); use --source standin for development",
            path=fit,
        ) from err
    return fit_vertices(fit, start, stop)


def mesh_condition_frames(
    fit: str | Path,
    start: int,
    stop: int,
    size: int,
    color: tuple[float, float, float] | None = None,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Renders of the fitted body mesh (shaded in ``color``, on ``background``; default: the
    renderer's colour on black) for frames ``[start, stop)`` of the mocap fit ``fit``:
    ``(T, size, size, 3) uint8``."""
    import cv2

    from twinflow.render import MeshRenderer
    from twinflow.render.mesh import DEFAULT_COLOR

    color = tuple(color) if color is not None else DEFAULT_COLOR
    bg = np.asarray(background, np.float32) * 255.0

    vertices, faces, K, (width, height) = fit_meshes(fit, start, stop)
    renderer = MeshRenderer(int(width), int(height))
    frames = []
    try:
        for v in vertices:
            rgba, _ = renderer.render(v, faces, K, color=color)
            rgb = rgba[..., :3]
            if bg.any():  # composite over the background colour
                alpha = rgba[..., 3:].astype(np.float32) / 255.0
                rgb = (rgb * alpha + bg * (1 - alpha)).round().astype(np.uint8)
            if rgb.shape[:2] != (size, size):
                rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
            frames.append(rgb)
    finally:
        close = getattr(renderer, "close", None)
        if close:
            close()
    return np.stack(frames)


def standin_condition_frames(
    face: str | Path, body: str | Path, start: int, stop: int, size: int, source_size: int
) -> np.ndarray:
    """DEVELOPMENT STAND-IN: perception skeletons of frames ``[start, stop)``."""
    from twinflow.anchor.standin import skeleton_frames

    arrays = {}
    for path, keys in ((face, ("landmarks",)), (body, ("pose", "hands"))):
        path = Path(path)
        if not path.exists():
            raise InputError("file not found", path=path)
        with np.load(path, allow_pickle=False) as data:
            for k in keys:
                arrays[k] = data[k][start:stop]
    if len(arrays["landmarks"]) != stop - start:
        raise InputError(
            f"face landmarks cover {len(arrays['landmarks'])} of frames {start}-{stop}", path=face
        )
    return skeleton_frames(size, source_size, arrays["pose"], arrays["hands"], arrays["landmarks"])


def _rgb(text: str) -> tuple[float, float, float]:
    try:
        r, g, b = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"a colour is r,g,b with values in [0, 1], got {text!r}") from None
    return r, g, b


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.anchor.condition", description=__doc__)
    p.add_argument("--twin", required=True, help="twin or render id (for messages)")
    p.add_argument("--source", choices=SOURCES, default="mesh")
    p.add_argument("--fit", help="mocap fit (.npz) [mesh]")
    p.add_argument("--face", help="perception face.npz [standin]")
    p.add_argument("--body", help="perception body.npz [standin]")
    p.add_argument("--start", type=int, required=True, help="first frame")
    p.add_argument("--stop", type=int, required=True, help="frame after the last")
    p.add_argument("--size", type=int, default=512, help="side of the renders (the video's)")
    p.add_argument("--color", default=None, help="mesh colour r,g,b in [0, 1] [mesh]")
    p.add_argument("--background", default="0,0,0", help="background r,g,b in [0, 1] [mesh]")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    if args.source == "mesh":
        if not args.fit:
            raise InputError("--source mesh needs --fit")
        color = _rgb(args.color) if args.color else None
        frames = mesh_condition_frames(
            args.fit, args.start, args.stop, args.size, color, _rgb(args.background)
        )
    else:
        if not (args.face and args.body):
            raise InputError("--source standin needs --face and --body")
        log.warning("conditioning with the DEVELOPMENT STAND-IN (skeletons), not mesh renders")
        frames = standin_condition_frames(
            args.face, args.body, args.start, args.stop, args.size, args.size
        )
    n = write_video(args.out, frames, args.fps, crf=args.crf)
    log.info("%d conditioning frames (%s) -> %s", n, args.source, args.out)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
