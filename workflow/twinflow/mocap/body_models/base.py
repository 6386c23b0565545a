"""The interface every body-model backend implements for the fitting code.

A backend is a ``torch.nn.Module`` with a fixed set of pose joints (index 0 is the global
orientation), a shape vector shared by all frames, optional per-frame expression coefficients, and
a mapping onto the common skeleton (:mod:`twinflow.mocap.skeleton`). Coordinates are OpenCV camera
coordinates in metres (x right, y down, z forward) once ``transl`` and the global orientation are
applied; before that, each backend has its own rest frame (``to_smpl_frame`` relates it to SMPL's
x-left, y-up, z-forward frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from twinflow.mocap import skeleton


@dataclass
class Hinge:
    """A joint that bends one way about ``axis`` (rest-frame unit vector, positive = allowed).

    ``off_axis`` weights rotation about other axes (1 for a pure hinge, lower for a joint that
    also abducts, such as a finger's knuckle).
    """

    joint: int
    axis: np.ndarray
    off_axis: float = 1.0
    weight: float = 1.0


@dataclass
class PosePrior:
    """A Gaussian prior on the axis-angle pose around ``mean`` with per-joint ``weight`` (0 for
    joints the fit does not move), plus hinge limits."""

    mean: np.ndarray  # (J, 3)
    weight: np.ndarray  # (J,)
    hinges: list[Hinge] = field(default_factory=list)


class BodyModel(torch.nn.Module):
    """Base class; see the module docstring. Subclasses set the attributes in ``__init__``."""

    name: str = "?"
    n_joints: int
    n_shape: int
    n_expr: int
    joint_names: list[str]
    parts: dict[str, list[int]]  # "body", "lhand", "rhand", "face" -> pose joint indices
    point_defined: np.ndarray  # (K,) bool: common points this backend defines
    faces: np.ndarray  # (F, 3) int
    to_smpl_frame: np.ndarray  # (3, 3)
    prior: PosePrior

    def upright_orient(self) -> np.ndarray:
        """Axis-angle global orientation that stands the model upright facing the camera."""
        raise NotImplementedError

    def initial_shape(self) -> torch.Tensor:
        """``(n_shape,)`` mean shape parameters."""
        return torch.zeros(self.n_shape)

    def shape_penalty(self, shape: torch.Tensor) -> torch.Tensor:
        return (shape - self.initial_shape().to(shape)).pow(2).sum()

    def clamp_shape(self, shape: torch.Tensor) -> None:
        """Project shape parameters back into their valid range in place (after a step)."""

    def forward(
        self,
        pose: torch.Tensor,
        transl: torch.Tensor,
        shape: torch.Tensor,
        expression: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``points (B, K, 3)`` (common skeleton; undefined points are 0) and ``kin (B, 17, 3)``
        in camera coordinates for ``pose (B, J, 3)``, ``transl (B, 3)``, ``shape (S,)``."""
        raise NotImplementedError

    def vertices(
        self,
        pose: torch.Tensor,
        transl: torch.Tensor,
        shape: torch.Tensor,
        expression: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(B, V, 3)`` mesh vertices in camera coordinates (for rendering)."""
        raise NotImplementedError

    def rest_kin(self, shape: torch.Tensor | None = None) -> np.ndarray:
        """``(17, 3)`` kinematic joints of the rest pose in the rest frame (root at 0)."""
        raise NotImplementedError

    def export(self, fit: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Backend-specific keys of the output ``.npz`` from the fitted parameters."""
        raise NotImplementedError

    def params_from_npz(self, data: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """``pose``, ``transl``, ``shape``, ``expression`` tensors back from an output ``.npz``."""
        raise NotImplementedError

    def rest_height(self, shape: torch.Tensor | None = None) -> float:
        """Standing height of the rest mesh in metres (top of the head to the soles)."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "n_joints": self.n_joints,
            "n_shape": self.n_shape,
            "n_expr": self.n_expr,
            "points_defined": int(self.point_defined.sum()),
            "points_total": skeleton.N_POINTS,
        }


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, ``(..., 3) -> (..., 3, 3)``, with a stable gradient at zero."""
    theta2 = (aa * aa).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2 + 1e-12)
    k = aa / theta
    kx, ky, kz = k.unbind(-1)
    zero = torch.zeros_like(kx)
    kmat = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], -1).reshape(
        *aa.shape[:-1], 3, 3
    )
    s = torch.sin(theta)[..., None]
    c = torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(kmat)
    small = theta2[..., None] < 1e-8
    # first-order expansion near zero keeps the gradient exact there
    kmat_raw = torch.stack(
        [
            zero,
            -aa[..., 2],
            aa[..., 1],
            aa[..., 2],
            zero,
            -aa[..., 0],
            -aa[..., 1],
            aa[..., 0],
            zero,
        ],
        -1,
    ).reshape(*aa.shape[:-1], 3, 3)
    rot = eye + s * kmat + (1 - c) * (kmat @ kmat)
    return torch.where(small, eye + kmat_raw, rot)


