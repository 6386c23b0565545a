"""Face landmarks for the AKD metric.

:func:`face_landmarks` is the one function the evaluation calls. It uses mediapipe's face mesh
directly (:func:`mediapipe_face_landmarks`) until the perception stage
(``twinflow.perception``) exposes its face-landmark function; swap the call here then.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

DETECT_SIZE = 512  # small frames are upscaled to this side before detection (64 px faces
# are found at 512, mostly not at 256)


def mediapipe_face_landmarks(
    frames: Sequence[np.ndarray], detect_size: int = DETECT_SIZE
) -> list[np.ndarray | None]:
    """The 468 face-mesh landmarks ``(468, 2)`` in pixel coordinates of each RGB uint8 frame, or
    None where no face is found. Frames are handled as independent images (static mode), so the
    result of a frame does not depend on its neighbours."""
    import mediapipe as mp

    out: list[np.ndarray | None] = []
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=False
    ) as mesh:
        for rgb in frames:
            h, w = rgb.shape[:2]
            scale = detect_size / max(h, w) if max(h, w) < detect_size else 1.0
            img = rgb
            if scale != 1.0:
                img = cv2.resize(
                    rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC
                )
            result = mesh.process(np.ascontiguousarray(img))
            if not result.multi_face_landmarks:
                out.append(None)
                continue
            pts = result.multi_face_landmarks[0].landmark
            out.append(np.array([[p.x * w, p.y * h] for p in pts[:468]], dtype=np.float64))
    return out


def face_landmarks(frames: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """Face landmarks per frame (pixels), None where no face is found."""
    return mediapipe_face_landmarks(frames)


def average_keypoint_distance(
    pred: list[np.ndarray | None], real: list[np.ndarray | None]
) -> tuple[float | None, int]:
    """AKD: mean landmark distance (pixels) over frames where both have a face; and that count."""
    dists = [
        float(np.linalg.norm(p - r, axis=-1).mean())
        for p, r in zip(pred, real, strict=True)
        if p is not None and r is not None
    ]
    return (float(np.mean(dists)) if dists else None), len(dists)
