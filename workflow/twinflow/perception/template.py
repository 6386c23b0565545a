"""A rigid face template from the twin's own landmarks (mediapipe ships no canonical face model).

Every detected frame's rigid points (:data:`~twinflow.perception.landmarks.RIGID`: forehead, nose
bridge, temples, eye corners) in mediapipe's pixel-and-depth coordinates are a rotated, scaled
and shifted copy of one rigid shape, plus noise and expression leaks. Generalized Procrustes
analysis finds that shape: align every frame to the current mean by a similarity transform
(Umeyama), take the per-point *median* of the aligned frames, drop frames whose alignment residual
is an outlier (3 robust sigmas above the median), repeat. The mean is then rotated to a canonical
frontal orientation and scaled to metres by a nominal adult outer-eye-corner distance.

``template.npz``:

================  ================  ======================================================
key               shape, dtype      meaning
================  ================  ======================================================
vertices          (478, 3) float32  all mesh points, metres, head frame (below)
rigid_index       (K,) int16        indices of the rigid points used for pose
rigid_residual    (K,) float32      RMS distance of each rigid point from the Procrustes
                                    mean over the video after alignment, metres
rigid_reproj_px   (K,) float32      RMS reprojection error of each rigid point over the
                                    detected frames with the final poses, pixels
info              JSON text         frames used, scale, focal length, convention
================  ================  ======================================================

Head frame (OpenCV-like, so a frontal head has rotation ~identity in camera coordinates): origin
at the centroid of the rigid points, +x from the person's right outer eye corner towards the left
one (image right), +y down the face (forehead towards the nose base), +z into the head (away from
a camera facing the person). Non-rigid points (lips, jaw, lids) are medians over the video.

The stage ``head_pose`` then refines this shape by triangulation at the estimated focal length
(:func:`twinflow.perception.head_pose.solve_head_pose`) and writes ``template.npz``.
"""

from __future__ import annotations

import numpy as np

from twinflow.errors import InputError
from twinflow.perception.landmarks import OUTER_EYE_CORNERS, RIGID

FOREHEAD, NOSE_BASE = 10, 2


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similarity transforms mapping ``src (N, K, 3)`` onto ``dst (K, 3)`` in least squares.

    Returns scale ``(N,)``, rotation ``(N, 3, 3)`` and translation ``(N, 3)`` with
    ``dst ~ s * R @ src + t`` (Umeyama 1991; proper rotations only).
    """
    mu_s = src.mean(axis=1, keepdims=True)
    mu_d = dst.mean(axis=0)
    xs, xd = src - mu_s, dst - mu_d
    cov = np.einsum("ki,nkj->nij", xd, xs) / src.shape[1]
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones((len(src), 3))
    d[:, 2] = np.sign(np.linalg.det(u @ vt))
    rot = u @ (d[:, :, None] * vt)
    var_s = (xs**2).sum(axis=(1, 2)) / src.shape[1]
    scale = (sig * d).sum(axis=1) / np.maximum(var_s, 1e-12)
    trans = mu_d - scale[:, None] * np.einsum("nij,nj->ni", rot, mu_s[:, 0])
    return scale, rot, trans


def apply(scale: np.ndarray, rot: np.ndarray, trans: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``s * R @ p + t`` for every frame: ``pts (N, K, 3)`` -> ``(N, K, 3)``."""
    return scale[:, None, None] * np.einsum("nij,nkj->nki", rot, pts) + trans[:, None]


def _normalise(shape: np.ndarray) -> np.ndarray:
    shape = shape - shape.mean(axis=0)
    return shape / np.sqrt((shape**2).sum(axis=1).mean())


def canonical_frame(
    vertices: np.ndarray, rigid: list[int], eye_corner_distance_m: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """The head frame of a face ``(478, 3)``: rotation (rows are the axes), origin and the
    factor to metres; ``(vertices - origin) @ rotation.T * factor`` is in the head frame."""
    x = vertices[OUTER_EYE_CORNERS[1]] - vertices[OUTER_EYE_CORNERS[0]]
    x = x / np.linalg.norm(x)
    y = vertices[NOSE_BASE] - vertices[FOREHEAD]
    y = y - (y @ x) * x
    y = y / np.linalg.norm(y)
    rotation = np.stack([x, y, np.cross(x, y)])
    metres = eye_corner_distance_m / np.linalg.norm(
        vertices[OUTER_EYE_CORNERS[1]] - vertices[OUTER_EYE_CORNERS[0]]
    )
    return rotation, vertices[rigid].mean(axis=0), float(metres)


def to_head_frame(
    vertices: np.ndarray, rigid: list[int], eye_corner_distance_m: float
) -> np.ndarray:
    """``vertices (478, 3)`` moved, turned and scaled into the head frame (metres)."""
    rotation, origin, metres = canonical_frame(vertices, rigid, eye_corner_distance_m)
    return (vertices - origin) @ rotation.T * metres


def build_template(
    landmarks: np.ndarray,
    use: np.ndarray,
    *,
    eye_corner_distance_m: float = 0.09,
    rigid: list[int] = RIGID,
    iterations: int = 15,
    max_frames: int = 2000,
) -> dict[str, np.ndarray | dict]:
    """The arrays of ``template.npz`` from ``landmarks (T, 478, 3)`` and frames ``use (T,)``.

    At most ``max_frames`` evenly spaced frames are used. Raises :class:`InputError` with fewer
    than 3 usable frames.
    """
    frames = np.flatnonzero(use)
    if len(frames) < 3:
        raise InputError(f"only {len(frames)} frames with a face: cannot build a face template")
    if len(frames) > max_frames:
        frames = frames[np.linspace(0, len(frames) - 1, max_frames).round().astype(int)]
    full = landmarks[frames].astype(np.float64)
    pts = full[:, rigid]
    ref = _normalise(np.median(pts - pts.mean(axis=1, keepdims=True), axis=0))
    inliers = np.ones(len(pts), bool)
    for _ in range(iterations):
        scale, rot, trans = umeyama(pts, ref)
        aligned = apply(scale, rot, trans, pts)
        resid = np.sqrt(((aligned - ref) ** 2).sum(-1).mean(-1))
        med = np.median(resid)
        mad = 1.4826 * np.median(np.abs(resid - med))
        inliers = resid <= med + 3 * max(mad, 1e-9)
        new_ref = _normalise(np.median(aligned[inliers], axis=0))
        change = np.abs(new_ref - ref).max()
        ref = new_ref
        if change < 1e-6:
            break
    scale, rot, trans = umeyama(pts, ref)
    vertices = np.median(apply(scale, rot, trans, full)[inliers], axis=0)
    canon, centre, metres = canonical_frame(vertices, rigid, eye_corner_distance_m)
    vertices = (vertices - centre) @ canon.T * metres
    # residual of each rigid point, in metres, with the final alignment
    aligned = (apply(scale, rot, trans, pts)[inliers] - centre) @ canon.T * metres
    rigid_residual = np.sqrt(((aligned - vertices[rigid]) ** 2).sum(-1).mean(0))
    return {
        "vertices": vertices.astype(np.float32),
        "rigid_index": np.array(rigid, np.int16),
        "rigid_residual": rigid_residual.astype(np.float32),
        "info": {
            "frames_used": int(inliers.sum()),
            "frames_rejected": int((~inliers).sum()),
            "eye_corner_distance_m": eye_corner_distance_m,
            "axes": "origin: rigid-point centroid; +x: towards the person's left eye (image "
            "right); +y: down the face; +z: into the head (OpenCV-like)",
            "units": "metres",
        },
    }
