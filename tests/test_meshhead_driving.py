"""Driving face-vid2vid with the mesh (twinflow.meshhead.driving), the tiny warp, its losses and the
render options of the plan (fast, no media)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from scipy.spatial.transform import Rotation

from twinflow.meshhead import plan
from twinflow.meshhead.driving import (
    MeshDriver,
    best_frame,
    euler_degrees,
    pose_features,
    relative_keypoints,
)
from twinflow.meshhead.fv2v.discriminator import scale_key
from twinflow.meshhead.fv2v.losses import (
    GeneratorLoss,
    Transform,
    discriminator_loss,
    keypoint_prior,
)
from twinflow.meshhead.fv2v.model import FaceVid2Vid, build_discriminator
from twinflow.meshhead.fv2v.pose import rotation_matrix
from twinflow.meshhead.presets import warp_preset
from twinflow.meshhead.topology import Crop

torch.set_num_threads(1)


def test_tracked_rotations_become_the_estimators_angles():
    """euler_degrees inverts fv2v's rotation_matrix (its 3.14 constant included)."""
    rng = np.random.default_rng(0)
    rot = Rotation.from_euler("XYZ", rng.uniform(-0.5, 0.5, (20, 3))).as_matrix()
    angles = torch.from_numpy(euler_degrees(rot)).float()
    rebuilt = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2]).numpy()
    assert np.abs(rebuilt - rot).max() < 1e-5
    yaw_only = Rotation.from_euler("Y", [20], degrees=True).as_matrix()
    assert np.allclose(euler_degrees(yaw_only)[0], [20 * np.pi / 3.14, 0, 0], atol=1e-6)


def test_mesh_driver_learns_a_linear_map_and_round_trips():
    rng = np.random.default_rng(1)
    n, v, k = 200, 30, 15
    codes = rng.normal(size=(n, 4))
    disp = (codes @ rng.normal(size=(4, v * 3)) * 0.002).reshape(n, v, 3)
    rot = Rotation.from_euler("XYZ", rng.uniform(-0.3, 0.3, (n, 3))).as_matrix()
    trans = np.c_[rng.normal(0, 0.02, (n, 2)), rng.uniform(0.4, 0.6, n)]
    kmat = np.array([[500.0, 0, 256], [0, 500, 256], [0, 0, 1]])
    pose = pose_features(rot, trans, kmat, Crop(100, 100, 300))
    mix = rng.normal(size=(4, 3 * k))
    targets = np.c_[-pose[:, :3], pose[:, 3:6] * 0.5, codes @ mix]  # sign-flipped angles
    driver = MeshDriver.fit(disp, pose, targets, components=8)
    pred = driver.predict(disp[150:], pose[150:])
    assert np.abs(pred["angles"] - targets[150:, :3]).max() < 0.5
    assert np.abs(pred["exp"] - targets[150:, 6:]).mean() < 0.05 * np.abs(targets[:, 6:]).mean()
    again = MeshDriver.from_state(driver.state()).predict(disp[:5], pose[:5])
    assert np.array_equal(again["exp"], driver.predict(disp[:5], pose[:5])["exp"])


def test_relative_motion_and_best_frame():
    rng = np.random.default_rng(2)
    kp_s, kp_0 = rng.normal(size=(15, 3)), rng.normal(size=(15, 3))
    kp_d = kp_0[None] + rng.normal(0, 0.1, (4, 15, 3))
    rel = relative_keypoints(kp_s, kp_d, kp_0)
    assert np.allclose(rel - kp_s, kp_d - kp_0)
    assert relative_keypoints(kp_s, kp_d, None) is kp_d
    # a source twice the initial frame's size: hull volume x8, motion x sqrt(8) (the reference's)
    scaled = relative_keypoints(2 * kp_0, kp_d, kp_0, adapt_scale=True)
    assert np.allclose(scaled - 2 * kp_0, np.sqrt(8) * (kp_d - kp_0))
    src = rng.normal(size=(68, 2))
    frames = rng.normal(size=(6, 68, 2))
    frames[4] = src * 3 + 1  # the same shape, moved and scaled: the normalisation removes both
    assert best_frame(src, frames) == 4


