"""The ``anny`` backend: NAVER's Anny body model (PyPI ``anny``, CC0 data, Apache-2.0 code).

Anny is a MakeHuman-based body with 104 bones, 13,718 vertices, a phenotype shape space (gender,
age, muscle, weight, height, proportions, each 0..1) and optional facial-action blendshapes. It
ships its data in the wheel; the first construction in a fresh environment builds and caches the
model data under ``~/.cache/anny`` (about 2-3 minutes on 2 cores, a few seconds afterwards;
``ANNY_CACHE_DIR`` moves the cache).

Parameters as the fit sees them:

* ``pose (B, 104, 3)``: axis-angle per bone in anny's ``local-ref`` parameterisation (deltas in
  world-aligned axes); index 0 (the root, at the pelvis) is the global orientation in camera
  axes. Only the bones in ``FREE_BODY`` / ``FREE_HANDS`` are fitted; twist, toe, metacarpal and
  eye bones stay at rest.
* ``shape (6,)``: the phenotype values, clamped to 0..1.
* ``expression (B, E)``: facial-action weights (``FACIAL_ACTIONS``), clamped to 0..1.
* ``transl (B, 3)``: the root (pelvis) position in camera coordinates, metres.

Forward kinematics and skinning are re-implemented here in plain PyTorch, exactly equivalent to
``anny.Anny.forward`` (checked in the tests) but evaluating only the points the fit needs: every
common-skeleton point is a fixed linear combination of rest vertices or a bone head, which reduces
to a per-bone moment, so a step over hundreds of frames costs milliseconds.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from twinflow.mocap import skeleton
from twinflow.mocap.body_models.anny_face import ANNY_FACE_VERTICES, ANNY_FINGERTIP_VERTICES
from twinflow.mocap.body_models.base import (
    BodyModel,
    PosePrior,
    axis_angle_to_matrix,
    standard_hinges,
)

log = logging.getLogger(__name__)

FACIAL_ACTIONS = (
    "jawOpen",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthFunnel",
    "mouthPucker",
    "browInnerUp",
    "eyeBlinkLeft",
    "eyeBlinkRight",
)

FREE_BODY = [
    "root", "upperleg01.L", "upperleg01.R", "lowerleg01.L", "lowerleg01.R", "foot.L", "foot.R",
    "spine05", "spine04", "spine03", "spine02", "spine01", "clavicle.L", "clavicle.R",
    "upperarm01.L", "upperarm01.R", "lowerarm01.L", "lowerarm01.R", "wrist.L", "wrist.R",
    "neck01", "neck02", "neck03", "head",
]  # fmt: skip
FINGERS = [f"finger{f}-{k}" for f in range(1, 6) for k in range(1, 4)]
FREE_HANDS = {"L": [f"{b}.L" for b in FINGERS], "R": [f"{b}.R" for b in FINGERS]}

# prior weight per free bone (L2 on axis-angle around the rest A-pose)
PRIOR_WEIGHT = {
    "root": 0.0,
    "spine05": 4.0,
    "spine04": 4.0,
    "spine03": 4.0,
    "spine02": 4.0,
    "spine01": 4.0,
    "clavicle": 6.0,
    "neck01": 3.0,
    "neck02": 3.0,
    "neck03": 3.0,
    "head": 1.0,
    "foot": 1.0,
    "wrist": 0.5,
    "finger": 0.3,
}

KIN_BONES = [
    "root", "upperleg01.L", "upperleg01.R", "lowerleg01.L", "lowerleg01.R", "foot.L", "foot.R",
    "toe3-1.L", "toe3-1.R", "neck01", "head", "upperarm01.L", "upperarm01.R", "lowerarm01.L",
    "lowerarm01.R", "wrist.L", "wrist.R",
]  # fmt: skip

# common point -> ("coco", label) | ("bone", bone) | ("vertex", index)
_HAND_BONES = {
    "wrist": "wrist",
    "thumb_cmc": "finger1-1",
    "thumb_mcp": "finger1-2",
    "thumb_ip": "finger1-3",
    "index_mcp": "finger2-1",
    "index_pip": "finger2-2",
    "index_dip": "finger2-3",
    "middle_mcp": "finger3-1",
    "middle_pip": "finger3-2",
    "middle_dip": "finger3-3",
    "ring_mcp": "finger4-1",
    "ring_pip": "finger4-2",
    "ring_dip": "finger4-3",
    "pinky_mcp": "finger5-1",
    "pinky_pip": "finger5-2",
    "pinky_dip": "finger5-3",
}
_POSE_COCO = {
    "nose": "nose",
    "left_eye": "left_eye",
    "right_eye": "right_eye",
    "left_ear": "left_ear",
    "right_ear": "right_ear",
    "left_shoulder": "left_shoulder",
    "right_shoulder": "right_shoulder",
    "left_elbow": "left_elbow",
    "right_elbow": "right_elbow",
    "left_wrist": "left_wrist",
    "right_wrist": "right_wrist",
    "left_hip": "left_hip",
    "right_hip": "right_hip",
    "left_knee": "left_knee",
    "right_knee": "right_knee",
    "left_ankle": "left_ankle",
    "right_ankle": "right_ankle",
    "left_heel": "left_heel",
    "right_heel": "right_heel",
    "left_foot_index": "left_big_toe",
    "right_foot_index": "right_big_toe",
}
_POSE_IBUG = {  # pose face points that coincide with iBUG points
    "left_eye_inner": 42,
    "left_eye_outer": 45,
    "right_eye_inner": 39,
    "right_eye_outer": 36,
    "mouth_left": 54,
    "mouth_right": 48,
}
_POSE_BONES = {
    "left_pinky": "finger5-1.L",
    "right_pinky": "finger5-1.R",
    "left_index": "finger2-1.L",
    "right_index": "finger2-1.R",
    "left_thumb": "finger1-3.L",
    "right_thumb": "finger1-3.R",
}


def _mm3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Products of 3x3 matrices stored as ``(..., 3, 3, B)`` (frames last)."""
    return (a[..., :, :, None, :] * b[..., None, :, :, :]).sum(-3)


