"""Clip-level training data of the anchor models: frames, conditions and head crops per clip.

``results/{twin}/anchor/data/clip_XXX.npz`` (``T`` frames of one clip; ``B`` = body size,
``h`` = head size of the preset):

================  ==================  ========================================================
key               shape, dtype        meaning
================  ==================  ========================================================
frames            (T, B, B, 3) uint8  the twin's frames, resized (area filter)
condition         (T, B, B, 3) uint8  the conditioning renders of those frames, resized
head              (T, h, h, 3) uint8  aligned head crops of the full-size frames
head_condition    (T, h, h, 3) uint8  the same crops of the full-size conditioning renders
head_context      (T, h, h, 3) uint8  the same crops taken from the body-size frames (what the
                                      head model sees around the face at inference, where the
                                      crop comes from a generated body frame)
head_mask         (T, h, h) uint8     255 = face region that the head model regenerates
head_matrix       (T, 2, 3) float32   full-size frame pixels -> head crop (similarity)
frame_index       (T,) int32          frame numbers in the twin's whole video
held_out          (T,) bool           frame belongs to the evaluation block (never trained on)
face_detected     (T,) bool           perception found the face in this frame; the head model
                                      trains and runs only on these (elsewhere its crop comes
                                      from interpolated landmarks, and the body model's head
                                      is kept)
info              JSON text           twin, clip, preset, sizes, condition source, mask source
================  ==================  ========================================================

The held-out block is the last ``holdout`` fraction of the twin's video (one contiguous block,
spanning clip boundaries when needed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from twinflow.anchor import head_align
from twinflow.anchor.presets import AnchorConfig
from twinflow.errors import InputError


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """``(T, H, W, 3)`` -> ``(T, size, size, 3)`` (area filter when shrinking)."""
    if images.shape[1] == size and images.shape[2] == size:
        return np.ascontiguousarray(images)
    interp = cv2.INTER_AREA if images.shape[1] > size else cv2.INTER_CUBIC
    return np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in images])


def holdout_start(n_frames: int, holdout: float) -> int:
    """First frame of the evaluation block: the last ``holdout`` fraction of the video."""
    if holdout <= 0:
        return n_frames
    return max(1, n_frames - max(1, int(round(holdout * n_frames))))


def build_clip_data(
    frames: np.ndarray,
    conditions: np.ndarray,
    landmarks: np.ndarray,
    cfg: AnchorConfig,
    *,
    first_frame: int = 0,
    holdout_from: int | None = None,
    parsing: np.ndarray | None = None,
    face_labels: tuple[int, ...] = (),
    face_detected: np.ndarray | None = None,
    info: dict | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of one clip's ``.npz`` from full-size ``frames``, ``conditions`` (both
    ``(T, H, W, 3)``) and face-mesh ``landmarks`` ``(T, 478, 3)`` in those pixels;
    ``face_detected`` ``(T,)`` (default: every frame) says where those landmarks were seen."""
    n, height, width = frames.shape[:3]
    if len(conditions) != n or len(landmarks) != n:
        raise InputError(
            f"clip has {n} frames but {len(conditions)} conditioning renders and "
            f"{len(landmarks)} face landmark frames"
        )
    if conditions.shape[1:3] != (height, width):
        conditions = np.stack([cv2.resize(c, (width, height)) for c in conditions])
    h = cfg.head_size
    mats = head_align.align_matrices(landmarks, h, cfg.head_scale)
    head = np.stack([head_align.crop(f, m, h) for f, m in zip(frames, mats, strict=True)])
    head_cond = np.stack([head_align.crop(c, m, h) for c, m in zip(conditions, mats, strict=True)])
    body = resize(frames, cfg.body_size)
    body_mats = head_align.scale_matrix(mats, cfg.body_size / width)
    context = np.stack(
        [head_align.crop(f, m, h, cv2.INTER_LINEAR) for f, m in zip(body, body_mats, strict=True)]
    )
    masks = []
    for t in range(n):
        if parsing is not None and face_labels:
            full = head_align.parsing_face_mask(parsing[t], face_labels)
        else:
            full = head_align.landmark_face_mask(landmarks[t], width, height)
        masks.append(head_align.crop_mask(full, mats[t], h, cfg.mask_dilate))
    index = np.arange(first_frame, first_frame + n, dtype=np.int32)
    held = index >= (holdout_from if holdout_from is not None else 1 << 30)
    meta = {
        "preset": cfg.name,
        "body_size": cfg.body_size,
        "head_size": h,
        "video_size": [width, height],
        "mask_source": "parsing" if parsing is not None and face_labels else "landmarks",
        **(info or {}),
    }
    return {
        "frames": body,
        "condition": resize(conditions, cfg.body_size),
        "head": head,
        "head_condition": head_cond,
        "head_context": context,
        "head_mask": np.stack(masks),
        "head_matrix": mats,
        "frame_index": index,
        "held_out": held,
        "face_detected": (
            np.ones(n, bool) if face_detected is None else np.asarray(face_detected, bool)
        ),
        "info": np.array(json.dumps(meta)),
    }


@dataclass
class ClipSet:
    """Every clip's arrays concatenated, with the clip number of each frame."""

    arrays: dict[str, np.ndarray]
    clip: np.ndarray
    infos: list[dict]

    @property
    def train(self) -> np.ndarray:
        return np.flatnonzero(~self.arrays["held_out"])

    @property
    def test(self) -> np.ndarray:
        return np.flatnonzero(self.arrays["held_out"])

    @property
    def train_with_face(self) -> np.ndarray:
        """Training frames where perception found the face (the head model's samples)."""
        return np.flatnonzero(~self.arrays["held_out"] & self.arrays["face_detected"])

    def same_clip_train(self, *, with_face: bool = False) -> list[np.ndarray]:
        """For each clip, its training frames (the pool of reference frames); ``with_face``:
        only those showing the face."""
        train = ~self.arrays["held_out"]
        if with_face:
            train &= self.arrays["face_detected"]
        return [np.flatnonzero((self.clip == c) & train) for c in range(int(self.clip.max()) + 1)]

    def reference_index(self) -> int:
        """The inference reference frame: the middle training frame of the first clip that has
        training frames (also the "copy the reference" baseline of the metrics)."""
        for pool in self.same_clip_train():
            if len(pool):
                return int(pool[len(pool) // 2])
        raise InputError("no training frames: every frame is in the held-out block")


KEYS = (
    "frames",
    "condition",
    "head",
    "head_condition",
    "head_context",
    "head_mask",
    "head_matrix",
    "frame_index",
    "held_out",
    "face_detected",
)
# keys that clip files written before they existed lack: their value for ``n`` frames
OPTIONAL = {"face_detected": lambda n: np.ones(n, bool)}


def load_clips(paths: list[str | Path], keys: tuple[str, ...] = KEYS) -> ClipSet:
    """Load clip ``.npz`` files (in order) into one :class:`ClipSet`."""
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    clip, infos = [], []
    for c, path in enumerate(paths):
        path = Path(path)
        if not path.exists():
            raise InputError("anchor clip data not found", path=path)
        with np.load(path, allow_pickle=False) as data:
            n = len(data["frame_index"])
            for k in keys:
                arrays[k].append(data[k] if k in data or k not in OPTIONAL else OPTIONAL[k](n))
            infos.append(json.loads(str(data["info"])))
        clip.append(np.full(n, c, np.int32))
    return ClipSet(
        arrays={k: np.concatenate(v) for k, v in arrays.items()},
        clip=np.concatenate(clip),
        infos=infos,
    )
