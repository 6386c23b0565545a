"""Stage ``meshhead_frames``: the twin's head crop of every frame and its warp keypoints.

``python -m twinflow.meshhead.frames --twin ID --video video.mp4 --dataset dataset.npz
--size 128 --crop-scale 1.7 --crop-shift 0.08 --keypoints subset [--source-frame N]
--out frames.npz``

One square crop for the whole video (centred on the median face-mesh box of the training
frames, side ``crop_scale`` x its extent, moved up by ``crop_shift`` x side), resized to
``size``. ``frames.npz``:

==============  ====================  ====================================================
key             shape, dtype          meaning
==============  ====================  ====================================================
frames          (T, S, S, 3) uint8    RGB head crops
kp              (T, K, 2) float32     warp keypoints in [-1, 1] crop units: the pose-free
                                      mesh (template + disp) re-posed with the frame's head
                                      pose (R, t, K of head_pose.npz) and projected
kp_tracked      (T, K, 2) float32     the same points as tracked (face.npz), for reference
kp_index        (K,) int64            face-mesh indices of the keypoints
mouth_kp        (M,) int64            positions of the lip points within kp
crop            (3,) float64          x0, y0, side in video pixels
split           (T,) uint8            0 train, 1 test (from dataset.npz)
source_index    () int64              the default source frame: a training frame facing the
                                      camera with the mouth closed (or ``--source-frame``)
info            JSON                  sizes, reprojection error of kp vs kp_tracked
==============  ====================  ====================================================
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from scipy.spatial.transform import Rotation

from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.video import iter_frames
from twinflow.meshhead.common import keypoints, load_npz, mouth_kp, needs_face_mesh, save_npz
from twinflow.meshhead.presets import WarpConfig
from twinflow.meshhead.topology import crop_frame, head_crop, warp_points

log = logging.getLogger("twinflow.meshhead.frames")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.meshhead.frames", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--dataset", required=True)
    tiny = WarpConfig()
    p.add_argument("--size", type=int, default=tiny.size)
    p.add_argument("--crop-scale", type=float, default=tiny.crop_scale)
    p.add_argument("--crop-shift", type=float, default=tiny.crop_shift)
    p.add_argument("--keypoints", default=tiny.keypoints, choices=("subset", "ibug68"))
    p.add_argument("--source-frame", type=int, default=-1, help="-1: choose automatically")
    p.add_argument("--out", required=True)
    return p


def choose_source(dataset: dict) -> int:
    """A training frame with a detected face, facing the camera, mouth closed."""
    mesh = dataset["template"] + dataset["disp"]
    gap = np.linalg.norm(mesh[:, 13] - mesh[:, 14], axis=-1) * 1000  # inner lips, mm
    angles = np.abs(
        Rotation.from_matrix(dataset["R"].astype(np.float64)).as_euler("xyz", degrees=True)
    )
    angles = np.minimum(angles, 360 - angles)
    score = angles[:, :2].sum(1) / 5 + angles[:, 2] / 10 + gap / 2
    score[(dataset["split"] != 0) | ~dataset["detected"]] = np.inf
    return int(np.argmin(score))


def run(args: argparse.Namespace) -> None:
    dataset = load_npz(args.dataset, "mesh dataset")
    needs_face_mesh(dataset, args.dataset, "the head warp")
    n = len(dataset["disp"])
    train = dataset["split"] == 0
    crop = head_crop(dataset["landmarks2d"][train], args.crop_scale, args.crop_shift)
    frames = np.zeros((n, args.size, args.size, 3), np.uint8)
    count = 0
    for i, rgb in enumerate(iter_frames(args.video)):
        if i >= n:
            break
        frames[i] = crop_frame(rgb, crop, args.size)
        count += 1
    if count < n:
        raise InputError(f"video has {count} frames, the mesh dataset {n}", path=args.video)
    mesh = dataset["template"] + dataset["disp"]
    kp = keypoints(mesh, dataset["R"], dataset["t"], dataset["K"], crop, args.keypoints)
    idx = warp_points(args.keypoints)
    kp_tracked = crop.to_unit(dataset["landmarks2d"][:, idx])
    err_px = np.linalg.norm(kp - kp_tracked, axis=-1).mean() / 2 * args.size
    source = args.source_frame if args.source_frame >= 0 else choose_source(dataset)
    if not 0 <= source < n:
        raise InputError(f"source frame {source} is not one of the {n} frames", path=args.video)
    log.info(
        "%d frames, crop x0=%.0f y0=%.0f side=%.0f px -> %d px; source frame %d; "
        "re-posed vs tracked keypoints %.2f px",
        n, crop.x0, crop.y0, crop.side, args.size, source, err_px,
    )  # fmt: skip
    save_npz(
        args.out,
        frames=frames,
        kp=kp,
        kp_tracked=kp_tracked,
        kp_index=np.array(idx, np.int64),
        mouth_kp=np.array(mouth_kp(args.keypoints), np.int64),
        crop=np.array(crop.as_list()),
        split=dataset["split"],
        source_index=np.array(source, np.int64),
        info={
            "twin": args.twin,
            "video": args.video,
            "size": args.size,
            "crop_scale": args.crop_scale,
            "crop_shift": args.crop_shift,
            "keypoints": args.keypoints,
            "kp_reposed_vs_tracked_px": float(err_px),
            "source": "given" if args.source_frame >= 0 else "auto: frontal, mouth closed",
        },
    )


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
