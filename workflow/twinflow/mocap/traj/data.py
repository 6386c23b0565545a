"""Motion data for the trajectory model: AMASS-layout files in, per-frame features out.

An AMASS ``.npz`` holds ``poses (T, 156)`` (SMPL-H: 52 joints) or ``(T, 165)`` (SMPL-X: 55),
axis-angle, joint 0 the root orientation (the body's y-up, z-forward frame to the world's z-up
frame); ``trans (T, 3)`` metres, z up; ``mocap_framerate``; ``betas``. Only the root and the 21
body joints are read.

Per frame the model sees:

``cond (17 x 3)``  the kinematic joints (:data:`twinflow.mocap.skeleton.KIN_NAMES`) relative to
                   the root, in the root's own frame (SMPL axes: x left, y up, z forward),
                   divided by the skeleton's rest height (head joint to ankles), so bodies of any
                   size and any backend look alike. For AMASS files they come from forward
                   kinematics on a generic SMPL-topology skeleton; for a fit, from the fitted
                   body's kinematic joints.
``target (9)``     root orientation as 6D (first two columns of the rotation matrix) and root
                   velocity (m/s), both in the window's canonical frame: the world rotated about
                   z so that the window's first frame faces +x.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from twinflow.errors import InputError
from twinflow.mocap import skeleton
from twinflow.mocap.body_models.synthetic_smplx import PARENTS, rest_joints

log = logging.getLogger(__name__)

N_COND = skeleton.N_KIN * 3
N_TARGET = 9
BODY_PARENTS = PARENTS[:22]
# body frame (x left, y up, z forward) -> world (z up) facing +x: x->y, y->z, z->x
BODY_TO_WORLD = np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])


def generic_rest() -> np.ndarray:
    """``(22, 3)`` rest body joints of the generic skeleton, root at 0."""
    j = rest_joints()[:22]
    return j - j[0]


def kin_height(rest_kin: np.ndarray) -> float:
    """Rest height of a kinematic skeleton ``(17, 3)`` in SMPL axes: head joint to ankles."""
    return float(rest_kin[:, 1].max() - rest_kin[:, 1].min())


def body_fk(body_pose: np.ndarray, rest: np.ndarray | None = None) -> np.ndarray:
    """Joint positions ``(T, 22, 3)`` in the root frame from ``body_pose (T, 21, 3)``."""
    rest = generic_rest() if rest is None else rest
    n = len(body_pose)
    rots = Rotation.from_rotvec(body_pose.reshape(-1, 3)).as_matrix().reshape(n, 21, 3, 3)
    G = np.zeros((n, 22, 3, 3))
    P = np.zeros((n, 22, 3))
    G[:, 0] = np.eye(3)
    for j in range(1, 22):
        p = BODY_PARENTS[j]
        P[:, j] = P[:, p] + np.einsum("tij,j->ti", G[:, p], rest[j] - rest[p])
        G[:, j] = G[:, p] @ rots[:, j - 1]
    return P


def amass_cond(poses: np.ndarray) -> np.ndarray:
    """``(T, 51)`` conditioning features of AMASS poses (generic skeleton)."""
    rest = generic_rest()
    joints = body_fk(poses[:, 3:66].reshape(-1, 21, 3), rest)[:, skeleton.KIN_SMPL]
    return (joints / kin_height(rest[skeleton.KIN_SMPL])).reshape(len(poses), -1)


def fit_cond(
    kin3d: np.ndarray, global_orient: np.ndarray, to_smpl: np.ndarray, rest_kin: np.ndarray
) -> np.ndarray:
    """``(T, 51)`` conditioning features of a fitted track: its kinematic joints relative to the
    root, in the root's frame, turned to SMPL axes and divided by the rest height."""
    R = Rotation.from_rotvec(global_orient).as_matrix()  # backend rest frame -> camera
    local = np.einsum("tji,tkj->tki", R, kin3d - kin3d[:, :1])  # R^T (kin - root)
    local = local @ np.asarray(to_smpl).T
    return (local / kin_height(rest_kin)).reshape(len(kin3d), -1)


def heading(R_world: np.ndarray) -> np.ndarray:
    """Yaw (about world z) of the body's forward axis (SMPL z) for ``(T, 3, 3)`` rotations."""
    fwd = R_world[:, :, 2]
    return np.arctan2(fwd[:, 1], fwd[:, 0])