def test_tiny_warp_shapes_finite_losses_and_gradients():
    cfg = warp_preset("tiny")
    torch.manual_seed(0)
    model, disc = FaceVid2Vid(cfg), build_discriminator(cfg)
    loss_fn = GeneratorLoss(cfg)
    b = 2
    batch = {
        "source": torch.rand(b, 3, cfg.size, cfg.size),
        "driving": torch.rand(b, 3, cfg.size, cfg.size),
        "pose": torch.zeros(b, 3),
    }
    losses, out = loss_fn(batch, model, disc)
    assert out["prediction"].shape == (b, 3, cfg.size, cfg.size)
    assert out["kp_canonical"]["value"].shape == (b, cfg.num_kp, 3)
    assert out["mask"].shape == (b, cfg.num_kp + 1, cfg.reshape_depth, 16, 16)
    assert set(losses) == {"perceptual", "gen_gan", "feature_matching", "equivariance_value",
                           "keypoint", "headpose", "expression"}  # fmt: skip
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    d = discriminator_loss(cfg, disc, loss_fn.pyramid, batch["driving"], out["prediction"])
    assert torch.isfinite(d["disc_gan"])
    assert [scale_key(s) for s in (1, 0.5, 0.25)] == ["1", "0.5", "0.25"]


def test_equivariance_transform_and_keypoint_prior():
    torch.manual_seed(3)
    t = Transform(2, sigma_affine=0.0, sigma_tps=0.0, points_tps=5)
    frame = torch.rand(2, 3, 16, 16)
    coords = torch.rand(2, 7, 2) * 2 - 1
    assert torch.allclose(t.warp_coordinates(coords), coords, atol=1e-6)  # zero noise: identity
    spread = torch.tensor([[[0.0, 0, 0.33], [1, 0, 0.33], [0, 1, 0.33]]])
    # far apart at mean depth 0.33: only the three i == j pairs count (0.1 each)
    assert abs(keypoint_prior(spread).item() - 0.3) < 1e-4
    assert t.transform_frame(frame).shape == frame.shape


def render_row(options):
    return SimpleNamespace(render_id="r1", twin_id="t1", pipeline="meshhead",
                           options=options, driving_video=None)  # fmt: skip


