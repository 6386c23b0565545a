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
feature index at the same frame rate). Split (:func:`split_frames`): ``ceil(val_fraction x T)``
validation frames in ``val_blocks`` contiguous blocks spread evenly over the video, the last one
ending with it (``val_blocks: 1`` is ER-NeRF's split: the last block only). Blocks are held out
in time, and ``val_gap`` frames on either side of each block belong to neither split, so no
validation frame has a near-identical training neighbour. Every other frame is a training frame.
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


def split_frames(
    n_frames: int, val_fraction: float, blocks: int = 1, gap: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices ``(train, val)`` of a video of ``n_frames``.

    ``ceil(val_fraction x n_frames)`` val frames (at least 1) in ``blocks`` contiguous blocks of
    near-equal size; block ``k`` ends at frame ``round(n_frames x (k + 1) / blocks)``, so the
    last block ends the video and ``blocks=1`` holds out the last block only. ``gap`` frames on
    either side of a block are in neither split. At least one training frame always remains.
    """
    n_val = min(max(1, math.ceil(val_fraction * n_frames)), max(n_frames - 1, 0))
    blocks = max(1, min(blocks, n_val))
    is_val = np.zeros(n_frames, bool)
    near = np.zeros(n_frames, bool)
    sizes = [n_val // blocks + (k < n_val % blocks) for k in range(blocks)]
    for k, size in enumerate(sizes):
        end = round(n_frames * (k + 1) / blocks)
        start = max(0, end - size)
        is_val[start:end] = True
        near[max(0, start - gap) : min(n_frames, end + gap)] = True
    train = ~near
    if not train.any():  # a gap that leaves nothing to train on is dropped
        train = ~is_val
    idx = np.arange(n_frames)
    return idx[train], idx[is_val]


def split_rule(n_frames: int, val_fraction: float, blocks: int, gap: int) -> str:
    """The split in words, for the transforms files."""
    return (
        f"ceil({val_fraction:g} x {n_frames}) val frames in up to {blocks} contiguous block(s) spread "
        f"evenly, the last ending the video; {gap} frame(s) on either side of each block in "
        "neither split; all other frames train"
    )


def transforms(
    pose: dict[str, np.ndarray],
    fps: float,
    val_fraction: float,
    val_blocks: int = 1,
    val_gap: int = 0,
) -> dict[str, dict]:
    """``{"train": {...}, "val": {...}}`` transforms documents from ``head_pose.npz`` arrays;
    the split is :func:`split_frames` ``(T, val_fraction, val_blocks, val_gap)``."""
    width, height = (int(v) for v in pose["image_size"])
    k = pose["K"].astype(float)
    c2w = camera_to_world(pose["R"].astype(float), pose["t"].astype(float))
    n = len(c2w)
    train, val = split_frames(n, val_fraction, val_blocks, val_gap)
    rule = split_rule(n, val_fraction, val_blocks, val_gap)
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
