"""Stage ``perception_report``: the preview video and the per-video summary JSON.

``python -m twinflow.perception.report --twin ID --video video.mp4 --face face.npz
--body body.npz --signals signals.npz [--pose head_pose.npz --template template.npz]
--matte matte.mkv --preview preview.mp4 --summary summary.json [--max-missing-face 0.2]``

Without ``--pose``/``--template`` (a video no pipeline needs the face of gets no head pose) the
preview draws no head axes and the summary's ``landmark_jitter_px`` and ``head_pose`` are null.

``summary.json`` keys: ``twin, video, source, n_frames, fps, size``; ``face`` (detection rate,
frames with and without a face, the missing frames and runs of them, mean detection
confidence); ``people`` (people seen, kept track ids, every track with its score);
``landmark_jitter_px`` (median, 95th percentile, the stillest stretch); ``head_pose`` (focal
length, reprojection error, yaw and pitch 5-95% range, camera distance); ``signals`` (blinks,
means); ``body`` (pose detection rate, frames with each hand); ``matte`` (mean coverage, how much
of the face box and of the visible upper-body pose landmarks the matte covers).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from tqdm import tqdm

from twinflow.atomic import write_json
from twinflow.cli import stage_main
from twinflow.media.video import VideoWriter, iter_frames
from twinflow.perception import solutions
from twinflow.perception.preview import draw_frame
from twinflow.perception.store import iter_masks, load_npz, lockstep, stream_info
from twinflow.perception.summary import build_summary

log = logging.getLogger("twinflow.perception.report")
UPPER_BODY = list(range(0, 25))  # pose landmarks of the face, arms and hips
VISIBLE = 0.8


class MatteStats:
    """Running statistics of how the matte covers the person."""

    def __init__(self) -> None:
        self.coverage: list[float] = []
        self.face: list[float] = []
        self.points_in = 0
        self.points = 0

    def add(self, alpha: np.ndarray, face_box: np.ndarray | None, pose: np.ndarray | None):
        h, w = alpha.shape
        self.coverage.append(float(alpha.mean()) / 255)
        if face_box is not None:
            x0, y0, x1, y1 = np.clip(np.round(face_box), 0, [w, h, w, h]).astype(int)
            if x1 > x0 and y1 > y0:
                self.face.append(float(alpha[y0:y1, x0:x1].mean()) / 255)
        if pose is not None:
            pts = pose[UPPER_BODY]
            ok = (pts[:, 3] >= VISIBLE) & (pts[:, 0] >= 0) & (pts[:, 0] < w)
            ok &= (pts[:, 1] >= 0) & (pts[:, 1] < h)
            xy = pts[ok, :2].astype(int)
            self.points += len(xy)
            self.points_in += int((alpha[xy[:, 1], xy[:, 0]] >= 128).sum())

    def to_dict(self) -> dict:
        return {
            "mean_coverage": float(np.mean(self.coverage)) if self.coverage else 0.0,
            "face_box_covered": float(np.mean(self.face)) if self.face else None,
            "pose_points_covered": self.points_in / self.points if self.points else None,
            "pose_points_checked": self.points,
        }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.perception.report", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--video", required=True)
    for name in ("face", "body", "signals"):
        p.add_argument(f"--{name}", required=True, help=f"{name}.npz")
    for name in ("pose", "template"):
        p.add_argument(f"--{name}", default=None, help=f"{name}.npz (optional)")
    p.add_argument("--matte", required=True, help="matte.mkv")
    p.add_argument("--max-missing-face", type=float, default=0.2, help="(reported)")
    p.add_argument("--crf", type=int, default=23)
    p.add_argument("--x264-preset", default="veryfast")
    p.add_argument("--preview", required=True, help="out: preview.mp4")
    p.add_argument("--summary", required=True, help="out: summary.json")
    return p


def run(args: argparse.Namespace) -> None:
    face, body = load_npz(args.face), load_npz(args.body)
    signals = load_npz(args.signals)
    pose = load_npz(args.pose) if args.pose else None
    template = load_npz(args.template) if args.template else None
    fps, _ = stream_info(args.video)
    n = len(face["landmarks"])
    connections = (solutions.pose_connections(), solutions.hand_connections())
    stats = MatteStats()
    with VideoWriter(args.preview, fps, crf=args.crf, preset=args.x264_preset) as writer:
        frames = lockstep(iter_frames(args.video), iter_masks(args.matte), path=args.matte)
        for t, (rgb, alpha) in enumerate(tqdm(frames, total=n, desc="preview")):
            stats.add(
                alpha,
                face["face_box"][t] if face["detected"][t] else None,
                body["pose"][t] if body["pose_present"][t] else None,
            )
            writer.write(draw_frame(rgb, alpha, face, body, pose, signals, t, connections))
    summary = build_summary(
        args.twin, face, body, signals, pose, template, stats.to_dict(), args.max_missing_face
    )
    write_json(args.summary, summary)
    jitter, head = summary["landmark_jitter_px"] or {}, summary["head_pose"] or {}
    log.info(
        "face in %.1f%% of %d frames, jitter %.2f px, reprojection %.2f px, matte covers %.0f%% "
        "of the face box",
        100 * summary["face"]["detection_rate"],
        n,
        jitter.get("median") or float("nan"),
        head.get("reproj_error_px", {}).get("median", float("nan")),
        100 * (summary["matte"]["face_box_covered"] or 0),
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