def test_plan_render_options_and_pretrained_warp():
    s = plan.settings({"preset": "tiny", "meshhead": {"warp_pretrained": "models/w.pt",
                                                      "steps": {"warp": 0}}})  # fmt: skip
    assert s.warp_steps == 0 and s.warp_pretrained == "models/w.pt"
    assert plan.train_warp_inputs("t1", s)["pretrained"] == "models/w.pt"
    assert "pretrained" not in plan.train_warp_inputs("t1", plan.settings({"preset": "tiny"}))
    args = plan.render_args(
        render_row({"relative": "best", "adapt_scale": "true", "yaw": "15"}), None, s
    )
    assert "--relative best" in args and "--adapt-scale" in args and "--yaw 15" in args
    assert "--pitch" not in args
    assert "--relative source" in plan.render_args(render_row({}), None, s)
    for bad, match in (({"relative": "sideways"}, "relative"), ({"yaw": "left"}, "yaw"),
                       ({"adapt_scale": "maybe"}, "adapt_scale")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            plan.render_options(render_row(bad), s)


def test_augmented_pairs_carry_their_driving_labels():
    """face-vid2vid's augmentation (vox-256.yaml: time flip, mirror, colour jitter 0.1 in the
    paper preset): a mirrored pair mirrors the driving frame's yaw, roll and mouth box, a swapped
    pair takes the other frame's labels, and with nothing on no random number is drawn."""
    from twinflow.meshhead.train_warp import mirror_labels, pair_batch
    from twinflow.train.augment import PairAugmentation

    paper = warp_preset("paper")
    assert (paper.time_flip, paper.hflip, paper.brightness, paper.hue) == (True, True, 0.1, 0.1)
    # mirroring R = R_x(pitch) R_y(yaw) R_z(roll) in x negates yaw and roll
    rot = Rotation.from_euler("XYZ", np.random.default_rng(2).uniform(-0.5, 0.5, (10, 3)))
    flip = np.diag([-1.0, 1.0, 1.0])
    mirrored = torch.from_numpy(euler_degrees(flip @ rot.as_matrix() @ flip))
    pose = torch.from_numpy(euler_degrees(rot.as_matrix()))
    assert torch.allclose(mirror_labels(pose, torch.zeros(10, 4))[0], mirrored, atol=1e-9)

    frames = torch.full((2, 8, 8, 3), 128, dtype=torch.uint8)
    frames[0, :, 0] = 255  # frame 0: a bright left column
    pose = torch.tensor([[10.0, 5.0, 3.0], [-4.0, 2.0, 1.0]])
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.6], [-0.3, 0.0, 0.1, 0.4]])
    still = {"brightness": 0, "contrast": 0, "saturation": 0, "hue": 0}
    src, drv = np.array([1]), np.array([0])
    np.random.seed(0)
    seen = set()
    mirror = PairAugmentation(SimpleNamespace(time_flip=False, hflip=True, **still))
    for _ in range(20):
        batch = pair_batch(frames, pose, boxes, src, drv, mirror, "cpu")
        flipped = bool(batch["driving"][0, 0, 0, -1] > 0.9)  # the bright column moved right
        want_pose, want_box = (([-10.0, 5, -3], [-0.5, 0.2, -0.1, 0.6]) if flipped
                               else (pose[0].tolist(), boxes[0].tolist()))  # fmt: skip
        assert torch.allclose(batch["pose"][0], torch.tensor(want_pose))
        assert torch.allclose(batch["mouth_box"][0], torch.tensor(want_box))
        seen.add(flipped)
    assert seen == {True, False}
    swap = PairAugmentation(SimpleNamespace(time_flip=True, hflip=False, **still))
    seen = set()
    for _ in range(20):
        batch = pair_batch(frames, pose, boxes, src, drv, swap, "cpu")
        swapped = bool(batch["driving"][0, 0, 0, 0] < 0.9)  # frame 1 is driving
        assert torch.equal(batch["pose"][0], pose[1 if swapped else 0])
        assert torch.equal(batch["mouth_box"][0], boxes[1 if swapped else 0])
        seen.add(swapped)
    assert seen == {True, False}
    off = PairAugmentation(warp_preset("tiny"))
    state = np.random.get_state()
    batch = pair_batch(frames, pose, boxes, src, drv, off, "cpu")
    after = np.random.get_state()
    assert np.array_equal(after[1], state[1]) and after[2] == state[2]  # nothing drawn
    assert torch.equal(batch["driving"][0], frames[0].permute(2, 0, 1) / 255)


def test_reference_yaml_augmentation_is_read():
    from twinflow.meshhead.fv2v.config import from_reference_yaml, named_config

    fixture = Path(__file__).parent / "fixtures" / "meshhead" / "fv2v" / "losses.yaml"
    data = yaml.safe_load(fixture.read_text())
    data.setdefault("dataset_params", {})["augmentation_params"] = {
        "flip_param": {"horizontal_flip": False, "time_flip": True},
        "jitter_param": {"hue": 0.2},
    }
    cfg = from_reference_yaml(data, "original")
    assert (cfg.time_flip, cfg.hflip, cfg.hue, cfg.brightness) == (True, False, 0.2, 0.0)
    assert named_config("vox-256").hflip  # vox-256.yaml's: both flips, jitter 0.1
