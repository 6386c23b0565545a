"""A synthetic model file in the SMPL-X ``.npz`` layout, for tests and demos without the real one.

Real SMPL-X files are licence-restricted, so the tests (and anyone trying the ``smplx`` backend
without registering) use this: a stick-figure body made of tubes around the 55 SMPL-X joints
(10,475 vertices, the real joint tree and joint order), with linear-blend weights, random smooth
shape and expression directions, small random pose correctives, hand PCA bases, and the vertex
ids and face landmarks that ``smplx`` reads placed at plausible spots (nose, eyes, ears, toes,
heels, fingertips, 51 iBUG face points). ``smplx.SMPLX`` loads it like the real file. It is not a
human body model: nothing fitted with it means anything about people.

``python -m twinflow.mocap.body_models.synthetic_smplx OUT.npz [--seed 0]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

N_VERTICES = 10475
N_JOINTS = 55
PARENTS = (
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15]
    + [20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38]
    + [21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]
)


def rest_joints() -> np.ndarray:
    """``(55, 3)`` rest joint positions (T-pose; x = the person's left, y up, z forward)."""
    j = np.zeros((N_JOINTS, 3))
    half = {
        1: (0.06, -0.09, 0.0),  # hip
        4: (0.10, -0.48, 0.0),  # knee
        7: (0.09, -0.88, -0.04),  # ankle
        10: (0.11, -0.94, 0.10),  # foot (ball)
        13: (0.07, 0.42, 0.0),  # collar
        16: (0.17, 0.45, -0.01),  # shoulder
        18: (0.43, 0.44, -0.03),  # elbow
        20: (0.68, 0.44, -0.02),  # wrist
    }
    for left, pos in half.items():
        j[left] = pos
        j[left + 1] = (-pos[0], pos[1], pos[2])
    j[3] = (0, 0.11, -0.01)
    j[6] = (0, 0.24, -0.01)
    j[9] = (0, 0.30, 0.01)
    j[12] = (0, 0.51, -0.01)
    j[15] = (0, 0.58, 0.03)
    j[22] = (0, 0.56, 0.07)
    j[23] = (0.03, 0.63, 0.09)
    j[24] = (-0.03, 0.63, 0.09)
    # hands: index, middle, pinky, ring, thumb (x along the arm, z forward)
    fingers = {0: 0.025, 3: 0.0, 6: -0.04, 9: -0.02}
    for base, wrist, sign in ((25, 20, 1.0), (40, 21, -1.0)):
        w = j[wrist]
        for off, z in fingers.items():
            for k in range(3):
                j[base + off + k] = w + (sign * (0.09 + 0.035 * k), 0.0, z)
        for k in range(3):
            j[base + 12 + k] = w + (sign * (0.03 + 0.03 * k), -0.01 - 0.005 * k, 0.04 + 0.02 * k)
    return j


_RADIUS = {0: 0.12, 3: 0.12, 6: 0.13, 9: 0.13, 12: 0.05, 15: 0.09, 13: 0.05, 14: 0.05}


def _radius(j: int) -> float:
    if j in _RADIUS:
        return _RADIUS[j]
    if j in (1, 2):
        return 0.08
    if j in (4, 5):
        return 0.055
    if j in (7, 8, 10, 11):
        return 0.04
    if j in (16, 17):
        return 0.045
    if j in (18, 19):
        return 0.035
    if j in (20, 21):
        return 0.03
    if j in (22,):
        return 0.03
    if j in (23, 24):
        return 0.012
    return 0.009  # fingers


def _tube(a, b, r, n_around, n_along):
    axis = b - a
    length = np.linalg.norm(axis)
    d = axis / max(length, 1e-9)
    ref = np.array([0, 0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0, 0])
    u = np.cross(d, ref)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    ang = np.linspace(0, 2 * np.pi, n_around, endpoint=False)
    s = np.linspace(0, 1, n_along)
    ring = np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v
    verts = (a + s[:, None, None] * axis) + r * ring[None]
    faces = []
    for i in range(n_along - 1):
        for k in range(n_around):
            p0 = i * n_around + k
            p1 = i * n_around + (k + 1) % n_around
            q0, q1 = p0 + n_around, p1 + n_around
            faces += [(p0, p1, q1), (p0, q1, q0)]
    return verts.reshape(-1, 3), np.array(faces), s.repeat(n_around)


def _segments(joints: np.ndarray):
    """(start joint, end point, child joint or -1) for every bone and leaf."""
    segs = []
    children = {j: [c for c in range(N_JOINTS) if PARENTS[c] == j] for j in range(N_JOINTS)}
    for c in range(1, N_JOINTS):
        segs.append((PARENTS[c], joints[c], c))
    for j in range(N_JOINTS):
        if children[j] and j != 15:
            continue
        p = PARENTS[j]
        d = joints[j] - joints[p]
        d = d / max(np.linalg.norm(d), 1e-9)
        if j == 15:  # head: up
            end = joints[j] + (0, 0.17, 0)
        elif j in (23, 24, 22):
            end = joints[j] + (0, -0.01 if j == 22 else 0, 0.03)
        elif j in (10, 11):
            end = joints[j] + (0, 0, 0.06)
        else:
            end = joints[j] + 0.025 * d
        segs.append((j, end, -1))
    return segs


def build(seed: int = 0) -> dict[str, np.ndarray]:
    """The model arrays (see the module docstring)."""
    rng = np.random.default_rng(seed)
    joints = rest_joints()
    verts, faces, weights, first_ring = [], [], [], {j: [] for j in range(N_JOINTS)}
    offset = 0
    for start, end, child in _segments(joints):
        r = 0.012 if start == 15 and child >= 0 else _radius(start)
        n_around = 16 if r > 0.02 else 8
        n_along = 10 if r > 0.02 else 4
        v, f, s = _tube(joints[start], end, r, n_around, n_along)
        w = np.zeros((len(v), N_JOINTS))
        blend = np.clip((s - 0.7) / 0.3, 0, 1) * 0.5 if child >= 0 else np.zeros_like(s)
        w[:, start] = 1 - blend
        if child >= 0:
            w[:, child] += blend
        first_ring[start] += list(range(offset, offset + n_around))
        verts.append(v)
        faces.append(f + offset)
        weights.append(w)
        offset += len(v)
    v = np.concatenate(verts)
    f = np.concatenate(faces)
    w = np.concatenate(weights)
    if len(v) > N_VERTICES:
        raise RuntimeError(f"synthetic mesh has {len(v)} > {N_VERTICES} vertices")
    # pad with unreferenced vertices on the torso (skinned to the spine)
    n_pad = N_VERTICES - len(v)
    pad = joints[6] + rng.normal(scale=0.05, size=(n_pad, 3))
    pad_w = np.zeros((n_pad, N_JOINTS))
    pad_w[:, 6] = 1
    v = np.concatenate([v, pad])
    w = np.concatenate([w, pad_w])

    # move the vertices smplx reads by id to plausible places (swap with the nearest vertex)
    from smplx.vertex_ids import vertex_ids

    ids = vertex_ids["smplx"]
    head = joints[15]
    targets = {
        "nose": head + (0, 0.04, 0.1),
        "leye": joints[23] + (0, 0, 0.012),
        "reye": joints[24] + (0, 0, 0.012),
        "lear": head + (0.09, 0.03, 0),
        "rear": head + (-0.09, 0.03, 0),
        "LBigToe": joints[10] + (0.0, 0, 0.06),
        "LSmallToe": joints[10] + (0.03, 0, 0.05),
        "LHeel": joints[7] + (0, -0.05, -0.05),
        "RBigToe": joints[11] + (0.0, 0, 0.06),
        "RSmallToe": joints[11] + (-0.03, 0, 0.05),
        "RHeel": joints[8] + (0, -0.05, -0.05),
    }
    for side, base, sign in (("l", 25, 1), ("r", 40, -1)):
        for name, off in (("index", 2), ("middle", 5), ("pinky", 8), ("ring", 11), ("thumb", 14)):
            j3 = joints[base + off]
            targets[side + name] = j3 + (sign * 0.025, 0, 0)
    perm = np.arange(N_VERTICES)
    taken = set()
    for name, target in targets.items():
        vid = ids[name]
        d = np.linalg.norm(v[perm] - target, axis=1)
        d[list(taken)] = np.inf
        nearest = int(np.argmin(d))
        perm[[vid, nearest]] = perm[[nearest, vid]]
        taken.add(vid)
    inv = np.argsort(perm)
    v, w = v[perm], w[perm]
    f = inv[f]

    # face landmarks: 51 points on the front of the head in an iBUG-like layout
    lmk = []
    for k in range(17, 68):
        if k < 27:  # brows
            x = np.interp(k, [17, 21, 22, 26], [-0.05, -0.01, 0.01, 0.05])
            y = 0.07
        elif k < 31:  # nose bridge
            x, y = 0.0, 0.06 - 0.012 * (k - 27)
        elif k < 36:  # nostrils
            x, y = (k - 33) * 0.008, 0.01
        elif k < 48:  # eyes
            c = -0.03 if k < 42 else 0.03
            t = (k - 36) % 6
            x = c + 0.012 * np.cos(np.pi * t / 3)
            y = 0.05 + 0.004 * np.sin(np.pi * t / 3)
        else:  # lips
            t = (k - 48) / (20 if k < 60 else 8)
            r = 0.022 if k < 60 else 0.015
            x = r * np.cos(2 * np.pi * t)
            y = -0.02 + 0.008 * np.sin(2 * np.pi * t)
        lmk.append(head + (x, y + 0.02, 0.085))
    centres = v[f].mean(axis=1)
    lmk_faces = np.array([int(np.argmin(np.linalg.norm(centres - p, axis=1))) for p in lmk])
    bary = rng.dirichlet([4, 4, 4], size=len(lmk))
    head_faces = np.nonzero(np.linalg.norm(centres - head, axis=1) < 0.15)[0]

    # J_regressor: the first ring of each joint's segments (centred on the joint)
    J_reg = np.zeros((N_JOINTS, N_VERTICES))
    for j, ring in first_ring.items():
        ring = inv[np.asarray(ring)]
        J_reg[j, ring] = 1.0 / len(ring)

    # shape: height and girth, then smooth random fields; expression: head vertices only
    shapedirs = np.zeros((N_VERTICES, 3, 20))
    shapedirs[:, :, 0] = v * 0.06
    shapedirs[:, 0, 1] = v[:, 0] * 0.08
    shapedirs[:, 2, 1] = v[:, 2] * 0.08
    for k in range(2, 10):
        freq = rng.normal(size=(3, 3)) * 3
        phase = rng.uniform(0, 2 * np.pi, 3)
        shapedirs[:, :, k] = 0.01 * np.sin(v @ freq + phase)
    near_head = (np.linalg.norm(v - head, axis=1) < 0.15)[:, None]
    for k in range(10, 20):
        freq = rng.normal(size=(3, 3)) * 20
        shapedirs[:, :, k] = 0.004 * np.sin(v @ freq) * near_head
    posedirs = rng.normal(scale=1e-4, size=(N_VERTICES, 3, 486))
    kintree = np.array([PARENTS, list(range(N_JOINTS))], np.int64)
    kintree[0, 0] = 4294967295
    comps = np.linalg.qr(rng.normal(size=(45, 45)))[0]
    return {
        "v_template": v.astype(np.float64),
        "f": f.astype(np.uint32),
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": J_reg,
        "kintree_table": kintree,
        "weights": w,
        "hands_componentsl": comps,
        "hands_componentsr": comps.copy(),
        "hands_meanl": np.zeros(45),
        "hands_meanr": np.zeros(45),
        "lmk_faces_idx": lmk_faces.astype(np.int64),
        "lmk_bary_coords": bary,
        "dynamic_lmk_faces_idx": rng.choice(head_faces, size=(79, 17)).astype(np.int64),
        "dynamic_lmk_bary_coords": rng.dirichlet([4, 4, 4], size=(79, 17)),
    }


def write(path: str | Path, seed: int = 0) -> Path:
    """Write the synthetic model to ``path`` (``.npz``)."""
    from twinflow.atomic import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **build(seed))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="twinflow.mocap.body_models.synthetic_smplx", description=__doc__
    )
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(write(args.out, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