def matrix_to_axis_angle(rot: np.ndarray) -> np.ndarray:
    """``(..., 3, 3) -> (..., 3)`` axis-angle (numpy, via scipy)."""
    from scipy.spatial.transform import Rotation

    shape = rot.shape[:-2]
    return Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_rotvec().reshape(*shape, 3)


def hinge_axis(bone_dir: np.ndarray, bend_towards: np.ndarray) -> np.ndarray:
    """The rotation axis that swings a bone pointing along ``bone_dir`` towards ``bend_towards``
    for a positive angle: ``normalize(bone_dir x bend_towards)``."""
    axis = np.cross(bone_dir, bend_towards)
    return axis / max(np.linalg.norm(axis), 1e-9)


def palm_normal(wrist, index_mcp, middle_mcp, pinky_mcp, left: bool) -> np.ndarray:
    """Unit normal out of the palm (the side fingers curl to) from rest joint positions, for
    bodies in SMPL-like handedness (x = the person's left)."""
    n = np.cross(middle_mcp - wrist, index_mcp - pinky_mcp)
    n = n / max(np.linalg.norm(n), 1e-9)
    return n if left else -n


def standard_hinges(
    rest: dict[str, np.ndarray],
    joints: dict[str, int],
    forward: np.ndarray,
    fingers: dict[str, list[tuple[str, str]]],
) -> list[Hinge]:
    """Knee, elbow and finger limits from rest joint positions (backend-neutral).

    ``rest``: rest positions by name (``left_knee``, ``left_ankle``, ``left_elbow``,
    ``left_wrist``, hand joints ``left_index_mcp`` ...); ``joints``: pose joint index of the bone
    that bends at each hinge (``left_knee`` -> the shin's joint); ``fingers``: per side, the
    ``(joint name, child name)`` segments of the four fingers (thumb excluded).
    """
    hinges = []
    back = -forward
    for side in ("left", "right"):
        knee_dir = rest[f"{side}_ankle"] - rest[f"{side}_knee"]
        hinges.append(Hinge(joints[f"{side}_knee"], hinge_axis(knee_dir, back), 1.0, 1.0))
        elbow_dir = rest[f"{side}_wrist"] - rest[f"{side}_elbow"]
        hinges.append(Hinge(joints[f"{side}_elbow"], hinge_axis(elbow_dir, forward), 0.5, 1.0))
        palm = palm_normal(
            rest[f"{side}_wrist"],
            rest[f"{side}_index_mcp"],
            rest[f"{side}_middle_mcp"],
            rest[f"{side}_pinky_mcp"],
            left=side == "left",
        )
        for k, (joint, child) in enumerate(fingers[side]):
            seg = rest[child] - rest[joint]
            knuckle = k % 3 == 0
            hinges.append(Hinge(joints[joint], hinge_axis(seg, palm), 0.3 if knuckle else 1.0, 0.5))
    return hinges
