"""Stage ``mocap_preview``: the fitted body mesh drawn over the video it was fitted to.

``python -m twinflow.mocap.preview --twin ID --fit person0.npz --video video.mp4 --out
preview.mp4 [--smplx-model FILE] [--opacity 0.7] [--side-by-side]``

Each frame shows the shaded mesh (face and fingers included) with ``--opacity`` over the frame;
``--side-by-side`` puts the mesh on black next to the frame instead. Rendering is headless
(:mod:`twinflow.render`: moderngl on EGL); without EGL the stage fails with the packages to
install.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch
from tqdm import tqdm

from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.video import VideoWriter, iter_frames
from twinflow.mocap.body_models import BodyModel, load_body_model
from twinflow.mocap.common import load_npz, npz_info, set_threads
from twinflow.render import MeshRenderer, composite

log = logging.getLogger("twinflow.mocap.preview")


def body_for_fit(
    data: dict, smplx_model: str | None = None, registry: str | None = None
) -> BodyModel:
    """The backend a fit was made with (its ``backend`` key)."""
    backend = str(data["backend"])
    if backend == "smplx" and smplx_model is None:
        smplx_model = npz_info(data).get("smplx_model")
    return load_body_model(
        backend,
        smplx_model=smplx_model,
        registry=registry,
        gender=str(data.get("gender", "neutral")),
    )


def fitted_vertices(body: BodyModel, data: dict, chunk: int = 16):
    """Yield ``(V, 3)`` camera-space vertices of every frame of a fit."""
    params = body.params_from_npz(data)
    n = len(params["pose"])
    for s in range(0, n, chunk):
        expr = params["expression"]
        verts = body.vertices(
            params["pose"][s : s + chunk],
            params["transl"][s : s + chunk],
            params["shape"],
            None if expr is None else expr[s : s + chunk],
        )
        yield from verts.cpu().numpy()


def render_preview(
    data: dict,
    body: BodyModel,
    video: str,
    out: str,
    *,
    opacity: float = 0.7,
    side_by_side: bool = False,
    crf: int = 20,
) -> int:
    K = np.asarray(data["camera_K"], np.float64)
    width, height = (int(v) for v in data["image_size"])
    fps = float(data["fps"])
    frames = iter_frames(video)
    n = len(data["trans"])
    written = 0
    with MeshRenderer(width, height) as renderer, VideoWriter(out, fps, crf=crf) as writer:
        log.info("rendering with %s", renderer.backend)
        for verts in tqdm(fitted_vertices(body, data), total=n, desc="preview", mininterval=2.0):
            frame = next(frames, None)
            if frame is None:
                break
            if frame.shape[:2] != (height, width):
                raise InputError(
                    f"video frames are {frame.shape[1]}x{frame.shape[0]}, the fit was made on "
                    f"{width}x{height}",
                    path=video,
                )
            rgba, _ = renderer.render(verts, body.faces, K)
            if side_by_side:
                black = np.zeros_like(frame)
                image = np.concatenate([frame, composite(black, rgba)], axis=1)
            else:
                image = composite(frame, rgba, opacity)
            writer.write(image)
            written += 1
    return written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.mocap.preview", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--fit", required=True, help="{person}.npz of twinflow.mocap.fit")
    p.add_argument("--video", required=True, help="the normalised video it was fitted to")
    p.add_argument("--out", required=True)
    p.add_argument("--smplx-model", default=None)
    p.add_argument("--registry", default=None)
    p.add_argument("--opacity", type=float, default=0.7)
    p.add_argument("--side-by-side", action="store_true")
    p.add_argument("--crf", type=int, default=20)
    p.add_argument("--threads", type=int, default=0)
    return p


def run(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    data = load_npz(args.fit)
    body = body_for_fit(data, args.smplx_model or None, args.registry)
    with torch.no_grad():
        n = render_preview(
            data,
            body,
            args.video,
            args.out,
            opacity=args.opacity,
            side_by_side=args.side_by_side,
            crf=args.crf,
        )
    log.info("%s: %d frames", args.out, n)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
