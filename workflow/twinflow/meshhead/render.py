"""Stage ``meshhead_render``: the twin's head driven by a predicted mesh sequence (silent video).

``python -m twinflow.meshhead.render --render ID --warp warp.pt --mesh mesh.npz
--dataset dataset.npz --frames frames.npz [--source frame|photo] [--source-frame N]
[--photo photo.png --photo-face photo_face.npz] [--pose twin|neutral|video]
[--drive-pose head_pose.npz] [--size N] --out frames.mp4``

Per frame: the mesh (template + predicted displacement) is posed with the chosen head-pose
track (:mod:`twinflow.meshhead.poses`), projected into the source's head crop, and its warp
keypoints drive the generator from the source image. The video has the warp's frame size
(or ``--size``), the mesh sequence's frame rate and no audio (``meshhead_mux`` adds it).
"""

from __future__ import annotations

import argparse
import logging

import cv2
import numpy as np

from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.image import load_image
from twinflow.media.video import VideoWriter
from twinflow.meshhead.common import add_common, keypoints, load_npz, needs_face_mesh, setup_torch
from twinflow.meshhead.poses import (
    POSES,
    SOURCES,
    Source,
    frame_source,
    photo_landmarks,
    photo_source,
    pose_track,
)
from twinflow.meshhead.train_warp import WarpRunner

log = logging.getLogger("twinflow.meshhead.render")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.render", description=__doc__)
    p.add_argument("--render", required=True)
    p.add_argument("--warp", required=True)
    p.add_argument("--mesh", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--frames", required=True)
    p.add_argument("--source", choices=SOURCES, default="frame")
    p.add_argument("--source-frame", type=int, default=-1, help="-1: the dataset's default")
    p.add_argument("--photo", help="photo.png (source photo)")
    p.add_argument("--photo-face", help="photo_face.npz of the perception stage (source photo)")
    p.add_argument("--pose", choices=POSES, default="twin")
    p.add_argument("--drive-pose", help="head_pose.npz of the driving video (pose video)")
    p.add_argument("--size", type=int, default=0, help="output side in pixels (0: the warp's)")
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--x264-preset", default="veryfast")
    p.add_argument("--out", required=True)
    add_common(p)
    return p


def driving_keypoints(
    vertices: np.ndarray, source: Source, rot: np.ndarray, trans: np.ndarray, kind: str
) -> np.ndarray:
    """Warp keypoints ``(T, K, 2)`` of mesh ``vertices (T, 468, 3)`` posed by ``rot, trans``."""
    return keypoints(vertices, rot, trans, source.k, source.crop, kind)


def render_frames(
    runner: WarpRunner, source: Source, kp_d: np.ndarray, size: int = 0, batch: int = 16
):
    """Yield rendered RGB frames (resized to ``size`` when given)."""
    for frame in runner.render(source.image, source.kp, kp_d, batch):
        if size and size != frame.shape[0]:
            frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_CUBIC)
        yield frame


def load_source(args, dataset: dict, frames: dict, kind: str) -> Source:
    if args.source == "photo":
        if not args.photo or not args.photo_face:
            raise InputError("source 'photo' needs --photo and --photo-face")
        landmarks = photo_landmarks(load_npz(args.photo_face, "photo landmarks"), args.photo_face)
        return photo_source(load_image(args.photo), landmarks, dataset, frames, kind)
    return frame_source(frames, dataset, args.source_frame)


def run(args: argparse.Namespace) -> None:
    device = setup_torch(args.threads, args.device)
    dataset = load_npz(args.dataset, "mesh dataset")
    needs_face_mesh(dataset, args.dataset, "rendering the head")
    frames = load_npz(args.frames, "warp frames")
    mesh = load_npz(args.mesh, "mesh sequence")
    runner = WarpRunner(args.warp, device)
    kind = runner.meta["keypoints"]
    source = load_source(args, dataset, frames, kind)
    n = len(mesh["vertices"])
    drive = load_npz(args.drive_pose, "driving head pose") if args.drive_pose else {}
    rot, trans = pose_track(
        args.pose,
        n,
        source.rot,
        source.trans,
        dataset["R"],
        dataset["t"],
        drive.get("R"),
        drive.get("t"),
        start=source.index or 0,
    )
    kp_d = driving_keypoints(mesh["vertices"], source, rot, trans, kind)
    fps = float(mesh["fps"])
    with VideoWriter(args.out, fps, crf=args.crf, preset=args.x264_preset) as writer:
        writer.write_all(render_frames(runner, source, kp_d, args.size))
    log.info(
        "%d frames at %g fps (%.1f s), source %s, pose %s",
        n, fps, n / fps, f"frame {source.index}" if args.source == "frame" else "photo", args.pose,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
