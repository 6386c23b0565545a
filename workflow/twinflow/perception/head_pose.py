"""Stage ``head_pose``: face template, head pose per frame, one focal length, NeRF cameras.

``python -m twinflow.perception.head_pose --twin ID --face face.npz --template template.npz
--pose head_pose.npz --train transforms_train.json --val transforms_val.json [flags]``

Camera: a pinhole with square pixels, principal point at the frame centre and focal length ``f``
in pixels, shared by all frames (a fixed camera). Each frame's pose solves
``x_cam = R @ X_head + t`` (OpenCV camera axes: x right, y down, z forward; ``X_head`` in the
template's head frame, metres) so that the template's rigid points project onto the frame's
landmarks.

Why not simply refine ``f`` together with the poses against the Procrustes template: that
template's depths are mediapipe's z, a weak-perspective estimate, so a fixed template fits best
with an orthographic camera and such a fit drives ``f`` to its upper bound (measured: 10-20 image
widths). Here the rigid template is refined with the poses instead, from the landmarks' x, y
only (which are true perspective projections), and ``f`` is the focal length with the smallest
reprojection error of that joint fit:

1. for a given ``f``, alternate ``rounds`` times: every frame's pose by ``cv2.solvePnP`` (SQPnP,
   a global solver, then Levenberg-Marquardt), then every rigid point by linear least-squares
   triangulation over the frames, weakly tied to the Procrustes shape (``depth_prior``: where
   the head hardly turns the data cannot place depths), rescaled to the nominal eye distance;
2. the RMS reprojection error of (1) as a function of ``log f`` is scanned on a grid from
   ``focal_min`` to ``focal_max`` image widths and minimised by Brent's method
   (``scipy.optimize.minimize_scalar``) around the best grid point, plus a weak quadratic prior
   towards ``focal_prior`` that decides only where the curve is flat;
3. at that ``f``, all 478 template points are triangulated over the detected frames (tied to the
   Procrustes mean the same way), the template is put back in its canonical head frame, and every
   frame's pose is solved once more.

On the real test clips the minimum is shallow but clear, at 1.3-1.6 image widths (a 35-40 degree
field of view); where a video barely turns the head the prior decides.

``head_pose.npz``:

================  ==============  =====================================================
key               shape, dtype    meaning
================  ==============  =====================================================
R                 (T, 3, 3) f4    head-to-camera rotation (OpenCV camera axes)
t                 (T, 3) f4       head origin in camera coordinates, metres
rvec              (T, 3) f4       ``R`` as a Rodrigues vector
euler_deg         (T, 3) f4       pitch (about x), yaw (about y), roll (about z), degrees,
                                  intrinsic ``xyz`` of ``R``; 0 = facing the camera
K                 (3, 3) f4       intrinsics ``[[f, 0, cx], [0, f, cy], [0, 0, 1]]``
focal             () f4           ``f`` in pixels
image_size        (2,) i4         W, H
reproj_error      (T,) f4         RMS reprojection error of the rigid points, pixels
interpolated      (T,) bool       pose of a filled-in (no face) frame
info              JSON text       focal search (grid and errors), convention
================  ==============  =====================================================
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from scipy.optimize import minimize_scalar
from scipy.spatial.transform import Rotation

from twinflow.atomic import write_json
from twinflow.cli import stage_main
from twinflow.perception.cameras import transforms
from twinflow.perception.landmarks import OUTER_EYE_CORNERS
from twinflow.perception.options import add_dataclass_args, dataclass_from_args
from twinflow.perception.store import load_info, load_npz, save_npz
from twinflow.perception.template import build_template, to_head_frame

log = logging.getLogger("twinflow.perception.head_pose")


@dataclass(frozen=True)
class HeadPoseConfig:
    """Head pose settings (config ``perception.head_pose``).

    Attributes:
        eye_corner_distance_m: nominal distance between the outer eye corners that scales the
            template to metres (adult mean ~0.09 m).
        focal_prior: prior focal length in image widths (1.5: a 37 degree field of view).
        focal_prior_weight: prior strength, in squared pixels of RMS reprojection error per
            squared unit of ``log f``; 0.01 moves ``f`` only where the error curve is flat.
        refine_focal: estimate ``f`` (otherwise ``focal_prior`` is used as is).
        focal_min: smallest focal length searched, image widths.
        focal_max: largest focal length searched, image widths.
        joint_frames: at most this many evenly spaced detected frames in the focal search.
        rounds: pose / triangulation alternations per focal length.
        depth_prior: how strongly triangulated points stay at the Procrustes shape, relative to
            the information of one frame; small, it matters only where frames do not agree.
        val_fraction: this fraction of the frames is the NeRF validation split, held out as
            ``val_blocks`` contiguous blocks spread evenly over the video (the last one ends
            it; 1: ER-NeRF's split, the last block only).
        val_blocks: number of validation blocks.
        val_gap: frames on either side of every validation block left out of training.
    """

    eye_corner_distance_m: float = 0.09
    focal_prior: float = 1.5
    focal_prior_weight: float = 0.01
    refine_focal: bool = True
    focal_min: float = 0.6
    focal_max: float = 8.0
    joint_frames: int = 100
    rounds: int = 5
    depth_prior: float = 1.0
    val_fraction: float = 0.1
    val_blocks: int = 4
    val_gap: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


def intrinsics(f: float, width: int, height: int) -> np.ndarray:
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float64)


def project(points: np.ndarray, rvec: np.ndarray, tvec: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Project ``points (P, 3)`` for every pose ``rvec, tvec (T, 3)`` -> ``(T, P, 2)`` pixels."""
    rot = Rotation.from_rotvec(rvec).as_matrix()
    cam = np.einsum("tij,kj->tki", rot, points) + tvec[:, None]
    z = np.maximum(cam[..., 2], 1e-6)
    return np.stack(
        [k[0, 0] * cam[..., 0] / z + k[0, 2], k[1, 1] * cam[..., 1] / z + k[1, 2]], axis=-1
    )


def solve_frames(
    points: np.ndarray, image: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pose of every frame: ``points (P, 3)``, ``image (T, P, 2)`` -> ``rvec, tvec (T, 3)``."""
    n = len(image)
    rvecs, tvecs = np.zeros((n, 3)), np.zeros((n, 3))
    obj = np.ascontiguousarray(points, np.float64)
    for i in range(n):
        img = np.ascontiguousarray(image[i], np.float64)
        ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)
        if not ok:
            ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_EPNP)
        rvec, tvec = cv2.solvePnPRefineLM(obj, img, k, None, rvec, tvec)
        rvecs[i], tvecs[i] = rvec.ravel(), tvec.ravel()
    return rvecs, tvecs


def triangulate(
    rvecs: np.ndarray,
    tvecs: np.ndarray,
    image: np.ndarray,
    k: np.ndarray,
    prior: np.ndarray,
    strength: float,
) -> np.ndarray:
    """Points ``(P, 3)`` seen at ``image (T, P, 2)`` from poses ``(T, 3)``: linear least squares
    (two equations per frame, divided by the frame's depth so residuals are ~pixels), plus
    ``strength`` x one frame's weight pulling each point to ``prior (P, 3)``."""
    rot = Rotation.from_rotvec(rvecs).as_matrix()
    f = k[0, 0]
    u = image[..., 0] - k[0, 2]
    v = image[..., 1] - k[1, 2]
    depth = np.maximum(tvecs[:, 2], 1e-6)[:, None, None]
    a = np.concatenate(
        [
            (f * rot[:, None, 0] - u[..., None] * rot[:, None, 2]) / depth,
            (f * rot[:, None, 1] - v[..., None] * rot[:, None, 2]) / depth,
        ]
    )  # (2T, P, 3)
    b = np.concatenate(
        [
            (u * tvecs[:, None, 2] - f * tvecs[:, None, 0]) / depth[..., 0],
            (v * tvecs[:, None, 2] - f * tvecs[:, None, 1]) / depth[..., 0],
        ]
    )  # (2T, P)
    ata = np.einsum("npi,npj->pij", a, a)
    atb = np.einsum("npi,np->pi", a, b)
    lam = strength * np.trace(ata, axis1=1, axis2=2)[:, None, None] / (3 * len(rvecs))
    return np.linalg.solve(ata + lam * np.eye(3), (atb + lam[:, :, 0] * prior)[..., None])[..., 0]


def _eye_scale(points: np.ndarray, eyes: tuple[int, int], distance: float) -> float:
    return distance / float(np.linalg.norm(points[eyes[1]] - points[eyes[0]]))


def alternate(
    prior: np.ndarray,
    image: np.ndarray,
    k: np.ndarray,
    cfg: HeadPoseConfig,
    eyes: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Rigid points and poses at a fixed focal length (step 1 of the module docstring).

    Returns ``(points (P, 3), rvecs, tvecs, rms_px)``."""
    points = prior.copy()
    for _ in range(cfg.rounds):
        rvecs, tvecs = solve_frames(points, image, k)
        points = triangulate(rvecs, tvecs, image, k, prior, cfg.depth_prior)
        points *= _eye_scale(points, eyes, cfg.eye_corner_distance_m)
    rvecs, tvecs = solve_frames(points, image, k)
    rms = float(np.sqrt(((project(points, rvecs, tvecs, k) - image) ** 2).sum(-1).mean()))
    return points, rvecs, tvecs, rms


def estimate_focal(
    prior: np.ndarray,
    image: np.ndarray,
    width: int,
    height: int,
    cfg: HeadPoseConfig,
    eyes: tuple[int, int],
) -> tuple[float, dict]:
    """Focal length (pixels) of ``image (N, P, 2)`` observations of the rigid points whose
    Procrustes shape is ``prior (P, 3)`` (steps 1-2 of the module docstring)."""
    log_prior = np.log(cfg.focal_prior * width)

    def cost(log_f: float) -> float:
        rms = alternate(prior, image, intrinsics(np.exp(log_f), width, height), cfg, eyes)[3]
        return rms**2 + cfg.focal_prior_weight * (log_f - log_prior) ** 2

    grid = np.linspace(np.log(cfg.focal_min * width), np.log(cfg.focal_max * width), 12)
    costs = np.array([cost(g) for g in grid])
    best = int(np.argmin(costs))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    fit = minimize_scalar(cost, bounds=(lo, hi), method="bounded", options={"xatol": 0.005})
    log_f = float(fit.x) if fit.fun <= costs[best] else float(grid[best])
    return float(np.exp(log_f)), {
        "focal_prior_px": float(np.exp(log_prior)),
        "frames": len(image),
        "grid_px": np.exp(grid).round(1).tolist(),
        "grid_cost": costs.round(5).tolist(),
        "cost_at_focal": float(min(fit.fun, costs[best])),
        "at_search_bound": bool(best in (0, len(grid) - 1)),
    }


def solve_head_pose(
    landmarks: np.ndarray,
    detected: np.ndarray,
    template: dict[str, np.ndarray | dict],
    width: int,
    height: int,
    cfg: HeadPoseConfig,
) -> dict[str, np.ndarray | dict]:
    """The arrays of ``head_pose.npz`` from ``landmarks (T, 478, 3)``, ``detected (T,)`` and the
    Procrustes template of :func:`~twinflow.perception.template.build_template`.

    ``template`` is refined **in place** (step 3: ``vertices`` replaced by the triangulated
    shape the poses refer to, ``rigid_reproj_px`` and ``info`` added), so save it after this
    call; the returned poses are only valid with the refined template.
    """
    rigid = template["rigid_index"].astype(int).tolist()
    eyes = (rigid.index(OUTER_EYE_CORNERS[0]), rigid.index(OUTER_EYE_CORNERS[1]))
    vertices0 = template["vertices"].astype(np.float64)
    image = landmarks[..., :2].astype(np.float64)
    use = np.flatnonzero(detected)
    if len(use) > cfg.joint_frames:
        use = use[np.linspace(0, len(use) - 1, cfg.joint_frames).round().astype(int)]
    f = cfg.focal_prior * width
    info: dict = {"focal_prior_px": f, "focal_refined": False}
    if cfg.refine_focal and len(use) >= 3:
        f, info = estimate_focal(vertices0[rigid], image[use][:, rigid], width, height, cfg, eyes)
        info["focal_refined"] = True
    k = intrinsics(f, width, height)
    # step 3: the whole template at this focal length, then every frame's pose
    points, rvecs, tvecs, _ = alternate(vertices0[rigid], image[use][:, rigid], k, cfg, eyes)
    if len(use):
        vertices = triangulate(rvecs, tvecs, image[use], k, vertices0, cfg.depth_prior)
        vertices[rigid] = points
        vertices = to_head_frame(vertices, rigid, cfg.eye_corner_distance_m)
    else:
        vertices = vertices0
    rvecs, tvecs = solve_frames(vertices[rigid], image[:, rigid], k)
    proj = project(vertices[rigid], rvecs, tvecs, k)
    sq = ((proj - image[:, rigid]) ** 2).sum(-1)  # (T, P)
    rot = Rotation.from_rotvec(rvecs)
    info["convention"] = (
        "x_cam = R @ X_head + t; OpenCV camera (x right, y down, z forward); head frame of "
        "template.npz; metres"
    )
    pose = {
        "R": rot.as_matrix().astype(np.float32),
        "t": tvecs.astype(np.float32),
        "rvec": rvecs.astype(np.float32),
        "euler_deg": rot.as_euler("xyz", degrees=True).astype(np.float32),
        "K": k.astype(np.float32),
        "focal": np.float32(f),
        "image_size": np.array([width, height], np.int32),
        "reproj_error": np.sqrt(sq.mean(-1)).astype(np.float32),
        "interpolated": ~detected,
        "info": info,
    }
    template["vertices"] = vertices.astype(np.float32)
    template["rigid_reproj_px"] = np.sqrt(sq[detected].mean(0)).astype(np.float32)
    tinfo = dict(template.get("info", {}))
    tinfo.update({"focal_px": f, "refined": "rigid points and mesh triangulated at focal_px"})
    template["info"] = tinfo
    return pose


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.perception.head_pose", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--face", required=True, help="face.npz")
    p.add_argument("--template", required=True, help="out: template.npz")
    p.add_argument("--pose", required=True, help="out: head_pose.npz")
    p.add_argument("--train", required=True, help="out: transforms_train.json")
    p.add_argument("--val", required=True, help="out: transforms_val.json")
    add_dataclass_args(p, HeadPoseConfig, "pose")
    return p


def run(args: argparse.Namespace) -> None:
    cfg = dataclass_from_args(HeadPoseConfig, args, "pose")
    face = load_npz(args.face)
    info = load_info(face)
    width, height = info["width"], info["height"]
    template = build_template(
        face["landmarks"], face["detected"], eye_corner_distance_m=cfg.eye_corner_distance_m
    )
    pose = solve_head_pose(face["landmarks"], face["detected"], template, width, height, cfg)
    err = pose["reproj_error"][face["detected"]]
    log.info(
        "focal %.1f px (%.2f image widths); rigid-point reprojection error median %.2f px, "
        "95th percentile %.2f px",
        pose["focal"],
        pose["focal"] / width,
        np.median(err),
        np.percentile(err, 95),
    )
    pose["info"]["config"] = cfg.to_dict()
    save_npz(args.template, **template)
    save_npz(args.pose, **pose)
    docs = transforms(pose, float(info["fps"]), cfg.val_fraction, cfg.val_blocks, cfg.val_gap)
    write_json(args.train, docs["train"])
    write_json(args.val, docs["val"])


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
