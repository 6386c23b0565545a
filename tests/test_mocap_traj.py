"""The trajectory diffusion model: synthetic AMASS-layout data, training, inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from twinflow.mocap import skeleton
from twinflow.mocap.presets import TRAJ_PRESETS
from twinflow.mocap.traj import synth
from twinflow.mocap.traj.data import MotionSet, body_fk, dataset_files, from_6d, to_6d
from twinflow.presets import resolve_preset
from twinflow.train.loop import resume_path

SMALL = {"window": "16", "batch": "16", "d_model": "32", "steps": "150", "save_every": "50"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return synth.write_dataset(tmp_path_factory.mktemp("motion"), sequences=8, seconds=4.0)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    from twinflow.mocap.traj.train import train

    torch.set_num_threads(1)
    cfg = resolve_preset(TRAJ_PRESETS, "tiny", SMALL)
    out = tmp_path_factory.mktemp("traj") / "model.pt"
    return out, train(dataset, out, cfg, "cpu")


def test_synthetic_motion_has_the_amass_layout(dataset):
    files = dataset_files(dataset)
    assert len(files) == 8
    with np.load(files[0]) as d:
        assert d["poses"].shape[1] == 156 and d["trans"].shape == (len(d["poses"]), 3)
        assert float(d["mocap_framerate"]) == 30.0 and d["betas"].shape == (16,)
        # people walk on the ground plane: the root stays near pelvis height
        assert 0.8 < d["trans"][:, 2].mean() < 1.0
    data = MotionSet(files, fps=25.0)
    assert data.cond[0].shape[1] == skeleton.N_KIN * 3
    cond, target = data.window(np.random.default_rng(0), 16)
    assert cond.shape == (16, 51) and target.shape == (16, 9)
    # the window's first frame faces +x (canonical heading)
    R0 = from_6d(target[:1, :6])[0]
    assert abs(np.arctan2(R0[1, 2], R0[0, 2])) < 1e-6
    R = Rotation.random(4, random_state=0).as_matrix()
    assert np.allclose(from_6d(to_6d(R)), R, atol=1e-6)
    # forward kinematics: feet below the pelvis, head above it (SMPL axes, y up)
    joints = body_fk(np.zeros((1, 21, 3)))[0]
    assert joints[10, 1] < -0.8 and joints[15, 1] > 0.5


def test_training_lowers_the_loss(trained):
    from twinflow.train import load_checkpoint

    out, result = trained
    losses = [h["loss"] for h in result.history]
    assert len(losses) >= 5
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2]), losses
    ckpt = load_checkpoint(out)
    assert (
        ckpt["meta"]["dataset_kind"] == "synthetic" and "no claim" in ckpt["meta"]["quality_note"]
    )
    assert set(ckpt["extra"]) == {"cond_mean", "cond_std", "x_mean", "x_std"}
    # the loop's resumable state is removed once the final checkpoint is written
    assert out.exists() and not resume_path(out).exists()


def _fake_fit(n: int = 60, fps: float = 25.0) -> dict:
    """A fit-like track: synthetic walking seen by a camera (SMPL-X-style keys)."""
    seq = synth.sequence(np.random.default_rng(3), n / fps, fps)
    poses = seq["poses"].astype(np.float64)
    joints = body_fk(poses[:, 3:66].reshape(-1, 21, 3))[:, skeleton.KIN_SMPL]
    R_world = Rotation.from_rotvec(poses[:, :3]).as_matrix()
    cam = Rotation.from_rotvec([np.pi / 2, 0, 0]).as_matrix()  # world z-up -> camera y-down
    R_cam = cam @ R_world
    trans = seq["trans"] @ cam.T + np.array([0, 0, 5.0])
    kin = trans[:, None] + np.einsum("tij,tkj->tki", R_cam, joints)
    full = np.zeros((n, 55, 3), np.float32)
    full[:, 0] = Rotation.from_matrix(R_cam).as_rotvec()
    return {
        "backend": np.array("smplx"),
        "fps": np.float32(fps),
        "trans": trans.astype(np.float32),
        "global_orient": full[:, 0],
        "kin3d": kin.astype(np.float32),
        "kin_names": np.array(skeleton.KIN_NAMES),
        "to_smpl_frame": np.eye(3, dtype=np.float32),
        "rest_kin_smpl": body_fk(np.zeros((1, 21, 3)))[0, skeleton.KIN_SMPL].astype(np.float32),
        "rest_height": np.float32(1.7),
        "poses": full,
        "betas": np.zeros(10, np.float32),
        "expression": np.zeros((n, 10), np.float32),
        "gender": np.array("neutral"),
        "info": np.array(json.dumps({"backend": "smplx"})),
    }


def test_inference_gives_a_world_trajectory(trained, tmp_path):
    from twinflow.cli import stage_main
    from twinflow.mocap.traj import infer

    model, _ = trained
    fit = tmp_path / "person0.npz"
    np.savez(fit, **_fake_fit())
    out = tmp_path / "person0_world.npz"
    args = [
        "--twin",
        "t",
        "--fit",
        str(fit),
        "--model",
        str(model),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    assert stage_main(infer.build_parser, infer.run, args) == 0
    with np.load(out) as d:
        assert d["root_world"].shape == (60, 3) and d["root_orient_world"].shape == (60, 3)
        assert d["poses"].shape == (60, 55, 3) and d["kin3d_world"].shape == (60, 17, 3)
        assert np.isfinite(d["root_world"]).all()
        info = json.loads(str(d["info"]))
        # the trajectory is integrated from velocities, starting at a standing pelvis height
        assert abs(d["root_world"][0, 2] - 0.53 * 1.7) < 1e-4
    assert "no claim" in info["quality_note"]
    # deterministic for a seed
    out2 = tmp_path / "again.npz"
    args[args.index(str(out))] = str(out2)
    assert stage_main(infer.build_parser, infer.run, args) == 0
    with np.load(out) as a, np.load(out2) as b:
        assert np.allclose(a["root_world"], b["root_world"])
