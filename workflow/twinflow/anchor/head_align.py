"""Head crops: align a face to a canonical square crop, mask the face, blend a new face back.

Alignment is a similarity transform (rotation, uniform scale, shift) that maps five face points
from mediapipe's 478-point mesh (``face.npz: landmarks``) -- the two iris centres, the nose tip
and the mouth corners -- onto fixed positions of a ``size x size`` crop (as FFHQ/ArcFace
alignment does with its five points); the eyes are ``size / head_scale`` apart, so the crop holds
the whole head with hair. Points are smoothed over time first so that crops do not jitter.

The face mask (the region the head model regenerates) is the parsing map's face labels when a
parsing map is given, else the face silhouette of the mesh extended over the forehead; in both
cases dilated a little. Blending warps the new crop back with the inverse transform and mixes it
in with a feathered version of the mask.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

# mediapipe FaceMesh indices (person's left = image right in an unmirrored video)
RIGHT_IRIS, LEFT_IRIS, NOSE_TIP, MOUTH_RIGHT, MOUTH_LEFT = 468, 473, 1, 61, 291
FIVE = (RIGHT_IRIS, LEFT_IRIS, NOSE_TIP, MOUTH_RIGHT, MOUTH_LEFT)
FACE_OVAL = [
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
]  # fmt: skip
FOREHEAD_TOP = 10
CHIN = 152

# Canonical positions in a unit crop for an inter-ocular distance of 1 (scaled by size/head_scale)
_TEMPLATE = np.array(
    [[-0.5, 0.0], [0.5, 0.0], [0.0, 0.45], [-0.38, 0.85], [0.38, 0.85]], np.float64
)
_EYE_LEVEL = 0.44  # eyes at this fraction of the crop height


def template(size: int, head_scale: float) -> np.ndarray:
    """The five target points ``(5, 2)`` in a ``size`` crop."""
    eye = size / head_scale
    return _TEMPLATE * eye + np.array([size / 2, _EYE_LEVEL * size])


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """``(T, 478, >=2)`` mesh landmarks -> ``(T, 5, 2)`` alignment points."""
    return np.asarray(landmarks)[:, FIVE, :2].astype(np.float64)


def align_matrices(
    landmarks: np.ndarray, size: int, head_scale: float, smooth_sigma: float = 1.0
) -> np.ndarray:
    """Similarity transforms ``(T, 2, 3)`` from frame pixels to the ``size`` head crop."""
    pts = five_points(landmarks)
    if smooth_sigma > 0 and len(pts) > 1:
        pts = gaussian_filter1d(pts, smooth_sigma, axis=0, mode="nearest")
    dst = template(size, head_scale)
    out = np.zeros((len(pts), 2, 3), np.float32)
    for t, src in enumerate(pts):
        m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
        if m is None:  # degenerate points: keep the previous transform
            m = out[t - 1] if t else np.array([[1, 0, 0], [0, 1, 0]], np.float64)
        out[t] = m
    return out


def scale_matrix(m: np.ndarray, factor: float) -> np.ndarray:
    """The same crop taken from a frame resized by ``factor`` (e.g. 512 px -> 64 px: 1/8)."""
    m = np.array(m, np.float64, copy=True)
    m[..., :2] /= factor
    return m.astype(np.float32)


def crop(frame: np.ndarray, m: np.ndarray, size: int, interp=cv2.INTER_AREA) -> np.ndarray:
    """The aligned ``size`` crop of ``frame`` (border pixels replicated)."""
    flags = interp if interp != cv2.INTER_AREA else cv2.INTER_LINEAR
    if interp == cv2.INTER_AREA:
        scale = float(np.sqrt(abs(np.linalg.det(np.asarray(m)[:, :2]))))
        if scale < 0.7:  # shrinking a lot: pre-blur against aliasing
            sigma = 0.5 / scale
            frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    return cv2.warpAffine(frame, m, (size, size), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def landmark_face_mask(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(H, W) uint8`` 255 inside the face silhouette, extended upwards over the forehead."""
    pts = np.asarray(landmarks, np.float64)[:, :2]
    oval = pts[FACE_OVAL]
    # push the upper half of the silhouette up by 25% of the face height (forehead, hairline)
    chin, top = pts[CHIN], pts[FOREHEAD_TOP]
    up = top - chin
    centre_y = (chin[1] + top[1]) / 2
    ext = oval.copy()
    upper = oval[:, 1] < centre_y
    ext[upper] += 0.2 * up
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(ext).astype(np.int32)], 255)
    return mask


def parsing_face_mask(labels: np.ndarray, face_labels: tuple[int, ...]) -> np.ndarray:
    """``(H, W) uint8`` 255 where the parsing label map holds one of ``face_labels``."""
    return np.where(np.isin(labels, face_labels), 255, 0).astype(np.uint8)


def crop_mask(mask: np.ndarray, m: np.ndarray, size: int, dilate: float) -> np.ndarray:
    """A frame mask in crop coordinates, dilated by ``dilate * size`` pixels: ``(size, size)``."""
    out = cv2.warpAffine(mask, m, (size, size), flags=cv2.INTER_LINEAR)
    k = max(1, int(round(dilate * size)))
    out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    return np.where(out > 127, 255, 0).astype(np.uint8)


def feathered(mask: np.ndarray, feather: float) -> np.ndarray:
    """``mask`` (uint8) -> float alpha in [0, 1] with a soft edge of ``feather * size`` pixels,
    zero at the crop's border (so nothing of the crop's edge leaks into the frame)."""
    size = mask.shape[0]
    k = max(1, int(round(feather * size)))
    alpha = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k + 1, k + 1)))
    alpha = cv2.GaussianBlur(alpha.astype(np.float32) / 255.0, (0, 0), k / 2 + 1e-3)
    border = np.zeros_like(alpha)
    cv2.rectangle(border, (1, 1), (size - 2, size - 2), 1.0, -1)
    return np.clip(alpha * border, 0, 1)


def blend_back(frame: np.ndarray, head: np.ndarray, m: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Warp ``head`` (crop) back into ``frame`` with the inverse of ``m``; mix by ``alpha``."""
    h, w = frame.shape[:2]
    inv = cv2.invertAffineTransform(np.asarray(m, np.float64))
    back = cv2.warpAffine(head, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    a = cv2.warpAffine(alpha.astype(np.float32), inv, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    out = frame.astype(np.float32) * (1 - a) + back.astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
