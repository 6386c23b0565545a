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
    """Fitting a posed, turned body projected with known parameters recovers its 2-D points,
    its root-relative 3-D joints and its orientation, each far better than the initial
    placement (the prior-mean pose facing the camera) it starts from."""
    from scipy.spatial.transform import Rotation

    from twinflow.mocap.fit import FitState

    pose, transl, shape = ground_truth(body, n_frames=4, seed=0)
    obs = observe(body, pose, transl, shape)
    # 12 global steps: with 4 the orientation barely leaves the initial placement (25 degrees
    # off); 12/12/4 converges in about 4 s of two cores
    cfg = FitConfig(iters_global=12, iters_body=12, iters_full=4)
    orient, init_transl = initial_placement(body, obs, 1.2 * 512, cfg.conf_threshold)
    fit = fit_track(body, obs, cfg, progress=False)
    init_err = np.linalg.norm(fit["init_uv"] - obs.xy, axis=-1)
    err = fit["reproj_px"]
    assert np.nanmedian(err) < 0.3 * np.median(init_err), (np.nanmedian(err), np.median(init_err))
    assert np.nanmedian(err) < 4.0
    for stage in ("global", "body", "full"):
        hist = fit["history"][stage]
        assert hist["last"]["data"] < hist["first"]["data"]
    assert np.isfinite(init_transl).all()

    # 3-D kinematic joints relative to the pelvis (depth and size trade off in one view, so
    # absolute positions are not asked for): measured 6.5 cm after the fit, 14.6 cm at the
    # initial placement; the prior-mean pose put at the true place and orientation scores 9.2 cm,
    # so a fit that does not recover the pose (or the orientation: frozen, 9.9 cm; 4/8/6
    # iterations, 9.6 cm) fails the bound of 0.85 x that (7.8 cm)
    with torch.no_grad():
        truth = body(pose, transl, shape)["kin"].numpy()
        start = body(
            FitState(body, orient, init_transl).pose(), torch.as_tensor(init_transl), shape
        )
        mean_pose = torch.as_tensor(body.prior.mean, dtype=torch.float32).expand_as(pose).clone()
        mean_pose[:, 0] = pose[:, 0]
        at_truth = body(mean_pose, transl, shape)["kin"].numpy()

    def mpjpe(kin):
        return float(np.linalg.norm((kin - kin[:, :1]) - (truth - truth[:, :1]), axis=-1).mean())

    errs = {"fit": mpjpe(fit["kin"]), "init": mpjpe(start["kin"].numpy()), "mean": mpjpe(at_truth)}
    assert errs["fit"] < min(0.08, 0.6 * errs["init"], 0.85 * errs["mean"]), errs

    # orientation after the fit (not the initial placement): the truth is turned 24-29 degrees
    # from the camera, where the placement starts; measured 5-10 degrees after the fit
    def degrees(o):
        rel = Rotation.from_rotvec(o) * Rotation.from_rotvec(pose[:, 0].numpy()).inv()
        return np.degrees(rel.magnitude())

    after, before = degrees(fit["pose"][:, 0]), degrees(orient)
    assert after.max() < 15 and after.mean() < 0.5 * before.mean(), (after, before)