def _rodrigues_last(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(N, 3, B)`` to rotation matrices ``(N, 3, 3, B)``."""
    theta = torch.sqrt((aa * aa).sum(1, keepdim=True) + 1e-12)  # (N, 1, B)
    k = aa / theta
    kx, ky, kz = k[:, 0], k[:, 1], k[:, 2]
    s = torch.sin(theta[:, 0])
    c1 = 1 - torch.cos(theta[:, 0])
    rows = [
        1 - c1 * (ky * ky + kz * kz), c1 * kx * ky - s * kz, c1 * kx * kz + s * ky,
        c1 * kx * ky + s * kz, 1 - c1 * (kx * kx + kz * kz), c1 * ky * kz - s * kx,
        c1 * kx * kz - s * ky, c1 * ky * kz + s * kx, 1 - c1 * (kx * kx + ky * ky),
    ]  # fmt: skip
    return torch.stack(rows, 1).reshape(aa.shape[0], 3, 3, aa.shape[2])


def point_sources() -> list[tuple[str, object]]:
    """How anny defines each common point (see :mod:`twinflow.mocap.skeleton`)."""
    out: list[tuple[str, object]] = []
    for name in skeleton.POINTS:
        group, point = name.split("/")
        if group == "pose":
            if point in _POSE_COCO:
                out.append(("coco", _POSE_COCO[point]))
            elif point in _POSE_IBUG:
                out.append(("vertex", ANNY_FACE_VERTICES[_POSE_IBUG[point]]))
            else:
                out.append(("bone", _POSE_BONES[point]))
        elif group in ("lhand", "rhand"):
            side = "L" if group == "lhand" else "R"
            if point.endswith("_tip"):
                out.append(("vertex", ANNY_FINGERTIP_VERTICES[side][point[:-4]]))
            else:
                out.append(("bone", f"{_HAND_BONES[point]}.{side}"))
        else:
            out.append(("vertex", ANNY_FACE_VERTICES[int(point[4:])]))
    return out


def load_anny(facial_actions=FACIAL_ACTIONS):
    """Construct (or load from anny's cache) the Anny model in float32."""
    import warp

    warp.config.log_level = warp.LOG_WARNING  # no banner on stdout
    import anny

    t0 = time.perf_counter()
    model = anny.Anny(facial_actions=list(facial_actions) if facial_actions else "none")
    model = model.to(torch.float32)
    log.info("anny model ready in %.1f s", time.perf_counter() - t0)
    return model


class AnnyBody(BodyModel):
    """Anny behind the :class:`BodyModel` interface (see the module docstring)."""

    name = "anny"

    def __init__(self, facial_actions=FACIAL_ACTIONS, model=None):
        super().__init__()
        import anny

        self.model = model if model is not None else load_anny(facial_actions)
        m = self.model
        self.facial_actions = list(m.facial_action_labels)
        self.bone_labels = list(m.bone_labels)
        self.joint_names = self.bone_labels
        self.n_joints = len(self.bone_labels)
        self.n_shape = len(m.phenotype_labels)
        self.phenotype_labels = list(m.phenotype_labels)
        self.n_expr = len(self.facial_actions)
        self.faces = m.get_triangular_faces().cpu().numpy().astype(np.int64)
        idx = {b: i for i, b in enumerate(self.bone_labels)}
        self.parts = {
            "body": [idx[b] for b in FREE_BODY if b != "root"],
            "lhand": [idx[b] for b in FREE_HANDS["L"]],
            "rhand": [idx[b] for b in FREE_HANDS["R"]],
            "face": [],
        }
        parents = np.asarray(m.bone_parents, np.int64)
        self.register_buffer("parents", torch.as_tensor(parents))
        self._plan_fk(parents, [0] + self.parts["body"] + self.parts["lhand"] + self.parts["rhand"])
        self.register_buffer("ref_orient", m.reference_bone_orientations.detach().clone())
        self.register_buffer("kin_index", torch.as_tensor([idx[b] for b in KIN_BONES]))
        # skinning weights (V, 9)
        self.register_buffer("vw", m.vertex_bone_weights.detach().clone())
        self.register_buffer("vi", m.vertex_bone_indices.detach().clone().long())
        self._build_points(anny, idx)
        self.to_smpl_frame = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # z-up,-y fwd -> SMPL
        self.prior = self._build_prior(idx)

    def _plan_fk(self, parents: np.ndarray, free: list[int]) -> None:
        depth = np.zeros(len(parents), np.int64)
        for i in range(1, len(parents)):
            depth[i] = depth[parents[i]] + 1
        self._free_idx = torch.as_tensor(sorted(free))
        free_row = {int(j): r for r, j in enumerate(self._free_idx.tolist())}
        self._free_mask = np.zeros(len(parents), bool)
        self._free_mask[list(free_row)] = True
        order = [0]
        plan = []
        previous = np.array([0])
        for d in range(1, depth.max() + 1):
            level = np.nonzero(depth == d)[0]
            local = {int(j): i for i, j in enumerate(previous)}
            par_local = torch.as_tensor([local[int(parents[j])] for j in level])
            f_local = [i for i, j in enumerate(level) if int(j) in free_row]
            f_rows = [free_row[int(level[i])] for i in f_local]
            plan.append(
                (
                    torch.as_tensor(level),
                    par_local,
                    torch.as_tensor(f_local, dtype=torch.long),
                    torch.as_tensor(f_rows, dtype=torch.long),
                )
            )
            order += level.tolist()
            previous = level
        self._level_plan = plan
        self._fk_inverse = torch.as_tensor(np.argsort(order))
        self._plan_cache: dict = {}

    # -- point tables ------------------------------------------------------------------------
    def _build_points(self, anny, idx: dict[str, int]) -> None:
        coco = anny.KeypointsRegressor.coco(self.model)
        coco_w = coco.regression_weights.detach().cpu().numpy()
        coco_labels = list(coco.labels)
        entries_p, entries_v, entries_c = [], [], []
        bone_p, bone_b = [], []
        defined = np.zeros(skeleton.N_POINTS, bool)
        for p, (kind, ref) in enumerate(point_sources()):
            if kind == "bone":
                bone_p.append(p)
                bone_b.append(idx[ref])
            elif kind == "vertex":
                entries_p.append(p)
                entries_v.append(int(ref))
                entries_c.append(1.0)
            else:
                w = coco_w[coco_labels.index(ref)]
                nz = np.nonzero(np.abs(w) > 1e-7)[0]
                entries_p += [p] * len(nz)
                entries_v += nz.tolist()
                entries_c += (w[nz] / w[nz].sum()).tolist()
            defined[p] = True
        self.point_defined = defined
        # expand vertex entries over their skinning bones: (point, vertex, bone, coefficient)
        vw = self.vw.cpu().numpy()
        vi = self.vi.cpu().numpy()
        ev = np.asarray(entries_v)
        ep = np.repeat(np.asarray(entries_p), vw.shape[1])
        eb = vi[ev].reshape(-1)
        ec = (np.asarray(entries_c)[:, None] * vw[ev]).reshape(-1)
        ev = np.repeat(ev, vw.shape[1])
        keep = np.abs(ec) > 1e-8
        self.register_buffer("e_p", torch.as_tensor(ep[keep]))
        used, e_local = np.unique(ev[keep], return_inverse=True)
        self.register_buffer("e_v", torch.as_tensor(e_local.reshape(-1)))  # into used vertices
        self.register_buffer("used_vertices", torch.as_tensor(used))
        self.register_buffer("used_template", self.model.template_vertices[used].detach().clone())
        self.register_buffer("used_blendshapes", self.model.blendshapes[:, used].detach().clone())
        self.register_buffer("e_b", torch.as_tensor(eb[keep]))
        self.register_buffer("e_c", torch.as_tensor(ec[keep], dtype=torch.float32))
        n_b = self.n_joints
        # (point, bone) pairs: point = sum over its pairs of S_b m_pair + c_pair w_b
        pair_key = np.concatenate([ep[keep] * n_b + eb[keep], np.asarray(bone_p) * n_b + bone_b])
        pairs, e_pair = np.unique(pair_key, return_inverse=True)
        self.register_buffer("pair_p", torch.as_tensor(pairs // n_b))
        self.register_buffer("pair_b", torch.as_tensor(pairs % n_b))
        self.register_buffer("e_pair", torch.as_tensor(e_pair[: int(keep.sum())].reshape(-1)))
        coef = np.zeros(len(pairs), np.float32)
        np.add.at(coef, e_pair[: int(keep.sum())], ec[keep])
        coef[e_pair[int(keep.sum()) :]] = 1.0
        self.register_buffer("pair_c", torch.as_tensor(coef))
        # entries whose vertex moves with facial actions (face points)
        if self.n_expr:
            fa = self._facial_blendshapes()  # (X, V, 3)
            moving = (fa.abs().sum(dim=(0, 2)) > 0).cpu().numpy()
            sel = moving[ev[keep]]
            self.register_buffer("x_idx", torch.as_tensor(np.nonzero(sel)[0]))
        else:
            self.register_buffer("x_idx", torch.zeros(0, dtype=torch.long))

    def _facial_blendshapes(self) -> torch.Tensor:
        return self._facial_rows(self.model.blendshapes)

    def _facial_rows(self, blendshapes: torch.Tensor) -> torch.Tensor:
        m = self.model
        n_pheno = blendshapes.shape[0] - self.n_expr - 2 * len(m.local_change_labels)
        return blendshapes[n_pheno : n_pheno + self.n_expr]

    # -- rest model ----------------------------------------------------------------------------
    def initial_shape(self) -> torch.Tensor:
        return torch.full((self.n_shape,), 0.5)

    def clamp_shape(self, shape: torch.Tensor) -> None:
        with torch.no_grad():
            shape.clamp_(0.0, 1.0)

    def _coeffs(self, shape: torch.Tensor, expression: torch.Tensor | None = None):
        m = self.model
        shape = shape.reshape(1, -1).to(m.dtype)
        expr = (
            expression
            if expression is not None
            else torch.zeros(1, self.n_expr, dtype=shape.dtype, device=shape.device)
        )
        local = torch.zeros(1, len(m.local_change_labels), dtype=shape.dtype, device=shape.device)
        return m._get_phenotype_blendshape_coefficients(shape, local, expr)

    def _rest(self, shape: torch.Tensor, full: bool = False):
        """Rest vertices (all, or only those the points use, indexed by ``e_v``), bone heads
        ``h``, rest-to-reference rotations ``A`` and reference head offsets ``qoff``.

        The same computation as ``anny``'s cached rest model (``get_rest_model``), restricted to
        the vertices the fit reads."""
        import roma

        m = self.model
        coeffs = self._coeffs(shape)
        h = m.template_bone_heads + torch.einsum("cpd,c->pd", m.bone_heads_blendshapes, coeffs[0])
        Mo = m.bone_template_orientation_matrices + torch.einsum(
            "a,akij->kij", coeffs[0], m.bone_orientation_blendshapes
        )
        R = roma.special_procrustes(Mo)
        if m.rest_orientation_refiner is not None:
            R = m.rest_orientation_refiner(R[None], h[None])[0]
        if full:
            rest_v = m.template_vertices + torch.einsum("cpd,c->pd", m.blendshapes, coeffs[0])
        else:
            rest_v = self.used_template + torch.einsum(
                "cpd,c->pd", self.used_blendshapes, coeffs[0]
            )
        U = self.ref_orient
        A = U @ R.transpose(-1, -2)
        Aq = torch.cat([torch.eye(3, dtype=A.dtype, device=A.device)[None], A[1:]], 0)
        par = self.parents.clamp(min=0)
        qoff = torch.einsum("bij,bj->bi", Aq[par], h - h[par])
        qoff = torch.cat([torch.zeros_like(qoff[:1]), qoff[1:]], 0)
        return rest_v, h, A, qoff

    def _fk(self, pose: torch.Tensor, transl: torch.Tensor, qoff: torch.Tensor):
        """World-aligned rotations ``S (J, 3, 3, B)`` and bone heads ``w (J, 3, B)``.

        ``S_c = S_parent D_c`` and ``w_c = w_parent + S_parent qoff_c``, one step per depth level
        (a parent is always on the level above its child); bones the fit never moves reuse their
        parent's rotation. Frames are the last axis and the 3x3 products are written out
        element-wise: on a CPU that is several times faster than batched matmuls of tiny
        matrices.
        """
        free_idx, plan, inverse = self._plan_on(pose.device)
        aa = pose[:, free_idx].permute(1, 2, 0)  # (F, 3, B)
        D = _rodrigues_last(aa)  # (F, 3, 3, B)
        S_levels = [D[:1]]
        w_levels = [transl.T[None]]
        for level, par_local, f_local, f_rows in plan:
            Sp = S_levels[-1][par_local]
            wp = w_levels[-1][par_local]
            wc = wp + (Sp * qoff[level][:, None, :, None]).sum(2)
            if len(f_local):
                Sf = _mm3(Sp[f_local], D[f_rows])
                Sc = Sf if len(f_local) == len(level) else Sp.index_copy(0, f_local, Sf)
            else:
                Sc = Sp
            S_levels.append(Sc)
            w_levels.append(wc)
        S = torch.cat(S_levels, 0)[inverse]
        w = torch.cat(w_levels, 0)[inverse]
        return S, w

    def _plan_on(self, device: torch.device):
        """The kinematic plan's index tensors on ``device`` (kept per device)."""
        key = str(device)
        if key not in self._plan_cache:
            self._plan_cache[key] = (
                self._free_idx.to(device),
                [tuple(t.to(device) for t in step) for step in self._level_plan],
                self._fk_inverse.to(device),
            )
        return self._plan_cache[key]

    def forward(self, pose, transl, shape, expression=None):
        rest_v, h, A, qoff = self._rest(shape)
        S, w = self._fk(pose, transl, qoff)
        # moments per (point, bone) pair: m = sum_e c_e A_b (v_e - h_b)
        u = torch.einsum("eij,ej->ei", A[self.e_b], rest_v[self.e_v] - h[self.e_b])
        M = torch.zeros(len(self.pair_p), 3, dtype=u.dtype, device=u.device)
        M = M.index_add(0, self.e_pair, self.e_c[:, None] * u)
        Mt = M[:, :, None]
        if expression is not None and self.n_expr and len(self.x_idx):
            e = self.x_idx
            fa = self._facial_rows(self.used_blendshapes)[:, self.e_v[e]]  # (X, E, 3)
            du = torch.einsum("eij,xej->xei", A[self.e_b[e]], fa) * self.e_c[e, None]
            dM = torch.zeros(len(self.pair_p), self.n_expr, 3, dtype=u.dtype, device=u.device)
            dM = dM.index_add(0, self.e_pair[e], du.transpose(0, 1))  # (Q, X, 3)
            Mt = Mt + torch.einsum("qxi,bx->qib", dM, expression)
        contrib = (S[self.pair_b] * Mt[:, None, :, :]).sum(2)  # (Q, 3, B)
        contrib = contrib + self.pair_c[:, None, None] * w[self.pair_b]
        points = torch.zeros(skeleton.N_POINTS, 3, pose.shape[0], dtype=u.dtype, device=u.device)
        points = points.index_add(0, self.pair_p, contrib)
        return {"points": points.permute(2, 0, 1), "kin": w[self.kin_index].permute(2, 0, 1)}

    @torch.no_grad()
    def vertices(self, pose, transl, shape, expression=None, chunk: int = 16):
        out = []
        rest_v, h, A, qoff = self._rest(shape, full=True)
        fa = self._facial_blendshapes() if self.n_expr else None
        for s in range(0, len(pose), chunk):
            S, w = self._fk(pose[s : s + chunk], transl[s : s + chunk], qoff)
            S, w = S.permute(3, 0, 1, 2), w.permute(2, 0, 1)
            TR = S @ A  # (B, J, 3, 3)
            TT = w - torch.einsum("bjik,jk->bji", TR, h)
            v = rest_v.expand(len(S), -1, -1)
            if expression is not None and fa is not None:
                v = v + torch.einsum("tx,xvi->tvi", expression[s : s + chunk], fa)
            acc = torch.zeros_like(v)
            for k in range(self.vw.shape[1]):
                b = self.vi[:, k]
                acc = acc + self.vw[:, k, None] * (
                    torch.einsum("tvij,tvj->tvi", TR[:, b], v) + TT[:, b]
                )
            out.append(acc)
        return torch.cat(out, 0)

    def rest_bones(self, shape: torch.Tensor | None = None) -> np.ndarray:
        shape = self.initial_shape() if shape is None else torch.as_tensor(shape).float()
        with torch.no_grad():
            _, h, _, _ = self._rest(shape.to(self.ref_orient.device))
        return h.detach().cpu().numpy()

    def rest_kin(self, shape=None) -> np.ndarray:
        kin = self.rest_bones(shape)[self.kin_index.cpu().numpy()]
        return kin - kin[0]

    def upright_orient(self) -> np.ndarray:
        # anny: x = the person's left, -y forward, z up -> camera: x right, y down, z forward
        return np.array([np.pi / 2, 0.0, 0.0])

    def _build_prior(self, idx: dict[str, int]) -> PosePrior:
        weight = np.zeros(self.n_joints)
        for b in FREE_BODY + FREE_HANDS["L"] + FREE_HANDS["R"]:
            base = b.split(".")[0]
            key = next((k for k in PRIOR_WEIGHT if base.startswith(k)), None)
            weight[idx[b]] = PRIOR_WEIGHT.get(key, 1.0) if key else 1.0
        rest = self.rest_bones()
        pos = {}
        joints = {}
        for side, s in (("left", "L"), ("right", "R")):
            pos[f"{side}_knee"] = rest[idx[f"lowerleg01.{s}"]]
            pos[f"{side}_ankle"] = rest[idx[f"foot.{s}"]]
            pos[f"{side}_elbow"] = rest[idx[f"lowerarm01.{s}"]]
            pos[f"{side}_wrist"] = rest[idx[f"wrist.{s}"]]
            joints[f"{side}_knee"] = idx[f"lowerleg01.{s}"]
            joints[f"{side}_elbow"] = idx[f"lowerarm01.{s}"]
            for name, bone in _HAND_BONES.items():
                pos[f"{side}_{name}"] = rest[idx[f"{bone}.{s}"]]
                joints[f"{side}_{name}"] = idx[f"{bone}.{s}"]
            # tips: extrapolate the distal segment
            for f in ("index", "middle", "ring", "pinky"):
                dip, pip = pos[f"{side}_{f}_dip"], pos[f"{side}_{f}_pip"]
                pos[f"{side}_{f}_tip"] = dip + (dip - pip)
        fingers = {
            side: [
                (f"{side}_{f}_{a}", f"{side}_{f}_{b}")
                for f in ("index", "middle", "ring", "pinky")
                for a, b in (("mcp", "pip"), ("pip", "dip"), ("dip", "tip"))
            ]
            for side in ("left", "right")
        }
        hinges = standard_hinges(pos, joints, np.array([0.0, -1.0, 0.0]), fingers)
        return PosePrior(mean=np.zeros((self.n_joints, 3)), weight=weight, hinges=hinges)

    def export(self, fit: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {
            "phenotype": fit["shape"].astype(np.float32),
            "phenotype_labels": np.array(self.phenotype_labels),
            "pose": fit["pose"].astype(np.float32),
            "bone_labels": np.array(self.bone_labels),
            "transl": fit["transl"].astype(np.float32),
            "trans": fit["transl"].astype(np.float32),
            "facial_actions": fit["expression"].astype(np.float32),
            "facial_action_labels": np.array(self.facial_actions),
        }

    def params_from_npz(self, data):
        f = lambda k: torch.as_tensor(np.asarray(data[k]), dtype=torch.float32)  # noqa: E731
        expr = f("facial_actions") if self.n_expr and "facial_actions" in data else None
        if expr is not None and expr.shape[1] != self.n_expr:
            expr = None
        return {
            "pose": f("pose"),
            "transl": f("transl"),
            "shape": f("phenotype"),
            "expression": expr,
        }

    def rest_height(self, shape=None) -> float:
        shape = self.initial_shape() if shape is None else torch.as_tensor(shape).float()
        with torch.no_grad():
            v = self._rest(shape.to(self.ref_orient.device), full=True)[0]
        return float(v[:, 2].max() - v[:, 2].min())  # anny: z up

    def anny_pose_parameters(self, pose: torch.Tensor, transl: torch.Tensor) -> torch.Tensor:
        """``(B, J, 4, 4)`` delta transforms for ``anny.Anny.forward`` (local-ref) from our
        parameters (used to check this module against anny itself)."""
        D = axis_angle_to_matrix(pose)
        eye = torch.eye(4, dtype=D.dtype, device=D.device).expand(*D.shape[:2], 4, 4).clone()
        eye[..., :3, :3] = D
        U0 = self.ref_orient[0]
        eye[:, 0, :3, :3] = U0 @ D[:, 0]
        eye[:, 0, :3, 3] = transl @ U0.T
        return eye
