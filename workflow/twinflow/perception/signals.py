"""Blink and mouth-open signals per frame, from the face landmarks.

``signals.npz`` (``T`` frames, float32 unless noted):

==============  ==========  ==========================================================
key             shape       meaning
==============  ==========  ==========================================================
ear_left        (T,)        eye aspect ratio of the left eye (3-D landmark distances)
ear_right       (T,)        ... right eye
blink           (T,)        AU45-like eye closure 0 (open) .. 1 (closed), both eyes
mouth_open      (T,)        inner lip gap / mouth width (0 closed, ~0.3-0.6 wide open)
interpolated    (T,) bool   face filled in (copied from face.npz)
info            JSON        the open and closed EAR used to normalise ``blink``
==============  ==========  ==========================================================

The eye aspect ratio (Soukupova and Cech 2016) is ``(|p2-p6| + |p3-p5|) / (2 |p1-p4|)``; it is
computed in 3-D (x, y and mediapipe's depth, all in pixels) so that turning the head changes it
less. ``blink = clip((open - ear) / (open - closed), 0, 1)`` with ``open`` the median EAR of the
video (eyes are open most of the time) and ``closed = closed_ratio x open``, a fixed ratio rather
than the video's minimum so that a video without blinks does not stretch noise to 0..1.
"""

from __future__ import annotations

import numpy as np

from twinflow.perception.landmarks import (
    INNER_LIP_MIDDLE,
    LEFT_EYE_EAR,
    MOUTH_CORNERS,
    RIGHT_EYE_EAR,
)

CLOSED_RATIO = 0.3  # EAR of a closed eye relative to the open EAR (mediapipe: ~0.25-0.35)


def eye_aspect_ratio(landmarks: np.ndarray, idx: list[int]) -> np.ndarray:
    """EAR ``(T,)`` of one eye from landmarks ``(T, 478, 3)`` and its six indices."""
    p = landmarks[:, idx]
    dist = lambda a, b: np.linalg.norm(p[:, a] - p[:, b], axis=-1)  # noqa: E731
    return ((dist(1, 5) + dist(2, 4)) / (2.0 * np.maximum(dist(0, 3), 1e-6))).astype(np.float32)


def mouth_open(landmarks: np.ndarray) -> np.ndarray:
    """Inner lip gap over mouth width, ``(T,)``."""
    gap = np.linalg.norm(
        landmarks[:, INNER_LIP_MIDDLE[0]] - landmarks[:, INNER_LIP_MIDDLE[1]], axis=-1
    )
    width = np.linalg.norm(landmarks[:, MOUTH_CORNERS[0]] - landmarks[:, MOUTH_CORNERS[1]], axis=-1)
    return (gap / np.maximum(width, 1e-6)).astype(np.float32)


def blink_signal(
    ear: np.ndarray, reference: np.ndarray, closed_ratio: float = CLOSED_RATIO
) -> tuple[np.ndarray, float, float]:
    """AU45-like ``(T,)`` 0..1 from EAR ``(T,)``; ``reference`` marks frames that set the
    open-eye EAR (detected faces). Returns ``(blink, open_ear, closed_ear)``."""
    base = ear[reference] if reference.any() else ear
    open_ear = float(np.median(base)) if len(base) else 0.3
    closed_ear = closed_ratio * open_ear
    blink = np.clip((open_ear - ear) / max(open_ear - closed_ear, 1e-6), 0.0, 1.0)
    return blink.astype(np.float32), open_ear, closed_ear


def compute_signals(landmarks: np.ndarray, detected: np.ndarray) -> dict[str, np.ndarray | dict]:
    """The arrays of ``signals.npz`` from landmarks ``(T, 478, 3)`` and ``detected (T,)``."""
    left = eye_aspect_ratio(landmarks, LEFT_EYE_EAR)
    right = eye_aspect_ratio(landmarks, RIGHT_EYE_EAR)
    blink, open_ear, closed_ear = blink_signal((left + right) / 2, detected)
    return {
        "ear_left": left,
        "ear_right": right,
        "blink": blink,
        "mouth_open": mouth_open(landmarks),
        "interpolated": ~detected,
        "info": {"open_ear": open_ear, "closed_ear": closed_ear, "closed_ratio": CLOSED_RATIO},
    }
