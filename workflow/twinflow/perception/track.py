"""Stage ``face_track``: face, body, hands and matte of a video in one decode pass.

``python -m twinflow.perception.track --twin ID --video video.mp4 --face face.npz --body body.npz
--signals signals.npz --matte matte.mkv [--source ORIGINAL] [flags]``

Frames without a face are interpolated and flagged in ``face.npz`` (``detected``), frames without
a body in ``body.npz`` (``pose_present``); faces off the body's head are not the person's
(:func:`~twinflow.perception.face.faces_on_body`). Whether a pipeline can use what was found is
the ``perception_ready`` check's question (:mod:`twinflow.perception.needs`), asked per pipeline.
"""

from __future__ import annotations

import argparse
import logging

from tqdm import tqdm

from twinflow.cli import stage_main
from twinflow.media.video import iter_frames
from twinflow.perception.body import BodyConfig, BodyRunner
from twinflow.perception.face import FaceConfig, FaceRunner, build_face_track
from twinflow.perception.matte import MatteConfig, MatteRunner
from twinflow.perception.options import add_dataclass_args, dataclass_from_args
from twinflow.perception.signals import compute_signals
from twinflow.perception.store import MaskWriter, save_npz, stream_info

log = logging.getLogger("twinflow.perception.track")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.perception.track", description=__doc__)
    p.add_argument("--twin", required=True, help="twin or render id (for messages)")
    p.add_argument("--video", required=True, help="normalised video")
    p.add_argument("--source", default=None, help="the user's original video (for messages)")
    p.add_argument("--face", required=True, help="out: face.npz")
    p.add_argument("--body", required=True, help="out: body.npz")
    p.add_argument("--signals", required=True, help="out: signals.npz")
    p.add_argument("--matte", required=True, help="out: matte.mkv")
    add_dataclass_args(p, FaceConfig, "face")
    add_dataclass_args(p, BodyConfig, "body")
    add_dataclass_args(p, MatteConfig, "matte")
    return p


def track_video(
    video: str,
    matte_path: str,
    face_cfg: FaceConfig,
    body_cfg: BodyConfig,
    matte_cfg: MatteConfig,
    *,
    twin: str = "",
    source: str | None = None,
) -> tuple[dict, dict]:
    """Run every per-frame model over ``video`` once; write the matte; return the ``face.npz``
    and ``body.npz`` arrays."""
    fps, declared = stream_info(video)
    faces = FaceRunner(face_cfg)
    body = BodyRunner(body_cfg)
    matte = MatteRunner(matte_cfg)
    observed = []
    size = (0, 0)
    try:
        with MaskWriter(matte_path, fps) as writer:
            for rgb in tqdm(iter_frames(video), total=declared or None, desc=f"track {twin}"):
                size = (rgb.shape[1], rgb.shape[0])
                observed.append(faces(rgb))
                body(rgb)
                for alpha in matte.push(rgb):
                    writer.write(alpha)
            for alpha in matte.flush():
                writer.write(alpha)
            arrays = body.arrays()
            face = build_face_track(observed, *size, face_cfg, arrays["pose"])
    finally:
        faces.close()
        body.close()
        matte.close()
    face["info"].update({"fps": fps, "video": str(video), "source": source})
    return face, arrays


def run(args: argparse.Namespace) -> None:
    face, body = track_video(
        args.video,
        args.matte,
        dataclass_from_args(FaceConfig, args, "face"),
        dataclass_from_args(BodyConfig, args, "body"),
        dataclass_from_args(MatteConfig, args, "matte"),
        twin=args.twin,
        source=args.source,
    )
    n = len(face["detected"])
    log.info(
        "%d frames: face in %d (%.1f%%), %d interpolated; %d people seen, %d faces off the body;"
        " body in %d frames",
        n,
        face["detected"].sum(),
        100 * face["detected"].mean(),
        face["interpolated"].sum(),
        face["info"]["people_seen"],
        face["info"]["faces_off_body"],
        body["pose_present"].sum(),
    )
    save_npz(args.face, **face)
    save_npz(args.body, **body)
    save_npz(args.signals, **compute_signals(face["landmarks"], face["detected"]))


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
