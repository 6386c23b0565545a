"""Helpers of the mocap tests: synthetic ground-truth motion and perception-format files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from twinflow.mocap import skeleton
from twinflow.mocap.common import project


def ground_truth(body, n_frames: int = 8, seed: int = 0, depth: float = 3.0):
    """A short random but plausible motion of ``body``: prior-mean pose plus smooth joint
    oscillations, a slow turn, a drift in depth; returns ``(pose, transl, shape)`` tensors."""
    g = torch.Generator().manual_seed(seed)
    t = (torch.arange(n_frames, dtype=torch.float32) / 25.0)[:, None, None]  # 25 fps
    pose = torch.as_tensor(body.prior.mean, dtype=torch.float32).expand(n_frames, -1, -1).clone()
    weight = torch.as_tensor(body.prior.weight, dtype=torch.float32)
    for part, amp in (("body", 0.7), ("lhand", 0.5), ("rhand", 0.5)):
        idx = body.parts[part]
        # stiff joints (spine, neck, clavicles: high prior weight) move less
        a = amp * torch.randn(1, len(idx), 3, generator=g) / (1 + weight[idx])[None, :, None]
        ph = torch.rand(1, len(idx), 1, generator=g) * 6.28
        pose[:, idx] += a * torch.sin(2 * np.pi * 1.0 * t + ph)
    # hinge joints bend their own way: keep the ground truth inside the limits
    for h in body.prior.hinges:
        ax = torch.as_tensor(h.axis, dtype=torch.float32)
        along = (pose[:, h.joint] * ax).sum(-1, keepdim=True)
        pose[:, h.joint] += torch.relu(-along) * ax * 1.2
    up = Rotation.from_rotvec(body.upright_orient())
    yaw = 0.5 * np.sin(2 * np.pi * 0.5 * t[:, 0, 0].numpy() + 1.0)
    pose[:, 0] = torch.as_tensor(
        np.stack([(Rotation.from_rotvec([0, y, 0]) * up).as_rotvec() for y in yaw]),
        dtype=torch.float32,
    )
    tt = t[:, 0]
    transl = torch.cat([0.1 * torch.sin(3 * tt), 0.05 + 0 * tt, depth + 0.5 * tt], 1)
    shape = body.initial_shape().clone()
    return pose, transl, shape


def observe(body, pose, transl, shape, width=512, height=512, focal=None):
    """Project the ground truth: ``Observations`` of every point the backend defines."""
    focal = focal or 1.2 * max(width, height)
    with torch.no_grad():
        pts = body(pose, transl, shape)["points"]
    uv = project(pts, focal, width / 2, height / 2).numpy()
    conf = np.ones(uv.shape[:2], np.float32) * body.point_defined
    return skeleton.Observations(
        xy=uv.astype(np.float32),
        conf=conf,
        width=width,
        height=height,
        fps=25.0,
        body_present=np.ones(len(uv), bool),
    )


def write_perception(
    folder: Path, obs: skeleton.Observations | None, n_frames: int, fps=25.0, size=512
):
    """``body.npz``, ``face.npz`` (perception formats) and ``meta.json`` in ``folder``;
    ``obs=None`` writes files of a video in which nobody was found."""
    folder.mkdir(parents=True, exist_ok=True)
    n = n_frames
    pose = np.full((n, 33, 4), np.nan, np.float32)
    hands = np.full((n, 2, 21, 3), np.nan, np.float32)
    ibug = np.zeros((n, 68, 3), np.float32)
    present = np.zeros(n, bool)
    hand_present = np.zeros((n, 2), bool)
    detected = np.zeros(n, bool)
    if obs is not None:
        xy = obs.xy
        pose[..., :2] = xy[:, skeleton.GROUPS["pose"]]
        pose[..., 2] = 0
        pose[..., 3] = 0.99
        hands[:, 0, :, :2] = xy[:, skeleton.GROUPS["lhand"]]
        hands[:, 1, :, :2] = xy[:, skeleton.GROUPS["rhand"]]
        hands[..., 2] = 0
        ibug[:, 17:, :2] = xy[:, skeleton.GROUPS["face"]]
        present[:] = True
        hand_present[:] = True
        detected[:] = True
    np.savez(
        folder / "body.npz",
        pose=pose,
        pose_world=np.zeros((n, 33, 3), np.float32),
        pose_present=present,
        hands=hands,
        hands_world=np.zeros((n, 2, 21, 3), np.float32),
        hand_present=hand_present,
        hand_score=hand_present.astype(np.float32) * 0.95,
        info=np.array("{}"),
    )
    np.savez(
        folder / "face.npz",
        landmarks=np.zeros((n, 478, 3), np.float32),
        ibug68=ibug,
        detected=detected,
        interpolated=~detected,
        confidence=detected.astype(np.float32),
        info=np.array("{}"),
    )
    meta = {"size": [size, size], "fps": fps, "n_frames": n}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder
