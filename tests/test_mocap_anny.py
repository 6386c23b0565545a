"""Mocap with the anny backend: common-skeleton mapping, exactness against anny, fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.mocap_helpers import ground_truth, observe
from twinflow.mocap import skeleton
from twinflow.mocap.body_models.anny_face import ANNY_FACE_VERTICES, N_VERTICES
from twinflow.mocap.fit import fit_track, initial_placement
from twinflow.mocap.presets import FitConfig

pytest.importorskip("anny")


@pytest.fixture(scope="module")
def body():
    # The first construction in a fresh environment builds anny's model data (2-3 min on two
    # cores) and caches it under ~/.cache/anny; later ones load it in seconds.
    from twinflow.mocap.body_models import load_body_model

    torch.set_num_threads(1)
    return load_body_model("anny")


def test_common_skeleton_layout():
    assert skeleton.N_POINTS == 126 == len(set(skeleton.POINTS))
    mirror = skeleton.mirror_index()
    assert (mirror[mirror] == np.arange(skeleton.N_POINTS)).all()
    assert skeleton.POINTS[mirror[skeleton.POINTS.index("lhand/index_tip")]] == "rhand/index_tip"
    assert len(skeleton.KIN_NAMES) == len(skeleton.KIN_SMPL) == len(skeleton.KIN_PARENTS) == 17


def test_anny_defines_every_point_symmetrically(body):
    assert body.point_defined.all()
    assert max(ANNY_FACE_VERTICES.values()) < N_VERTICES == len(body.model.template_vertices)
    pose = torch.zeros(1, body.n_joints, 3)
    with torch.no_grad():
        pts = body(pose, torch.zeros(1, 3), body.initial_shape())["points"][0].numpy()
    # anny's rest body is left-right symmetric (x is the person's left): a point's mirror image
    # is its partner's position, to a few centimetres (the face table came from detections)
    mirrored = pts[skeleton.mirror_index()] * np.array([-1, 1, 1])
    err = np.linalg.norm(mirrored - pts, axis=1)
    assert np.median(err) < 0.005 and err.max() < 0.03, err.max()
    # heads above shoulders above hips above knees above ankles (z up)
    z = {
        n: pts[skeleton.POINTS.index(f"pose/{n}")][2]
        for n in ("nose", "left_shoulder", "left_hip", "left_knee", "left_ankle")
    }
    assert z["nose"] > z["left_shoulder"] > z["left_hip"] > z["left_knee"] > z["left_ankle"]


def test_anny_kinematics_match_anny(body):
    """The reduced kinematics used for fitting equal anny's own forward pass."""
    import anny

    from twinflow.mocap.body_models.anny_backend import point_sources

    g = torch.Generator().manual_seed(1)
    B = 2
    pose = torch.zeros(B, body.n_joints, 3)
    free = [0] + body.parts["body"] + body.parts["lhand"] + body.parts["rhand"]
    pose[:, free] = 0.3 * torch.randn(B, len(free), 3, generator=g)
    transl = torch.randn(B, 3, generator=g)
    shape = torch.rand(body.n_shape, generator=g)
    expr = torch.rand(B, body.n_expr, generator=g)
    with torch.no_grad():
        ref = body.model(
            pose_parameters=body.anny_pose_parameters(pose, transl),
            phenotype_kwargs=shape[None].expand(B, -1),
            facial_actions=expr,
        )
        coco = anny.KeypointsRegressor.coco(body.model)
        kp = coco(ref)
        mine = body(pose, transl, shape, expr)
        verts = body.vertices(pose, transl, shape, expr)
    assert (verts - ref["vertices"]).abs().max() < 1e-4
    labels = list(body.model.bone_labels)
    for p, (kind, src) in enumerate(point_sources()):
        if kind == "coco":
            want = kp[:, coco.labels.index(src)]
        elif kind == "bone":
            want = ref["bone_poses"][:, labels.index(src), :3, 3]
        else:
            want = ref["vertices"][:, src]
        assert (mine["points"][:, p] - want).abs().max() < 1e-3, skeleton.POINTS[p]


def test_fit_recovers_a_projected_body(body):
    """Fitting lowers the reprojection error of a posed body projected with known parameters."""
    pose, transl, shape = ground_truth(body, n_frames=6, seed=0)
    obs = observe(body, pose, transl, shape)
    cfg = FitConfig(iters_global=4, iters_body=8, iters_full=6)
    orient, init_transl = initial_placement(body, obs, 1.2 * 512, cfg.conf_threshold)
    fit = fit_track(body, obs, cfg, progress=False)
    init_err = np.linalg.norm(fit["init_uv"] - obs.xy, axis=-1)
    err = fit["reproj_px"]
    assert np.nanmedian(err) < 0.3 * np.median(init_err), (np.nanmedian(err), np.median(init_err))
    assert np.nanmedian(err) < 4.0
    for stage in ("global", "body", "full"):
        hist = fit["history"][stage]
        assert hist["last"]["data"] < hist["first"]["data"]
    # the person faces the camera: initial orientation within 60 degrees of the truth
    from scipy.spatial.transform import Rotation

    rel = Rotation.from_rotvec(orient) * Rotation.from_rotvec(pose[:, 0].numpy()).inv()
    assert np.degrees(rel.magnitude()).max() < 60
    assert np.isfinite(init_transl).all()
