"""Stage ``meshhead_render``: the twin's head driven by a predicted mesh sequence (silent video).

``python -m twinflow.meshhead.render --render ID --warp warp.pt --mesh mesh.npz
--dataset dataset.npz --frames frames.npz [--source frame|photo] [--source-frame N]
[--photo photo.png --photo-face photo_face.npz] [--pose twin|neutral|video]
[--drive-pose head_pose.npz] [--relative source|first|best|off] [--adapt-scale]
[--yaw D] [--pitch D] [--roll D] [--size N] --out frames.mp4``

Per frame: the head-pose track (:mod:`twinflow.meshhead.poses`) and the predicted pose-free mesh
go through the twin's mesh driver (:class:`twinflow.meshhead.driving.MeshDriver`) to face-vid2vid's
angles, translation and expression; free-view offsets ``--yaw/--pitch/--roll`` (degrees) are
added to the angles; the source's canonical keypoints moved by them drive the generator,
relative to ``--relative`` (default ``source``: the source's own mesh and pose; ``first``: the
first frame, ``best``: the frame whose projected landmarks best match the source's, as the
reference's ``--relative [--find_best_frame]``; ``off``: absolute), scaled with
``--adapt-scale``. The video has the warp's frame size (or ``--size``), the mesh sequence's
frame rate and no audio (``meshhead_mux`` adds it).
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
from twinflow.meshhead.driving import RELATIVE, MeshDriver, best_frame, pose_features
from twinflow.meshhead.poses import (
    POSES,
    SOURCES,
    Source,
    frame_source,
    photo_landmarks,
    photo_source,
    pose_track,
)
from twinflow.meshhead.topology import warp_points
from twinflow.meshhead.warp import Motion, WarpRunner

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
    p.add_argument("--relative", choices=RELATIVE, default="source")
    p.add_argument("--adapt-scale", action="store_true")
    p.add_argument("--yaw", type=float, default=0.0, help="free-view offset, degrees")
    p.add_argument("--pitch", type=float, default=0.0, help="free-view offset, degrees")
    p.add_argument("--roll", type=float, default=0.0, help="free-view offset, degrees")
    p.add_argument("--size", type=int, default=0, help="output side in pixels (0: the warp's)")
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--x264-preset", default="veryfast")
    p.add_argument("--out", required=True)
    add_common(p)
    return p


def mesh_motion(
    driver: MeshDriver,
    disp: np.ndarray,
    source: Source,
    rot: np.ndarray,
    trans: np.ndarray,
    offsets: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Motion:
    """The driver's motion of pose-free displacements ``disp (T, 468, 3)`` posed by ``rot,
    trans``, with free-view ``offsets`` (yaw, pitch, roll degrees) added to the angles."""
    m = Motion.from_dict(driver.predict(disp, pose_features(rot, trans, source.k, source.crop)))
    m.angles = m.angles + np.asarray(offsets, np.float32)
    return m


def initial_motion(
    mode: str,
    driver: MeshDriver,
    source: Source,
    vertices: np.ndarray,
    disp: np.ndarray,
    rot: np.ndarray,
    trans: np.ndarray,
) -> tuple[Motion | None, int | None]:
    """The driving state motion is relative to (:data:`~twinflow.meshhead.driving.RELATIVE`),
    and the driving frame chosen (``first``, ``best``)."""
    if mode == "off":
        return None, None
    if mode == "source":
        if source.disp is None:
            raise InputError("relative=source needs the source's mesh")
        one = mesh_motion(driver, source.disp[None], source, source.rot[None], source.trans[None])
        return one, None
    if mode == "first":
        index = 0
    else:  # best: the reference's find_best_frame with the face-mesh's iBUG-68 points
        idx = warp_points("ibug68")
        driving = keypoints(vertices, rot, trans, source.k, source.crop, "ibug68")
        index = best_frame(source.crop.to_unit(source.landmarks[idx]), driving)
    return mesh_motion(driver, disp[index : index + 1], source, rot[index : index + 1],
                       trans[index : index + 1]), index  # fmt: skip


def resize_frames(frames, size: int):
    for frame in frames:
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
    driver = runner.need_driver()
    source = load_source(args, dataset, frames, frames["info"]["keypoints"])
    image = source.image
    if image.shape[0] != runner.size:
        image = cv2.resize(image, (runner.size, runner.size), interpolation=cv2.INTER_AREA)
    n = len(mesh["vertices"])
    drive = load_npz(args.drive_pose, "driving head pose") if args.drive_pose else {}
    rot, trans = pose_track(
        args.pose, n, source.rot, source.trans, dataset["R"], dataset["t"],
        drive.get("R"), drive.get("t"), start=source.index or 0,
    )  # fmt: skip
    offsets = (args.yaw, args.pitch, args.roll)
    motion = mesh_motion(driver, mesh["disp"], source, rot, trans, offsets)
    initial, index = initial_motion(
        args.relative, driver, source, mesh["vertices"], mesh["disp"], rot, trans
    )
    src = runner.source(image)
    fps = float(mesh["fps"])
    with VideoWriter(args.out, fps, crf=args.crf, preset=args.x264_preset) as writer:
        rendered = runner.render(src, motion, initial, adapt_scale=args.adapt_scale)
        writer.write_all(resize_frames(rendered, args.size))
    log.info(
        "%d frames at %g fps (%.1f s), source %s, pose %s, relative %s%s, free view %s",
        n, fps, n / fps, f"frame {source.index}" if args.source == "frame" else "photo",
        args.pose, args.relative, f" (frame {index})" if index is not None else "", offsets,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