def rot_z(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*np.shape(angle), 3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1] = c, -s, s, c
    out[..., 2, 2] = 1
    return out


def to_6d(R: np.ndarray) -> np.ndarray:
    return np.concatenate([R[..., :, 0], R[..., :, 1]], axis=-1)


def from_6d(x: np.ndarray) -> np.ndarray:
    """Gram-Schmidt: ``(..., 6) -> (..., 3, 3)``."""
    a, b = x[..., :3], x[..., 3:6]
    c0 = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-8)
    b = b - (c0 * b).sum(-1, keepdims=True) * c0
    c1 = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-8)
    c2 = np.cross(c0, c1)
    return np.stack([c0, c1, c2], axis=-1)


def window_target(R_world: np.ndarray, trans: np.ndarray, fps: float) -> np.ndarray:
    """``(N, 9)`` targets of a window of ``N + 1`` frames (the extra frame closes the last
    velocity): canonical 6D orientation and velocity (m/s)."""
    C = rot_z(-heading(R_world[:1])[0])
    R_c = C @ R_world[:-1]
    vel = (trans[1:] - trans[:-1]) * fps @ C.T
    return np.concatenate([to_6d(R_c), vel], axis=1)


class MotionSet:
    """All sequences of a dataset resampled to ``fps``: lists of ``cond (T, 51)``, root rotation
    ``(T, 3, 3)`` (SMPL body frame to world) and ``trans (T, 3)``."""

    def __init__(self, files: list[Path], fps: float):
        self.fps = fps
        self.cond, self.rot, self.trans, self.names = [], [], [], []
        for f in files:
            try:
                with np.load(f, allow_pickle=False) as d:
                    poses = np.asarray(d["poses"], np.float64)
                    trans = np.asarray(d["trans"], np.float64)
                    rate = (
                        float(d["mocap_framerate"]) if "mocap_framerate" in d else float(d["fps"])
                    )
            except (KeyError, ValueError, OSError) as err:
                raise InputError(f"not an AMASS-layout motion file ({err})", path=f) from err
            if poses.ndim != 2 or poses.shape[1] not in (156, 165) or len(trans) != len(poses):
                raise InputError(
                    f"poses {poses.shape} / trans {trans.shape}: expected (T, 156 or 165) and (T, 3)",
                    path=f,
                )
            idx = np.round(np.arange(0, len(poses) / rate, 1.0 / fps) * rate).astype(int)
            idx = idx[idx < len(poses)]
            if len(idx) < 8:
                continue
            poses, trans = poses[idx], trans[idx]
            self.cond.append(amass_cond(poses).astype(np.float32))
            self.rot.append(Rotation.from_rotvec(poses[:, :3]).as_matrix())
            self.trans.append(trans)
            self.names.append(f.name)
        if not self.cond:
            raise InputError(
                "no usable motion sequences (need >= 8 frames each)",
                path=files[0] if files else "?",
            )
        self.frames = int(sum(len(c) for c in self.cond))

    def window(self, rng, n: int) -> tuple[np.ndarray, np.ndarray]:
        """A random window: ``cond (n, 51)`` and ``target (n, 9)`` (shorter sequences are
        padded by holding their last frame). ``rng``: a numpy ``Generator`` or ``RandomState``
        (training uses numpy's global one, which the training loop seeds and checkpoints)."""
        lengths = np.array([len(c) for c in self.cond], np.float64)
        k = rng.choice(len(self.cond), p=lengths / lengths.sum())
        cond, rot, trans = self.cond[k], self.rot[k], self.trans[k]
        if len(cond) < n + 1:
            pad = n + 1 - len(cond)
            cond = np.concatenate([cond, np.repeat(cond[-1:], pad, 0)])
            rot = np.concatenate([rot, np.repeat(rot[-1:], pad, 0)])
            trans = np.concatenate([trans, np.repeat(trans[-1:], pad, 0)])
        s = min(int(rng.random() * (len(cond) - n)), len(cond) - n - 1)
        return cond[s : s + n], window_target(rot[s : s + n + 1], trans[s : s + n + 1], self.fps)


def dataset_files(path: str | Path) -> list[Path]:
    """The ``.npz`` files of a dataset: a file, or a folder searched recursively."""
    path = Path(path)
    if not path.exists():
        raise InputError("motion dataset not found", path=path)
    files = [path] if path.is_file() else sorted(path.rglob("*.npz"))
    if not files:
        raise InputError("no .npz motion files in the dataset folder", path=path)
    return files
