"""Index maps into mediapipe's 478-point face mesh (468 mesh points + 10 iris points).

"Left" and "right" are the person's own: ``LEFT_EYE`` is the eye on the image's right side in an
unmirrored video. Contours are closed loops in drawing order (checked against mediapipe's
``FACEMESH_*`` connection sets in the tests).
"""

from __future__ import annotations

import numpy as np

N_LANDMARKS = 478

# Face silhouette, clockwise in the image starting at the top of the forehead (10).
FACE_OVAL = [
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
]  # fmt: skip
LIPS_OUTER = [
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
]  # fmt: skip
LIPS_INNER = [
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191,
]  # fmt: skip
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
LEFT_BROW = [276, 283, 282, 295, 285, 336, 296, 334, 293, 300]
RIGHT_BROW = [46, 53, 52, 65, 55, 107, 66, 105, 63, 70]
LEFT_IRIS = [473, 474, 475, 476, 477]  # centre first
RIGHT_IRIS = [468, 469, 470, 471, 472]

# Six points per eye for the eye aspect ratio (Soukupova & Cech 2016): corner, two upper lid
# points, the other corner, two lower lid points (p1..p6).
RIGHT_EYE_EAR = [33, 160, 158, 133, 153, 144]
LEFT_EYE_EAR = [362, 385, 387, 263, 373, 380]
MOUTH_CORNERS = (61, 291)
INNER_LIP_MIDDLE = (13, 14)  # upper and lower inner lip, centre

# Points that move with the skull and little with expressions: forehead, nose bridge and tip,
# temples and the sides of the face at ear level, and the eye corners (canthi sit on bone).
# Lips, cheeks, jaw and eyelids are left out. Used for the rigid template and head pose.
RIGID = [
    10, 151, 9, 8, 108, 337, 109, 338, 67, 297, 69, 299, 104, 333,  # forehead
    168, 6, 197, 195, 5, 4, 1,  # nose bridge and tip
    54, 284, 21, 251, 162, 389, 127, 356, 234, 454,  # temples, face sides
    33, 133, 362, 263, 130, 359,  # eye corners
]  # fmt: skip
OUTER_EYE_CORNERS = (33, 263)  # right, left: sets the template's metric scale

# mediapipe -> iBUG 300-W 68-point order (dlib's shape_predictor_68 layout). An approximate
# correspondence (mediapipe's mesh has no exact iBUG points) picked from the mesh topology:
#   0-16 jaw from the right ear-level face side (image left) over the chin (8: 152) to the left;
#   17-21 right brow (upper edge, outer to inner), 22-26 left brow (inner to outer);
#   27-30 nose bridge to tip, 31-35 nostril base right to left (33: subnasale 2);
#   36-41 right eye (36 outer corner 33, 39 inner corner 133, 37-38 upper lid, 40-41 lower lid),
#   42-47 left eye (42 inner corner 362, 45 outer corner 263);
#   48-59 outer lips from the right corner (61) over the upper lip, 60-67 inner lips.
IBUG68 = [
    234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 323, 454,  # jaw
    70, 63, 105, 66, 107,  # right brow
    336, 296, 334, 293, 300,  # left brow
    168, 197, 5, 4,  # nose bridge
    98, 97, 2, 326, 327,  # nostrils
    33, 160, 158, 133, 153, 144,  # right eye
    362, 385, 387, 263, 373, 380,  # left eye
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,  # outer lips
    78, 81, 13, 311, 308, 402, 14, 178,  # inner lips
]  # fmt: skip


def to_pixels(normalized: np.ndarray, width: int, height: int) -> np.ndarray:
    """mediapipe's normalised ``(..., 3)`` landmarks to pixels: ``x*W, y*H`` and depth ``z*W``.

    mediapipe's z is relative depth (smaller is nearer the camera) on roughly the scale of x, so
    it is scaled by the image width; the result is a right-handed x-right, y-down, z-away frame.
    """
    scale = np.array([width, height, width], np.float32)
    return (normalized * scale).astype(np.float32)


def box_of(points: np.ndarray) -> np.ndarray:
    """Axis-aligned box ``(..., 4)`` as ``x0, y0, x1, y1`` of ``(..., N, >=2)`` points."""
    return np.concatenate([points[..., :2].min(axis=-2), points[..., :2].max(axis=-2)], axis=-1)
