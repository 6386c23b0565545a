"""Driving face-vid2vid with a face mesh: the per-twin map from a mesh and a head pose to the
estimator's head pose and expression, and the reference's inference options.

face-vid2vid drives a source with keypoints ``R(yaw, pitch, roll) kp_c + t + exp``, where
``kp_c`` are the source's canonical keypoints and the angles, ``t`` and ``exp`` come from its
estimator run on a driving *frame*. meshhead has no driving frames: it has a predicted mesh
(pose-free, :mod:`twinflow.meshhead.infer`) and a head-pose track (:mod:`twinflow.meshhead.poses`).
:class:`MeshDriver` maps them to the estimator's quantities; it is learned per twin from the
twin's own video: on every training frame, the estimator's yaw, pitch, roll (degrees), ``t`` and
``exp`` are the targets, and the inputs are that frame's tracked mesh (its first
``components`` principal components over the training frames) and tracked pose
(:func:`pose_features`: Euler angles in the estimator's convention, the head origin in the crop,
log distance). One ridge regression (inputs standardised; penalty chosen from ``alphas`` on the
last 20 % of the training frames, a time split, then refitted on all of them) maps inputs to all
outputs at once, so that the angles follow the tracked ones whatever convention the estimator
learned (a converted checkpoint's comes from Hopenet; twinflow's fallback trains on these
same tracked angles).

Inference options (``demo.py``): relative motion (:func:`relative_keypoints`; ``source``,
twinflow's default, takes the change since the source's own mesh and pose; ``first`` and
``best`` since the first or the best-matching driving frame, as the reference's ``--relative``
and ``--relative --find_best_frame``; ``off``: absolute), ``adapt_scale`` and free-view offsets
``yaw``, ``pitch``, ``roll`` in degrees, added to the track's angles (the reference sets fixed
angles; offsets keep the head's motion).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull
from scipy.spatial.transform import Rotation

from twinflow.meshhead.fv2v.pose import REFERENCE_PI
from twinflow.meshhead.topology import Crop, project

RELATIVE = ("source", "first", "best", "off")


def euler_degrees(rot: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` head-to-camera rotations (OpenCV axes; the template's head frame faces the
    camera at the identity) -> ``(T, 3)`` yaw, pitch, roll in the estimator's convention:
    ``R = R_x(pitch) R_y(yaw) R_z(roll)`` with degrees read through ``3.14 / 180`` (so that
    :func:`twinflow.meshhead.fv2v.pose.rotation_matrix` rebuilds ``R``)."""
    rot = np.asarray(rot, np.float64).reshape(-1, 3, 3)
    pitch, yaw, roll = Rotation.from_matrix(rot).as_euler("XYZ").T
    return np.stack([yaw, pitch, roll], axis=1) * 180 / REFERENCE_PI


def pose_features(rot: np.ndarray, trans: np.ndarray, k: np.ndarray, crop: Crop) -> np.ndarray:
    """``(T, 6)``: yaw, pitch, roll (:func:`euler_degrees`), the head origin projected into the
    crop (x, y in [-1, 1]) and ``log`` of its distance (metres)."""
    trans = np.asarray(trans, np.float64)
    origin = project(np.zeros((len(trans), 1, 3)), np.asarray(rot, np.float64), trans, k)[:, 0]
    return np.concatenate(
        [euler_degrees(rot), crop.to_unit(origin), np.log(trans[:, 2:3])], axis=1
    ).astype(np.float64)


