"""The ``smplx`` backend: an SMPL-X model file (``.npz``) through the ``smplx`` package.

The file is user-supplied (licence-restricted): ``models/smplx/SMPLX_NEUTRAL.npz`` registered as
``smplx-neutral`` in ``models/registry.yaml``, or any path (config ``mocap: smplx_model:``).
``smplx`` 0.1.28 reads the ``.npz`` keys v_template, f, shapedirs, posedirs, J_regressor,
kintree_table, weights, hands_components{l,r}, hands_mean{l,r}, lmk_faces_idx, lmk_bary_coords
(+ dynamic_lmk_* for the face contour, unused here).

Parameters: ``pose (B, 55, 3)`` axis-angle in SMPL-X joint order (0 global orientation, 1-21 body,
22 jaw, 23-24 eyes, 25-39 left hand, 40-54 right hand; full hand poses, no PCA, flat hand mean),
``shape`` = 10 betas, ``expression (B, 10)``, ``transl (B, 3)`` (smplx's ``transl``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from twinflow.errors import ModelFileError
from twinflow.mocap import skeleton
from twinflow.mocap.body_models.base import BodyModel, PosePrior, standard_hinges

log = logging.getLogger(__name__)

N_BETAS = 10
N_EXPR = 10
# extra joints smplx appends after the 55: nose, reye, leye, rear, lear, LBigToe, LSmallToe,
# LHeel, RBigToe, RSmallToe, RHeel, l thumb/index/middle/ring/pinky tips, r tips; then the 51
# static face landmarks (iBUG 17-67)
_EXTRA = {
    "nose": 55, "reye": 56, "leye": 57, "rear": 58, "lear": 59, "LBigToe": 60, "LSmallToe": 61,
    "LHeel": 62, "RBigToe": 63, "RSmallToe": 64, "RHeel": 65,
}  # fmt: skip
_TIPS = {"l": 66, "r": 71}  # + thumb 0, index 1, middle 2, ring 3, pinky 4
_LMK = 76  # + (ibug - 17)

_POSE = {
    "nose": 55, "left_eye": 57, "right_eye": 56, "left_ear": 59, "right_ear": 58,
    "left_eye_inner": _LMK + 42 - 17, "left_eye_outer": _LMK + 45 - 17,
    "right_eye_inner": _LMK + 39 - 17, "right_eye_outer": _LMK + 36 - 17,
    "mouth_left": _LMK + 54 - 17, "mouth_right": _LMK + 48 - 17,
    "left_shoulder": 16, "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19,
    "left_wrist": 20, "right_wrist": 21, "left_pinky": 31, "right_pinky": 46,
    "left_index": 25, "right_index": 40, "left_thumb": 39, "right_thumb": 54,
    "left_hip": 1, "right_hip": 2, "left_knee": 4, "right_knee": 5, "left_ankle": 7,
    "right_ankle": 8, "left_heel": 62, "right_heel": 65, "left_foot_index": 60,
    "right_foot_index": 63,
}  # fmt: skip
# hand joints relative to the hand's first joint (index1): index 0-2, middle 3-5, pinky 6-8,
# ring 9-11, thumb 12-14
_HAND = {
    "thumb_cmc": 12, "thumb_mcp": 13, "thumb_ip": 14, "index_mcp": 0, "index_pip": 1,
    "index_dip": 2, "middle_mcp": 3, "middle_pip": 4, "middle_dip": 5, "ring_mcp": 9,
    "ring_pip": 10, "ring_dip": 11, "pinky_mcp": 6, "pinky_pip": 7, "pinky_dip": 8,
}  # fmt: skip
_TIP_ORDER = {"thumb": 0, "index": 1, "middle": 2, "ring": 3, "pinky": 4}
KIN_JOINTS = skeleton.KIN_SMPL

JOINT_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye", "right_eye",
] + [
    f"{side}_{finger}{k}"
    for side in ("left", "right")
    for finger in ("index", "middle", "pinky", "ring", "thumb")
    for k in (1, 2, 3)
]  # fmt: skip


def point_index() -> np.ndarray:
    """For each common point, its index into smplx's output ``joints`` (127 with landmarks)."""
    out = []
    for name in skeleton.POINTS:
        group, point = name.split("/")
        if group == "pose":
            out.append(_POSE[point])
        elif group in ("lhand", "rhand"):
            side = "l" if group == "lhand" else "r"
            wrist, base = (20, 25) if side == "l" else (21, 40)
            if point == "wrist":
                out.append(wrist)
            elif point.endswith("_tip"):
                out.append(_TIPS[side] + _TIP_ORDER[point[:-4]])
            else:
                out.append(base + _HAND[point])
        else:
            out.append(_LMK + int(point[4:]) - 17)
    return np.asarray(out)


PRIOR_WEIGHT = {3: 4.0, 6: 4.0, 9: 4.0, 12: 3.0, 13: 6.0, 14: 6.0, 15: 1.0, 10: 3.0, 11: 3.0}


