"""Head pose and keypoint maths of face-vid2vid (the re-implementation's ``modules/model.py`` and
``demo.py`` / ``animate.py`` helpers).

A frame's 3-D keypoints are the source's canonical keypoints rotated, translated and moved by
expression deltas: ``kp = R(yaw, pitch, roll) kp_c + t + exp``. Angles are in degrees, read
from 66 logits as the softmax-expected bin (``3 * bin - 99``). ``R = R_x(pitch) R_y(yaw)
R_z(roll)`` with degrees turned into radians with ``3.14 / 180`` (the reference's constant, not
pi: kept so that the same angles give the same keypoints).

Inference options of the reference (``demo.py``): relative motion (the driving keypoints'
change since an initial driving frame, added to the source's keypoints), ``adapt_scale``
(that change scaled by the square root of the ratio of the keypoints' convex-hull volumes) and
free view (fixed angles instead of the driving frame's; twinflow also offers offsets, see
:func:`twinflow.meshhead.driving`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

REFERENCE_PI = 3.14  # the reference's degrees-to-radians constant


def degrees(logits: torch.Tensor) -> torch.Tensor:
    """``(B, 66)`` bin logits -> ``(B,)`` degrees (softmax expectation of ``3 * bin - 99``)."""
    idx = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return torch.sum(F.softmax(logits, dim=1) * idx, dim=1) * 3 - 99


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` rotation ``R_x(pitch) @ R_y(yaw) @ R_z(roll)`` from angles ``(B,)`` in degrees."""
    yaw, pitch, roll = (a / 180 * REFERENCE_PI for a in (yaw, pitch, roll))
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)

    def mat(*rows):
        return torch.stack(rows, dim=1).view(-1, 3, 3)

    pitch_mat = mat(
        one, zero, zero, zero, pitch.cos(), -pitch.sin(), zero, pitch.sin(), pitch.cos()
    )
    yaw_mat = mat(yaw.cos(), zero, yaw.sin(), zero, one, zero, -yaw.sin(), zero, yaw.cos())
    roll_mat = mat(roll.cos(), -roll.sin(), zero, roll.sin(), roll.cos(), zero, zero, zero, one)
    return torch.einsum("bij,bjk,bkm->bim", pitch_mat, yaw_mat, roll_mat)


def pose_degrees(he: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The estimator's ``(yaw, pitch, roll)`` in degrees, each ``(B,)``."""
    return degrees(he["yaw"]), degrees(he["pitch"]), degrees(he["roll"])


def transform_keypoints(
    kp_canonical: dict[str, torch.Tensor],
    yaw: torch.Tensor,
    pitch: torch.Tensor,
    roll: torch.Tensor,
    t: torch.Tensor,
    exp: torch.Tensor,
) -> dict[str, torch.Tensor | None]:
    """``{"value": R kp_c + t + exp (B, K, 3), "jacobian": R J_c or None}`` from angles in
    degrees ``(B,)``, translation ``(B, 3)`` and expression ``(B, 3K)``."""
    kp = kp_canonical["value"]
    rot = rotation_matrix(yaw, pitch, roll)
    value = torch.einsum("bmp,bkp->bkm", rot, kp) + t[:, None, :] + exp.view(exp.shape[0], -1, 3)
    jac = kp_canonical.get("jacobian")
    if jac is not None:
        jac = torch.einsum("bmp,bkps->bkms", rot, jac)
    return {"value": value, "jacobian": jac}


def keypoint_transformation(
    kp_canonical: dict[str, torch.Tensor],
    he: dict[str, torch.Tensor],
    *,
    yaw: float | None = None,
    pitch: float | None = None,
    roll: float | None = None,
) -> dict[str, torch.Tensor | None]:
    """The keypoints of the frame whose estimator output is ``he``; ``yaw``/``pitch``/``roll``
    given in degrees replace the estimated angle (the reference's free view)."""
    angles = []
    for name, fixed in (("yaw", yaw), ("pitch", pitch), ("roll", roll)):
        if fixed is None:
            angles.append(degrees(he[name]))
        else:
            angles.append(torch.full_like(he["t"][:, 0], float(fixed)))
    return transform_keypoints(kp_canonical, *angles, he["t"], he["exp"])


def hull_scale(kp_source: torch.Tensor, kp_initial: torch.Tensor) -> float:
    """``sqrt(volume_s) / sqrt(volume_d)`` of the convex hulls of the first batch item's 3-D
    keypoints (``adapt_scale``)."""
    from scipy.spatial import ConvexHull

    vs = ConvexHull(kp_source[0].detach().cpu().numpy()).volume
    vd = ConvexHull(kp_initial[0].detach().cpu().numpy()).volume
    return float(np.sqrt(vs) / np.sqrt(vd))


def normalize_kp(
    kp_source: dict[str, torch.Tensor],
    kp_driving: dict[str, torch.Tensor],
    kp_driving_initial: dict[str, torch.Tensor],
    *,
    adapt_movement_scale: bool = False,
    use_relative_movement: bool = False,
    use_relative_jacobian: bool = False,
) -> dict[str, torch.Tensor]:
    """The reference's relative motion: ``kp_s + scale * (kp_d - kp_d0)`` (and the jacobian's
    relative change) when ``use_relative_movement``, else ``kp_driving`` unchanged."""
    scale = (
        hull_scale(kp_source["value"], kp_driving_initial["value"]) if adapt_movement_scale else 1
    )
    out = dict(kp_driving)
    if use_relative_movement:
        out["value"] = (kp_driving["value"] - kp_driving_initial["value"]) * scale + kp_source[
            "value"
        ]
        if use_relative_jacobian:
            change = torch.matmul(
                kp_driving["jacobian"], torch.inverse(kp_driving_initial["jacobian"])
            )
            out["jacobian"] = torch.matmul(change, kp_source["jacobian"])
    return out
