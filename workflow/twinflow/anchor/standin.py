"""DEVELOPMENT AND TEST STAND-IN for the mesh renders: skeletons drawn from perception landmarks.

Not the method. Make-Your-Anchor conditions on renders of the fitted body mesh
(:mod:`twinflow.anchor.condition`, from the mocap fit through :mod:`twinflow.render`). This module
draws mediapipe pose (33 points), hands (21 per hand) and face-mesh contours on black, in the same
``(T, H, W, 3) uint8`` shape, so that tests and development runs can exercise the anchor models
without a mocap fit. The workflow uses it only when ``config.yaml: anchor: condition: standin``
(a development switch; the default is ``mesh``), and every file made with it records so.
"""

from __future__ import annotations

import cv2
import numpy as np

POSE_EDGES = [
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
    (23, 25), (25, 27), (24, 26), (26, 28), (27, 29), (28, 30), (29, 31), (30, 32),
    (15, 17), (15, 19), (15, 21), (16, 18), (16, 20), (16, 22), (0, 2), (0, 5), (2, 7), (5, 8),
]  # fmt: skip
HAND_EDGES = [
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11),
    (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
]  # fmt: skip
FACE_LOOPS = {
    "oval": [
        10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
        377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
    ],
    "lips": [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185],
    "left_eye": [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466],
    "right_eye": [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246],
    "left_brow": [276, 283, 282, 295, 285, 336, 296, 334, 293, 300],
    "right_brow": [46, 53, 52, 65, 55, 107, 66, 105, 63, 70],
    "nose": [168, 6, 197, 195, 5, 4, 1],
}  # fmt: skip


def _color(i: int, n: int) -> tuple[int, int, int]:
    hsv = np.uint8([[[int(180 * i / max(n, 1)), 220, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def draw_skeleton(
    size: int,
    scale: float,
    pose: np.ndarray | None = None,
    hands: np.ndarray | None = None,
    face: np.ndarray | None = None,
) -> np.ndarray:
    """One ``(size, size, 3)`` frame: ``pose (33, >=3)`` with visibility in column 3 when present,
    ``hands (2, 21, >=2)``, ``face (478, >=2)``, all in pixels of the source frame, which is
    ``scale`` times ``size``'s pixels (e.g. 512 -> 64: ``scale = 1/8``)."""
    img = np.zeros((size, size, 3), np.uint8)
    thick = max(1, int(round(size / 128)))
    sub = 4  # sub-pixel precision of cv2 drawing

    def pt(p):
        return (int(round(p[0] * scale * (1 << sub))), int(round(p[1] * scale * (1 << sub))))

    if pose is not None and np.isfinite(pose[:, :2]).all():
        vis = pose[:, 3] if pose.shape[1] > 3 else np.ones(len(pose))
        for k, (a, b) in enumerate(POSE_EDGES):
            if vis[a] > 0.3 and vis[b] > 0.3:
                cv2.line(
                    img,
                    pt(pose[a]),
                    pt(pose[b]),
                    _color(k, len(POSE_EDGES)),
                    thick + 1,
                    cv2.LINE_AA,
                    sub,
                )
    if hands is not None:
        for h in range(len(hands)):
            if not np.isfinite(hands[h][:, :2]).all():
                continue
            for k, (a, b) in enumerate(HAND_EDGES):
                color = _color(k, len(HAND_EDGES))
                cv2.line(img, pt(hands[h][a]), pt(hands[h][b]), color, thick, cv2.LINE_AA, sub)
    if face is not None and np.isfinite(face[:, :2]).all():
        for k, loop in enumerate(FACE_LOOPS.values()):
            pts = np.array([pt(face[i]) for i in loop], np.int32)
            closed = k < 5
            cv2.polylines(
                img,
                [pts],
                closed,
                (255, 255, 255) if k else (200, 200, 200),
                thick,
                cv2.LINE_AA,
                sub,
            )
    return img


def skeleton_frames(
    size: int,
    source_size: int,
    pose: np.ndarray | None,
    hands: np.ndarray | None,
    face: np.ndarray | None,
) -> np.ndarray:
    """``(T, size, size, 3) uint8`` stand-in conditioning for ``T`` frames of perception arrays
    (``body.npz: pose, hands``, ``face.npz: landmarks``) of ``source_size`` frames."""
    n = len(next(a for a in (pose, hands, face) if a is not None))
    scale = size / source_size
    return np.stack(
        [
            draw_skeleton(
                size,
                scale,
                None if pose is None else pose[t],
                None if hands is None else hands[t],
                None if face is None else face[t],
            )
            for t in range(n)
        ]
    )
