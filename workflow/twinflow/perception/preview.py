"""Preview frames: the matte, face contours, 68 points, head box and axes, body and hands.

Colours: matte green tint; face contours white; iBUG-68 points red; head box yellow; head axes
x red (towards the person's left), y green (down the face), blue: the direction the face
points (5 cm each, from the template origin); pose cyan; hands magenta. Frames whose
face was interpolated say so in red.
"""

from __future__ import annotations

import cv2
import numpy as np

from twinflow.perception.head_pose import project
from twinflow.perception.landmarks import (
    FACE_OVAL,
    LEFT_BROW,
    LEFT_EYE,
    LIPS_INNER,
    LIPS_OUTER,
    RIGHT_BROW,
    RIGHT_EYE,
)

CONTOURS = [FACE_OVAL, LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE, LIPS_OUTER, LIPS_INNER]
GREEN = np.array([0, 255, 0], np.float32)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def tint(rgb: np.ndarray, alpha: np.ndarray, strength: float = 0.35) -> np.ndarray:
    weight = alpha.astype(np.float32) * (strength / 255.0)
    green = np.empty_like(rgb)
    green[:] = GREEN.astype(np.uint8)
    return cv2.blendLinear(green, rgb, weight, 1.0 - weight)


def draw_frame(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    face: dict[str, np.ndarray],
    body: dict[str, np.ndarray],
    pose: dict[str, np.ndarray] | None,
    signals: dict[str, np.ndarray],
    t: int,
    connections: tuple[list, list],
) -> np.ndarray:
    """One preview frame ``(H, W, 3) uint8`` for frame ``t`` (``alpha``: its matte)."""
    out = tint(rgb, alpha) if alpha is not None else rgb.copy()
    if face["detected"].any():  # else no landmarks exist, not even interpolated ones
        draw_face(out, face, t)
    if pose is not None:
        axes = np.array([[0, 0, 0], [0.05, 0, 0], [0, 0.05, 0], [0, 0, -0.05]])
        uv = project(axes, pose["rvec"][t : t + 1], pose["t"][t : t + 1], pose["K"])[0]
        for k, colour in ((1, (255, 0, 0)), (2, (0, 255, 0)), (3, (0, 0, 255))):
            cv2.line(out, _pt(uv[0]), _pt(uv[k]), colour, 2, cv2.LINE_AA)
    pose_conn, hand_conn = connections
    if body["pose_present"][t]:
        pts = body["pose"][t]
        for a, b in pose_conn:
            if min(pts[a, 3], pts[b, 3]) >= 0.5:
                cv2.line(out, _pt(pts[a]), _pt(pts[b]), (0, 255, 255), 2, cv2.LINE_AA)
    for slot in range(2):
        if body["hand_present"][t, slot]:
            pts = body["hands"][t, slot]
            for a, b in hand_conn:
                cv2.line(out, _pt(pts[a]), _pt(pts[b]), (255, 0, 255), 1, cv2.LINE_AA)
    text = f"{t:5d}  blink {signals['blink'][t]:.2f}  mouth {signals['mouth_open'][t]:.2f}"
    cv2.putText(out, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    if not face["detected"][t]:
        label = "NO FACE (interpolated)" if face["detected"].any() else "NO FACE"
        cv2.putText(out, label, (8, 42), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 0, 0), 2)
    return out


def draw_face(out: np.ndarray, face: dict[str, np.ndarray], t: int) -> None:
    """Face-mesh contours (red-tinted where interpolated), iBUG points and the head box, in
    place."""
    lm = face["landmarks"][t]
    interpolated = bool(face["interpolated"][t])
    line = (255, 120, 120) if interpolated else (255, 255, 255)
    for contour in CONTOURS:
        pts = np.round(lm[contour, :2]).astype(np.int32)
        cv2.polylines(out, [pts], True, line, 1, cv2.LINE_AA)
    for p in face["ibug68"][t]:
        cv2.circle(out, _pt(p), 2, (255, 0, 0), -1, cv2.LINE_AA)
    x0, y0, x1, y1 = face["head_box"][t]
    cv2.rectangle(out, _pt((x0, y0)), _pt((x1, y1)), (255, 255, 0), 1)
