"""NeRF-style camera files from the head pose: ``transforms_train.json``, ``transforms_val.json``.

The head is held still and the camera moves around it. World = the template's head frame turned
to OpenGL axes (+x: the person's left, +y: up, +z: out of the face), metres.
``transform_matrix`` is the 4x4 camera-to-world matrix with OpenGL camera axes (x right, y up,
looking down -z), as instant-ngp / nerfstudio and AD-NeRF / ER-NeRF read it. Keys of both files::

    {"w", "h", "fl_x", "fl_y", "cx", "cy", "camera_angle_x", "focal_len" (= fl_x, AD-NeRF),
     "fps", "split", "split_rule", "n_frames_total",
     "frames": [{"img_id", "aud_id", "frame_index", "time", "face_detected",
                 "transform_matrix"}]}

``img_id`` / ``aud_id`` / ``frame_index`` are the 0-based frame index in the video (the audio
feature index at the same frame rate). Split: the last ``ceil(val_fraction x T)`` frames form one
contiguous validation block (held out in time, so nothing in it is interpolated from training
neighbours); all frames before it are training frames.
"""

from __future__ import annotations

import math

import numpy as np

_FLIP = np.diag([1.0, -1.0, -1.0])  # OpenCV <-> OpenGL axes (both for the world and the camera)


def camera_to_world(rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """``(T, 4, 4)`` OpenGL camera-to-world matrices from head poses ``R (T,3,3), t (T,3)``."""
    r_t = np.transpose(rot, (0, 2, 1))
    c2w = np.tile(np.eye(4), (len(rot), 1, 1))
    c2w[:, :3, :3] = _FLIP @ r_t @ _FLIP
    c2w[:, :3, 3] = -np.einsum("ij,tjk,tk->ti", _FLIP, r_t, trans)
    return c2w


def split_frames(n_frames: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices ``(train, val)``: val is the last contiguous block (at least 1 frame)."""
    n_val = min(max(1, math.ceil(val_fraction * n_frames)), max(n_frames - 1, 0))
    idx = np.arange(n_frames)
    return idx[: n_frames - n_val], idx[n_frames - n_val :]


def transforms(pose: dict[str, np.ndarray], fps: float, val_fraction: float) -> dict[str, dict]:
    """``{"train": {...}, "val": {...}}`` transforms documents from ``head_pose.npz`` arrays."""
    width, height = (int(v) for v in pose["image_size"])
    k = pose["K"].astype(float)
    c2w = camera_to_world(pose["R"].astype(float), pose["t"].astype(float))
    n = len(c2w)
    train, val = split_frames(n, val_fraction)
    rule = (
        f"frames 0..{len(train) - 1} train, {len(train)}..{n - 1} val: the last "
        f"ceil({val_fraction:g} x {n}) frames held out as one contiguous block"
    )
    base = {
        "w": width,
        "h": height,
        "fl_x": float(k[0, 0]),
        "fl_y": float(k[1, 1]),
        "cx": float(k[0, 2]),
        "cy": float(k[1, 2]),
        "camera_angle_x": 2 * math.atan(width / (2 * float(k[0, 0]))),
        "focal_len": float(k[0, 0]),
        "fps": fps,
        "n_frames_total": n,
        "split_rule": rule,
    }
    out = {}
    for name, frames in (("train", train), ("val", val)):
        out[name] = {
            **base,
            "split": name,
            "frames": [
                {
                    "img_id": int(i),
                    "aud_id": int(i),
                    "frame_index": int(i),
                    "time": float(i / fps),
                    "face_detected": bool(not pose["interpolated"][i]),
                    "transform_matrix": np.round(c2w[i], 7).tolist(),
                }
                for i in frames
            ],
        }
    return out