class SmplxBody(BodyModel):
    """SMPL-X behind the :class:`BodyModel` interface (see the module docstring)."""

    name = "smplx"

    def __init__(self, model_path: str | Path, gender: str = "neutral"):
        super().__init__()
        import smplx

        path = Path(model_path)
        if not path.exists():
            raise ModelFileError("SMPL-X model file not found", path=path)
        try:
            self.model = smplx.SMPLX(
                str(path),
                gender=gender,
                use_pca=False,
                flat_hand_mean=True,
                num_betas=N_BETAS,
                num_expression_coeffs=N_EXPR,
                use_face_contour=False,
                batch_size=1,
            )
        except Exception as err:  # smplx raises bare KeyErrors/asserts on a wrong file
            raise ModelFileError(
                f"not a usable SMPL-X .npz model ({type(err).__name__}: {err})", path=path
            ) from err
        self.model_path = str(path)
        self.gender = gender
        self.n_joints = 55
        self.n_shape = N_BETAS
        self.n_expr = N_EXPR
        self.joint_names = JOINT_NAMES
        self.parts = {
            "body": list(range(1, 22)),
            "face": [22],
            "lhand": list(range(25, 40)),
            "rhand": list(range(40, 55)),
        }
        self.faces = np.asarray(self.model.faces, np.int64)
        self.register_buffer("pidx", torch.as_tensor(point_index()))
        self.point_defined = np.ones(skeleton.N_POINTS, bool)
        self.to_smpl_frame = np.eye(3)
        self.prior = self._build_prior()

    def _call(self, pose, transl, shape, expression):
        B = pose.shape[0]
        betas = shape.reshape(1, -1).expand(B, -1)
        if expression is None:
            expression = pose.new_zeros(B, N_EXPR)
        return self.model(
            betas=betas,
            global_orient=pose[:, 0],
            body_pose=pose[:, 1:22].reshape(B, -1),
            jaw_pose=pose[:, 22],
            leye_pose=pose[:, 23],
            reye_pose=pose[:, 24],
            left_hand_pose=pose[:, 25:40].reshape(B, -1),
            right_hand_pose=pose[:, 40:55].reshape(B, -1),
            expression=expression,
            transl=transl,
            return_verts=True,
        )

    def forward(self, pose, transl, shape, expression=None):
        out = self._call(pose, transl, shape, expression)
        joints = out.joints
        return {"points": joints[:, self.pidx], "kin": joints[:, KIN_JOINTS]}

    @torch.no_grad()
    def vertices(self, pose, transl, shape, expression=None, chunk: int = 32):
        parts = []
        for s in range(0, len(pose), chunk):
            e = None if expression is None else expression[s : s + chunk]
            parts.append(self._call(pose[s : s + chunk], transl[s : s + chunk], shape, e).vertices)
        return torch.cat(parts, 0)

    def rest_joints(self, shape: torch.Tensor | None = None) -> np.ndarray:
        dev = self.pidx.device
        shape = torch.zeros(N_BETAS) if shape is None else shape
        with torch.no_grad():
            z = torch.zeros(1, 55, 3, device=dev)
            out = self._call(z, z[:, 0], shape.to(dev), None)
        return out.joints[0].cpu().numpy()

    def rest_kin(self, shape=None) -> np.ndarray:
        j = self.rest_joints(shape)
        return j[KIN_JOINTS] - j[0]

    def upright_orient(self) -> np.ndarray:
        # SMPL-X: x = the person's left, y up, z forward -> camera: x right, y down, z forward
        return np.array([np.pi, 0.0, 0.0])

    def _build_prior(self) -> PosePrior:
        weight = np.zeros(55)
        weight[1:22] = 1.0
        for j, v in PRIOR_WEIGHT.items():
            weight[j] = v
        weight[22] = 1.0
        weight[25:55] = 0.3
        mean = np.zeros((55, 3))
        mean[16] = (0, 0, -1.1)  # arms down from the T-pose
        mean[17] = (0, 0, 1.1)
        rest = self.rest_joints()
        pos, joints = {}, {}
        for side, (knee, ankle, elbow, wrist, base) in (
            ("left", (4, 7, 18, 20, 25)),
            ("right", (5, 8, 19, 21, 40)),
        ):
            pos[f"{side}_knee"], pos[f"{side}_ankle"] = rest[knee], rest[ankle]
            pos[f"{side}_elbow"], pos[f"{side}_wrist"] = rest[elbow], rest[wrist]
            joints[f"{side}_knee"], joints[f"{side}_elbow"] = knee, elbow
            for name, off in _HAND.items():
                pos[f"{side}_{name}"] = rest[base + off]
                joints[f"{side}_{name}"] = base + off
            tips = _TIPS[side[0]]
            for f in ("index", "middle", "ring", "pinky"):
                pos[f"{side}_{f}_tip"] = rest[tips + _TIP_ORDER[f]]
        fingers = {
            side: [
                (f"{side}_{f}_{a}", f"{side}_{f}_{b}")
                for f in ("index", "middle", "ring", "pinky")
                for a, b in (("mcp", "pip"), ("pip", "dip"), ("dip", "tip"))
            ]
            for side in ("left", "right")
        }
        hinges = standard_hinges(pos, joints, np.array([0.0, 0.0, 1.0]), fingers)
        return PosePrior(mean=mean, weight=weight, hinges=hinges)

    def params_from_npz(self, data):
        f = lambda k: torch.as_tensor(np.asarray(data[k]), dtype=torch.float32)  # noqa: E731
        return {
            "pose": f("poses"),
            "transl": f("trans"),
            "shape": f("betas"),
            "expression": f("expression"),
        }

    def rest_height(self, shape=None) -> float:
        dev = self.pidx.device
        shape = torch.zeros(N_BETAS) if shape is None else torch.as_tensor(shape).float()
        with torch.no_grad():
            z = torch.zeros(1, 55, 3, device=dev)
            v = self._call(z, z[:, 0], shape.to(dev), None).vertices[0]
        return float(v[:, 1].max() - v[:, 1].min())  # SMPL-X: y up

    def export(self, fit: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {
            "betas": fit["shape"].astype(np.float32),
            "poses": fit["pose"].astype(np.float32),
            "trans": fit["transl"].astype(np.float32),
            "expression": fit["expression"].astype(np.float32),
            "gender": np.array(self.gender),
            "joint_names_smplx": np.array(JOINT_NAMES),
        }
