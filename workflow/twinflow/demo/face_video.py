"""Animate a still portrait: head sway plus a jaw opening that follows a mouth-open signal."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

# Face-mesh indices (mediapipe 468/478 topology).
LOWER_LIP = [14, 17, 84, 314, 87, 317, 178, 402]
MOUTH_CORNERS = [61, 291]
CHIN = 152


def locate_mouth(rgb: np.ndarray) -> dict[str, np.ndarray | float]:
    """Mouth centre, chin and mouth width in pixels, from mediapipe's bundled face mesh."""
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        result = mesh.process(rgb)
    if not result.multi_face_landmarks:
        raise RuntimeError("no face found in the demo photo")
    h, w = rgb.shape[:2]
    pts = np.array([[p.x * w, p.y * h] for p in result.multi_face_landmarks[0].landmark])
    return {
        "lower_lip": pts[LOWER_LIP].mean(axis=0),
        "chin": pts[CHIN],
        "width": float(np.linalg.norm(pts[MOUTH_CORNERS[0]] - pts[MOUTH_CORNERS[1]])),
    }


def jaw_field(shape: tuple[int, int], mouth: dict, amount: float) -> tuple[np.ndarray, np.ndarray]:
    """Backward-warp maps that move the lower lip and jaw down by ``amount`` pixels."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    lip = mouth["lower_lip"]
    chin = mouth["chin"]
    sx = mouth["width"] * 0.9
    sy = max(chin[1] - lip[1], 8.0)
    # Weight 1 between lip and chin, fading above the lip and below the chin.
    below = np.clip((ys - (lip[1] - 0.15 * sy)) / (0.3 * sy), 0, 1)
    fade = np.exp(-(np.maximum(ys - chin[1], 0) ** 2) / (2 * (0.6 * sy) ** 2))
    across = np.exp(-((xs - lip[0]) ** 2) / (2 * sx**2))
    weight = below * fade * across
    return xs, ys - amount * weight


def animate(
    photo: np.ndarray, mouth_open: np.ndarray, fps: float, seed: int = 0, sway: float = 1.0
) -> Iterator[np.ndarray]:
    """Yield frames: the photo rotated/shifted by a slow sway, jaw opened by ``mouth_open[k]``.

    ``mouth_open`` is ``(K,)`` in ``[0, 1]``, one value per output frame.
    """
    rng = np.random.default_rng(seed)
    h, w = photo.shape[:2]
    mouth = locate_mouth(photo)
    phases = rng.uniform(0, 2 * np.pi, 3)
    centre = (float(mouth["lower_lip"][0]), float(mouth["lower_lip"][1]))
    max_open = 0.35 * mouth["width"]
    for k, value in enumerate(mouth_open):
        t = k / fps
        xs, ys = jaw_field((h, w), mouth, float(value) * max_open)
        frame = cv2.remap(photo, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        angle = sway * 3.0 * np.sin(2 * np.pi * 0.23 * t + phases[0])
        dx = sway * 6.0 * np.sin(2 * np.pi * 0.17 * t + phases[1])
        dy = sway * 3.0 * np.sin(2 * np.pi * 0.31 * t + phases[2])
        m = cv2.getRotationMatrix2D(centre, angle, 1.0)
        m[:, 2] += (dx, dy)
        yield cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REFLECT)
