"""Anny mesh vertices for the face landmarks and fingertips of the common skeleton.

The tables below were produced by :func:`calibrate` (``python -m
twinflow.mocap.body_models.anny_face``) for anny 0.6.2's default topology: it renders anny's
rest head from several viewpoints, runs mediapipe's FaceMesh on the renders, converts the 478
points to the iBUG-68 layout (:data:`twinflow.perception.landmarks.IBUG68`, the same map the
perception stage uses) and keeps, per point, the visible vertex nearest to the detection over all
views. Fingertips are the vertices furthest along each distal phalanx. Rerun it after an anny
upgrade that changes the mesh (the tests check the tables against the model's vertex count).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

# iBUG-68 index -> anny vertex (points 17-67)
ANNY_FACE_VERTICES: dict[int, int] = {
    17: 212, 18: 207, 19: 176, 20: 177, 21: 209, 22: 6968, 23: 6937, 24: 6963,
    25: 6966, 26: 6971, 27: 133, 28: 131, 29: 291, 30: 5038, 31: 358, 32: 314,
    33: 317, 34: 7060, 35: 7039, 36: 1065, 37: 1068, 38: 1074, 39: 66, 40: 1071,
    41: 1068, 42: 6838, 43: 7747, 44: 7744, 45: 7741, 46: 7744, 47: 13335, 48: 3719,
    49: 413, 50: 456, 51: 466, 52: 7194, 53: 7191, 54: 7168, 55: 7217, 56: 7225,
    57: 492, 58: 486, 59: 478, 60: 433, 61: 470, 62: 468, 63: 7210, 64: 7177,
    65: 7246, 66: 474, 67: 515,
}  # fmt: skip
# side -> finger -> vertex of the fingertip
ANNY_FINGERTIP_VERTICES: dict[str, dict[str, int]] = {
    "L": {"thumb": 9316, "index": 8563, "middle": 8755, "ring": 8950, "pinky": 9139},
    "R": {"thumb": 2664, "index": 1911, "middle": 2103, "ring": 2298, "pinky": 2487},
}
N_VERTICES = 13718


def _fingertips(model) -> dict[str, dict[str, int]]:
    import torch

    bones = list(model.bone_labels)
    out = model(pose_parameters=torch.eye(4).expand(1, len(bones), 4, 4).clone())
    verts = out["vertices"][0].detach().cpu().numpy()
    heads = out["bone_poses"][0, :, :3, 3].detach().cpu().numpy()
    vw = model.vertex_bone_weights.cpu().numpy()
    vi = model.vertex_bone_indices.cpu().numpy()
    main_bone = vi[np.arange(len(vi)), vw.argmax(1)]
    tips: dict[str, dict[str, int]] = {"L": {}, "R": {}}
    for side in ("L", "R"):
        for f, name in enumerate(("thumb", "index", "middle", "ring", "pinky"), start=1):
            b3 = bones.index(f"finger{f}-3.{side}")
            b2 = bones.index(f"finger{f}-2.{side}")
            direction = heads[b3] - heads[b2]
            direction /= np.linalg.norm(direction)
            cand = np.nonzero(main_bone == b3)[0]
            score = (verts[cand] - heads[b3]) @ direction
            tips[side][name] = int(cand[np.argmax(score)])
    return tips


def calibrate(size: int = 512, yaws=(-20, -10, 0, 10, 20), pitches=(-10, 0, 10)) -> dict:
    """Find the face-landmark and fingertip vertices (see the module docstring)."""
    import torch
    from scipy.spatial.transform import Rotation

    from twinflow.mocap.body_models.anny_backend import load_anny
    from twinflow.perception import solutions
    from twinflow.perception.landmarks import IBUG68
    from twinflow.render.mesh import MeshRenderer, intrinsics

    model = load_anny(facial_actions=())
    bones = list(model.bone_labels)
    out = model(pose_parameters=torch.eye(4).expand(1, len(bones), 4, 4).clone())
    verts = out["vertices"][0].detach().cpu().numpy().astype(np.float64)
    faces = model.get_triangular_faces().cpu().numpy()
    head = out["bone_poses"][0, bones.index("head"), :3, 3].detach().cpu().numpy()
    vw = model.vertex_bone_weights.cpu().numpy()
    vi = model.vertex_bone_indices.cpu().numpy()
    main_bone = vi[np.arange(len(vi)), vw.argmax(1)]
    on_eyeball = np.isin(main_bone, [bones.index("eye.L"), bones.index("eye.R")])
    eyes = (
        0.5
        * (
            out["bone_poses"][0, bones.index("eye.L"), :3, 3]
            + out["bone_poses"][0, bones.index("eye.R"), :3, 3]
        ).numpy()
    )
    centre = 0.5 * (head + eyes) + np.array([0, 0, -0.03])
    upright = Rotation.from_rotvec([np.pi / 2, 0, 0]).as_matrix()
    K = intrinsics(2.2 * size, size, size)
    dist = 0.75
    votes = np.zeros((68, len(verts)))
    counts = np.zeros(68)
    mesh = solutions.face_mesh(static=True, max_faces=1, min_detection=0.3, min_tracking=0.3)
    with MeshRenderer(size, size) as renderer:
        for yaw in yaws:
            for pitch in pitches:
                R = Rotation.from_euler("yx", [yaw, pitch], degrees=True).as_matrix() @ upright
                cam = (verts - centre) @ R.T + np.array([0, 0, dist])
                rgba, depth = renderer.render(cam, faces, K, color=(0.86, 0.68, 0.58))
                rgb = np.ascontiguousarray(rgba[..., :3])
                result = mesh.process(rgb)
                if not result.multi_face_landmarks:
                    continue
                lm = np.array(
                    [(p.x * size, p.y * size) for p in result.multi_face_landmarks[0].landmark]
                )
                ibug = lm[IBUG68]
                uv = cam[:, :2] / cam[:, 2:3] * K[0, 0] + K[0, 2]
                px = np.clip(np.round(uv).astype(int), 0, size - 1)
                visible = (cam[:, 2] <= depth[px[:, 1], px[:, 0]] + 0.004) & ~on_eyeball
                for k in range(17, 68):
                    d = np.linalg.norm(uv - ibug[k], axis=1)
                    d[~visible] = np.inf
                    votes[k] += np.minimum(d, 50.0)
                    counts[k] += 1
    mesh.close()
    if counts[17:].min() == 0:
        raise RuntimeError("FaceMesh found no face on the renders of anny's head")
    table = {k: int(np.argmin(votes[k])) for k in range(17, 68)}
    return {"face": table, "fingertips": _fingertips(model), "views": int(counts[17])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="twinflow.mocap.body_models.anny_face", description=__doc__)
    p.add_argument("--size", type=int, default=512)
    args = p.parse_args(argv)
    print(json.dumps(calibrate(args.size), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
