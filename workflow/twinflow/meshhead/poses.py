"""Head-pose tracks for rendering, and the source image with its keypoints.

A render re-poses the predicted (pose-free) mesh with one of three tracks:

``twin``     the twin's own head motion from its video (``head_pose.npz`` via the dataset),
             smoothed and played forwards and backwards as long as the audio needs;
``neutral``  the source's pose, held;
``video``    a driving video's head motion (``results/drive/{render}/perception/head_pose.npz``)
             relative to its first frame, applied to the source's pose.

The source is a frame of the twin's video (``frames.npz``; default) or the twin's photo
(``photo.png`` with the perception stage's ``photo_face.npz``; its pose is solved against the
twin's template with the video's intrinsics).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from twinflow.errors import InputError
from twinflow.meshhead.presets import POSES, SOURCES  # noqa: F401  (re-exported)
from twinflow.meshhead.topology import (
    N_MESH,
    Crop,
    align_to_template,
    crop_frame,
    head_crop,
    warp_points,
)
from twinflow.perception.landmarks import RIGID


def smooth(rot: np.ndarray, trans: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian smoothing of a pose track over time (rotations as rotation vectors)."""
    if sigma <= 0 or len(rot) < 3:
        return rot, trans
    rv = Rotation.from_matrix(rot.astype(np.float64)).as_rotvec()
    rv = gaussian_filter1d(rv, sigma, axis=0, mode="nearest")
    tr = gaussian_filter1d(trans.astype(np.float64), sigma, axis=0, mode="nearest")
    return Rotation.from_rotvec(rv).as_matrix(), tr


def ping_pong(n_src: int, n: int, start: int = 0) -> np.ndarray:
    """Indices ``(n,)`` walking ``0..n_src-1`` forwards and back from ``start`` (no jumps)."""
    if n_src <= 1:
        return np.zeros(n, int)
    period = 2 * (n_src - 1)
    k = (np.arange(n) + start) % period
    return np.where(k < n_src, k, period - k)


def pose_track(
    kind: str,
    n: int,
    src_rot: np.ndarray,
    src_trans: np.ndarray,
    twin_rot: np.ndarray | None = None,
    twin_trans: np.ndarray | None = None,
    drive_rot: np.ndarray | None = None,
    drive_trans: np.ndarray | None = None,
    start: int = 0,
    sigma: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """``R (n, 3, 3)``, ``t (n, 3)`` of a render (see the module docstring)."""
    if kind == "neutral":
        return np.repeat(src_rot[None], n, 0), np.repeat(src_trans[None], n, 0)
    if kind == "twin":
        rot, trans = smooth(twin_rot, twin_trans, sigma)
        idx = ping_pong(len(rot), n, start)
        return rot[idx], trans[idx]
    if kind == "video":
        if drive_rot is None:
            raise InputError("pose 'video' needs the driving video's head pose")
        rot, trans = smooth(drive_rot, drive_trans, sigma)
        idx = ping_pong(len(rot), n)
        rel = rot[idx] @ rot[0].T
        return rel @ src_rot, src_trans + (trans[idx] - trans[0])
    raise InputError(f"unknown pose track '{kind}' (choose from {', '.join(POSES)})")


@dataclass
class Source:
    """The image a render warps, its keypoints, pose, crop and the camera to project with."""

    image: np.ndarray  # (S, S, 3) uint8
    kp: np.ndarray  # (K, 2) [-1, 1]
    rot: np.ndarray
    trans: np.ndarray
    k: np.ndarray
    crop: Crop
    index: int | None = None  # frame index when the source is a video frame
    disp: np.ndarray | None = None  # (468, 3) its pose-free mesh minus the template, metres
    landmarks: np.ndarray | None = None  # (468, 2) its face-mesh points, pixels of the video


def frame_source(frames: dict, dataset: dict, index: int | None = None) -> Source:
    i = int(frames["source_index"]) if index is None or index < 0 else int(index)
    if not 0 <= i < len(frames["frames"]):
        raise InputError(f"source frame {i} is not one of the {len(frames['frames'])} frames")
    x0, y0, side = frames["crop"]
    return Source(
        image=frames["frames"][i],
        kp=frames["kp"][i],
        rot=dataset["R"][i].astype(np.float64),
        trans=dataset["t"][i].astype(np.float64),
        k=dataset["K"].astype(np.float64),
        crop=Crop(float(x0), float(y0), float(side)),
        index=i,
        disp=dataset["disp"][i],
        landmarks=dataset["landmarks2d"][i],
    )


def photo_landmarks(photo_face: dict, path) -> np.ndarray:
    """``(478, 3)`` landmarks of the perception stage's photo file (``landmarks (1|478, ...)``)."""
    lm = photo_face.get("landmarks")
    if lm is None:
        raise InputError("has no 'landmarks' array", path=path)
    lm = np.asarray(lm, np.float64)
    if lm.ndim == 3:
        lm = lm[0]
    if lm.shape[0] < N_MESH or not np.isfinite(lm[:N_MESH, :2]).all():
        raise InputError("no face landmarks in the photo", path=path)
    return lm


def photo_source(
    photo: np.ndarray, landmarks: np.ndarray, dataset: dict, frames: dict, kind: str
) -> Source:
    """The photo as source: crop by its own landmarks (the video crop's scale and shift), pose
    solved (SQPnP) against the template's rigid points with the video's intrinsics."""
    info = frames["info"]
    crop = head_crop(landmarks[None, :N_MESH, :2], info["crop_scale"], info["crop_shift"])
    size = int(info["size"])
    tpl = dataset["template"].astype(np.float64)
    rigid = np.array(RIGID)
    k = dataset["K"].astype(np.float64)
    ok, rvec, tvec = cv2.solvePnP(
        tpl[rigid], landmarks[rigid, :2].astype(np.float64), k, None, flags=cv2.SOLVEPNP_SQPNP
    )
    if not ok:
        raise InputError("could not solve the photo's head pose")
    idx = warp_points(kind)
    aligned, _ = align_to_template(landmarks[None, :N_MESH], tpl.astype(np.float32), rigid)
    return Source(
        image=crop_frame(photo, crop, size),
        kp=crop.to_unit(landmarks[idx, :2]),
        rot=cv2.Rodrigues(rvec)[0],
        trans=tvec[:, 0],
        k=k,
        crop=crop,
        disp=aligned[0] - dataset["template"],
        landmarks=landmarks[:N_MESH, :2].astype(np.float32),
    )