@dataclass
class MeshDriver:
    """Ridge map ``[PCA(disp), pose features] -> [yaw, pitch, roll, t (3), exp (3K)]``."""

    mesh_mean: np.ndarray  # (V*3,)
    basis: np.ndarray  # (C, V*3) principal directions of the displacement
    x_mean: np.ndarray  # (C + 6,)
    x_std: np.ndarray
    weight: np.ndarray  # (C + 6, 6 + 3K)
    bias: np.ndarray  # (6 + 3K,)
    alpha: float

    @staticmethod
    def inputs_of(disp: np.ndarray, pose: np.ndarray, mean: np.ndarray, basis: np.ndarray):
        flat = disp.reshape(len(disp), -1).astype(np.float64) - mean
        return np.concatenate([flat @ basis.T, pose], axis=1)

    @classmethod
    def fit(
        cls,
        disp: np.ndarray,
        pose: np.ndarray,
        targets: np.ndarray,
        components: int = 16,
        alphas=(0.1, 1, 10, 100, 1000),
    ) -> MeshDriver:
        """``disp (N, V, 3)``, ``pose (N, 6)``, ``targets (N, 6 + 3K)`` of training frames in
        time order."""
        flat = disp.reshape(len(disp), -1).astype(np.float64)
        mean = flat.mean(0)
        _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
        basis = vt[: min(components, len(vt))]
        x = cls.inputs_of(disp, pose, mean, basis)
        mu, sd = x.mean(0), x.std(0) + 1e-8
        xs = (x - mu) / sd
        y = targets.astype(np.float64)
        cut = max(1, int(0.8 * len(xs)))
        best = None
        for alpha in alphas:
            w, b = _ridge(xs[:cut], y[:cut], alpha)
            err = np.mean((xs[cut:] @ w + b - y[cut:]) ** 2) if cut < len(xs) else 0.0
            if best is None or err < best[0]:
                best = (err, alpha)
        w, b = _ridge(xs, y, best[1])
        return cls(mean, basis, mu, sd, w, b, float(best[1]))

    def predict(self, disp: np.ndarray, pose: np.ndarray) -> dict[str, np.ndarray]:
        """``{"angles": (T, 3) yaw, pitch, roll deg, "t": (T, 3), "exp": (T, 3K)}``."""
        x = (self.inputs_of(disp, pose, self.mesh_mean, self.basis) - self.x_mean) / self.x_std
        y = (x @ self.weight + self.bias).astype(np.float32)
        return {"angles": y[:, :3], "t": y[:, 3:6], "exp": y[:, 6:]}

    def state(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_state(cls, state: dict) -> MeshDriver:
        return cls(**state)


def estimator_targets(he: dict[str, np.ndarray]) -> np.ndarray:
    """``(N, 6 + 3K)`` from estimator outputs in degrees (``yaw``, ``pitch``, ``roll``, ``t``,
    ``exp``)."""
    angles = np.stack([he["yaw"], he["pitch"], he["roll"]], axis=1)
    return np.concatenate([angles, he["t"], he["exp"]], axis=1)


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    xm, ym = x.mean(0), y.mean(0)
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return w, ym - xm @ w


def normalized_landmarks(points: np.ndarray) -> np.ndarray:
    """The reference's ``find_best_frame`` normalisation of 2-D landmarks ``(N, 2)``: centred,
    divided by the square root of their convex hull's area."""
    points = points - points.mean(axis=0, keepdims=True)
    return points / np.sqrt(ConvexHull(points).volume)


def best_frame(source_points: np.ndarray, driving_points: np.ndarray) -> int:
    """The driving frame ``(T, N, 2)`` whose normalised landmarks are closest (sum of squares) to
    the source's ``(N, 2)`` (``demo.find_best_frame`` with twinflow's landmarks)."""
    src = normalized_landmarks(source_points)
    dists = [((normalized_landmarks(p) - src) ** 2).sum() for p in driving_points]
    return int(np.argmin(dists))


def relative_keypoints(
    kp_source: np.ndarray,
    kp_driving: np.ndarray,
    kp_initial: np.ndarray | None,
    adapt_scale: bool = False,
) -> np.ndarray:
    """``kp_s + scale (kp_d - kp_0)`` (``(K, 3)``, ``(T, K, 3)``, ``(K, 3)``); ``kp_initial``
    None: absolute (``kp_d``). ``adapt_scale``: the square root of the keypoints' convex-hull
    volume ratio, source over initial (the reference's)."""
    if kp_initial is None:
        return kp_driving
    scale = 1.0
    if adapt_scale:
        scale = np.sqrt(ConvexHull(kp_source).volume) / np.sqrt(ConvexHull(kp_initial).volume)
    return (kp_driving - kp_initial[None]) * scale + kp_source[None]
