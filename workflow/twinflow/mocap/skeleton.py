"""The common skeleton: the points every body-model backend maps to, and the detections they match.

Fitting code only sees these points, so it does not care which backend it drives.

Observed points (``POINTS``, ``K = 126``), in this order:

==========  ====  ==========================================================================
group       n     points
==========  ====  ==========================================================================
``pose``    33    mediapipe BlazePose landmarks, mediapipe order (``POSE_NAMES``)
``lhand``   21    the person's left hand, mediapipe Hands order (``HAND_NAMES``)
``rhand``   21    the person's right hand
``face``    51    iBUG-68 points 17-67 (brows, nose, eyes, lips; the jaw contour 0-16 is left
                  out: it slides over the face as the head turns), from ``face.npz: ibug68``
==========  ====  ==========================================================================

Kinematic joints (``KIN_NAMES``, 17): anatomical joint centres (pelvis, hips, knees, ankles, balls
of the feet, neck, head, shoulders, elbows, wrists). They are not observed; the trajectory model
reads them (root-relative, in the body's own frame) as its local-pose input, and they are the
same semantic joints in every backend and in AMASS (SMPL joint indices ``KIN_SMPL``).

How each backend defines the points (``body_models.anny_backend`` and ``.smplx_backend`` hold the
tables; "-" = not defined, weight 0 in the fit):

=====================  ===========================================  ===============================
common point           anny (default)                               SMPL-X
=====================  ===========================================  ===============================
pose nose, eyes, ears  anny's COCO keypoint regressor               SMPL-X vertex ids (smplx's
                                                                    ``vertex_ids``)
pose eye inner/outer,  face-landmark vertices (iBUG 39/36, 42/45,   static face landmarks
mouth corners          48/54)                                       (``lmk_faces_idx``)
pose shoulders ...     COCO regressor (shoulders, elbows, wrists,   joints 16-21, 1-2, 4-5, 7-8;
ankles, heels, toes    hips, knees, ankles, heels, big toes)        heel / big-toe vertex ids
pose pinky/index/      bone heads finger5-1 / finger2-1 /           joints pinky1 / index1 /
thumb                  finger1-3                                    thumb2 (+3)
hand wrist, knuckles   bone heads: wrist, finger{1-5}-{1,2,3}       joints 20/21, hand joints
hand fingertips        mesh vertex at the tip of each finger        fingertip vertex ids
face 17-67             mesh vertices found once by running          static landmarks 17-67 of the
                       mediapipe FaceMesh on a render of anny's     model file (``lmk_faces_idx``,
                       head (``anny_face.py``)                      ``lmk_bary_coords``)
kinematic joints       bone heads (root, upperleg01, lowerleg01,    joints 0,1,2,4,5,7,8,10,11,
                       foot, toe3-1, neck01, head, upperarm01,      12,15,16,17,18,19,20,21
                       lowerarm01, wrist)
=====================  ===========================================  ===============================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twinflow.errors import InputError

POSE_NAMES = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
]  # fmt: skip
HAND_NAMES = [
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_mcp", "index_pip",
    "index_dip", "index_tip", "middle_mcp", "middle_pip", "middle_dip", "middle_tip", "ring_mcp",
    "ring_pip", "ring_dip", "ring_tip", "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
]  # fmt: skip
FACE_IBUG = list(range(17, 68))

POINTS = (
    [f"pose/{n}" for n in POSE_NAMES]
    + [f"lhand/{n}" for n in HAND_NAMES]
    + [f"rhand/{n}" for n in HAND_NAMES]
    + [f"face/ibug{i}" for i in FACE_IBUG]
)
N_POINTS = len(POINTS)
GROUPS = {
    "pose": slice(0, 33),
    "lhand": slice(33, 54),
    "rhand": slice(54, 75),
    "face": slice(75, 126),
}
# pose points on the face (nose, eyes, ears, mouth): the face mesh sees these better
POSE_FACE = list(range(0, 11))
POSE_BODY = list(range(11, 33))
# points that set the torso: shoulders and hips
TORSO = [POINTS.index(f"pose/{n}") for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]  # fmt: skip
SHOULDERS = TORSO[:2]
HIPS = TORSO[2:]


def _pose(*names: str) -> list[int]:
    return [POINTS.index(f"pose/{side}_{n}") for n in names for side in ("left", "right")]


# body parts of the observed points (per-part errors): the head is the pose face points and the
# face landmarks, an arm runs from the elbow to the finger tips
PARTS = {
    "torso": TORSO,
    "arms": _pose("elbow", "wrist", "pinky", "index", "thumb")
    + list(range(GROUPS["lhand"].start, GROUPS["rhand"].stop)),
    "legs": _pose("knee", "ankle", "heel", "foot_index"),
    "head": POSE_FACE + list(range(GROUPS["face"].start, GROUPS["face"].stop)),
}

KIN_NAMES = [
    "pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_foot", "right_foot", "neck", "head", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist",
]  # fmt: skip
KIN_SMPL = [0, 1, 2, 4, 5, 7, 8, 10, 11, 12, 15, 16, 17, 18, 19, 20, 21]
KIN_PARENTS = [-1, 0, 0, 1, 2, 3, 4, 5, 6, 0, 9, 9, 9, 11, 12, 13, 14]
N_KIN = len(KIN_NAMES)

# Left/right pairs of POINTS (for mirroring and checks).
_SIDE = {"left": "right", "right": "left", "lhand": "rhand", "rhand": "lhand"}


def mirror_index() -> np.ndarray:
    """For each point, the index of its left/right mirror (itself on the midline)."""
    out = np.arange(N_POINTS)
    ibug_mirror = {}
    pairs = [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35), (32, 34), (36, 45),
             (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (48, 54), (49, 53), (50, 52),
             (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]  # fmt: skip
    for a, b in pairs:
        ibug_mirror[a], ibug_mirror[b] = b, a
    for i, name in enumerate(POINTS):
        group, point = name.split("/")
        if group in ("lhand", "rhand"):
            target = f"{_SIDE[group]}/{point}"
        elif group == "pose":
            parts = point.split("_")
            if parts[0] in ("left", "right"):
                target = "pose/" + "_".join([_SIDE[parts[0]], *parts[1:]])
            elif point in ("mouth_left", "mouth_right"):
                target = "pose/mouth_" + ("right" if point.endswith("left") else "left")
            else:
                target = name
        else:
            k = int(point[4:])
            target = f"face/ibug{ibug_mirror.get(k, k)}"
        out[i] = POINTS.index(target)
    return out


@dataclass
class Observations:
    """2-D detections of the common points for one person track.

    Attributes:
        xy: ``(T, K, 2)`` pixels (0 where unseen).
        conf: ``(T, K)`` confidence 0..1 (0 where unseen).
        width, height: frame size in pixels.
        fps: frame rate.
        body_present: ``(T,)`` the pose model saw a body.
        focal_hint: focal length in pixels from the perception head pose (``None`` if absent).
    """

    xy: np.ndarray
    conf: np.ndarray
    width: int
    height: int
    fps: float
    body_present: np.ndarray
    focal_hint: float | None = None

    @property
    def n_frames(self) -> int:
        return len(self.xy)


def _nan_to(x: np.ndarray, value: float = 0.0) -> np.ndarray:
    return np.where(np.isfinite(x), x, value)


def load_observations(
    body_npz: str | Path,
    face_npz: str | Path | None,
    *,
    width: int,
    height: int,
    fps: float,
    head_pose_npz: str | Path | None = None,
    margin: float = 0.05,
    min_body_fraction: float = 0.1,
    source: str | None = None,
) -> Observations:
    """The common points' detections from the perception stage's ``body.npz`` / ``face.npz``.

    Face landmarks count only in frames where the face tracker found the face
    (``face.npz: detected``). Points predicted outside the frame (more than ``margin`` of its
    size away) get confidence 0: the pose model guesses limbs it cannot see. Raises :class:`InputError` (naming ``source``,
    else the body file) when the pose model saw a person in fewer than ``min_body_fraction`` of
    the frames: there is no one to fit.
    """
    body = _load(body_npz)
    pose = body["pose"].astype(np.float64)
    n = len(pose)
    present = (
        body["pose_present"].astype(bool) if "pose_present" in body else np.isfinite(pose[:, 0, 0])
    )
    if n == 0 or present.mean() < min_body_fraction:
        seen = int(present.sum())
        raise InputError(
            f"no person to fit: a body was detected in {seen} of {n} frames "
            f"(need at least {min_body_fraction:.0%}); the mocap pipeline needs a visible person",
            path=source or body_npz,
        )
    xy = np.zeros((n, N_POINTS, 2))
    conf = np.zeros((n, N_POINTS))
    xy[:, GROUPS["pose"]] = _nan_to(pose[..., :2])
    conf[:, GROUPS["pose"]] = _nan_to(np.clip(pose[..., 3], 0, 1)) * present[:, None]
    if "hands" in body:
        hands = body["hands"].astype(np.float64)
        hp = body.get("hand_present", np.isfinite(hands[:, :, 0, 0]))
        score = body.get("hand_score", hp.astype(np.float64))
        for slot, group in ((0, "lhand"), (1, "rhand")):
            xy[:, GROUPS[group]] = _nan_to(hands[:, slot, :, :2])
            conf[:, GROUPS[group]] = (hp[:, slot] * np.clip(score[:, slot], 0, 1))[:, None]
    if face_npz is not None and Path(face_npz).exists():
        face = _load(face_npz)
        ibug = face["ibug68"].astype(np.float64)[:, FACE_IBUG, :2]
        detected = face["detected"].astype(bool)
        if len(ibug) == n and detected.any():
            # frames without a detection hold landmarks filled in from other frames (held
            # over the ends): not observations of this frame's face, confidence 0
            xy[:, GROUPS["face"]] = _nan_to(ibug)
            weight = detected * np.isfinite(ibug[..., 0]).all(axis=1)
            conf[:, GROUPS["face"]] = weight[:, None]
    lo = -margin * np.array([width, height])
    hi = (1 + margin) * np.array([width, height])
    inside = np.all((xy >= lo) & (xy <= hi), axis=-1)
    conf = np.where(inside, conf, 0.0)
    focal = None
    if head_pose_npz is not None and Path(head_pose_npz).exists():
        hp_data = _load(head_pose_npz)
        if "focal" in hp_data:
            focal = float(hp_data["focal"])
    return Observations(
        xy=xy.astype(np.float32),
        conf=conf.astype(np.float32),
        width=int(width),
        height=int(height),
        fps=float(fps),
        body_present=present,
        focal_hint=focal,
    )


def _load(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise InputError(f"not a readable .npz file ({err})", path=path) from err


def person_height_px(xy: np.ndarray, conf: np.ndarray) -> float:
    """A robust person height in pixels from detections alone (for baselines): the median over
    frames of the nose-to-ankle span scaled to full height, or the shoulder width x 4.2."""
    pose = xy[:, GROUPS["pose"]]
    c = conf[:, GROUPS["pose"]]
    ok_full = (c[:, [0, 27, 28]] > 0.5).all(axis=1)
    if ok_full.sum() >= 3:
        ankle = 0.5 * (pose[ok_full, 27] + pose[ok_full, 28])
        span = np.linalg.norm(ankle - pose[ok_full, 0], axis=-1)
        return float(np.median(span) * 1.1)
    ok = (c[:, [11, 12]] > 0.5).all(axis=1)
    if ok.sum():
        return float(np.median(np.linalg.norm(pose[ok, 11] - pose[ok, 12], axis=-1)) * 4.2)
    return float("nan")
