"""Stage ``face_parsing``: per-frame label maps from the landmarks, the matte and the pose.

``python -m twinflow.perception.parsing --twin ID --video video.mp4 --face face.npz
--body body.npz --matte matte.mkv --out parsing.mkv``

``parsing.mkv``: FFV1 gray, one ``(H, W) uint8`` label map per frame with the ids of
:data:`LABELS` (read with :func:`twinflow.perception.store.iter_masks`).

How each label is made:

* face parts are polygon fills of landmark contours, drawn whatever the matte says: the face oval
  is ``skin``, then brows, eyes (lid contours), lips (outer lip contour) and ``mouth`` (inside the
  inner lip contour: teeth, tongue, dark interior) on top;
* ``torso``: person (matte >= 50%) below the torso line, and person elsewhere outside the head
  region. The torso line is a little above the shoulders (pose landmarks 11, 12), or 0.6 face
  heights below the chin when the pose does not see them;
* ``neck``: person below the jaw line (the face oval from one jaw angle over the chin to the
  other) and above the torso line, between the jaw angles;
* ``hair``: the rest of the person above the torso line inside the widened head box: hair, ears,
  headwear. Below the jaw angles that region also holds shoulders, so there each pixel goes to
  hair or torso by colour: the nearer (Mahalanobis distance in CIELAB) of two Gaussians fitted to
  the frame's sure hair (above the eyes) and sure torso (below the torso line) pixels.
"""

from __future__ import annotations

import argparse
import logging

import cv2
import numpy as np
from tqdm import tqdm

from twinflow.cli import stage_main
from twinflow.errors import InputError
from twinflow.media.video import iter_frames
from twinflow.perception.body import LEFT_SHOULDER, RIGHT_SHOULDER
from twinflow.perception.landmarks import (
    FACE_OVAL,
    LEFT_BROW,
    LEFT_EYE,
    LIPS_INNER,
    LIPS_OUTER,
    RIGHT_BROW,
    RIGHT_EYE,
)
from twinflow.perception.store import MaskWriter, iter_masks, load_npz, lockstep, stream_info

log = logging.getLogger("twinflow.perception.parsing")

BACKGROUND, SKIN, BROWS, EYES, LIPS, MOUTH, HAIR, NECK, TORSO = range(9)
LABELS = {
    BACKGROUND: "background",
    SKIN: "face skin",
    BROWS: "brows",
    EYES: "eyes",
    LIPS: "lips",
    MOUTH: "mouth interior",
    HAIR: "hair (head outside the face: hair, ears, headwear)",
    NECK: "neck",
    TORSO: "torso (body below the neck, arms)",
}
# Jaw line: the lower face oval from the right jaw angle (58) over the chin to the left (288).
JAW = FACE_OVAL[FACE_OVAL.index(288) : FACE_OVAL.index(58) + 1]
FOREHEAD, CHIN = 10, 152
JAW_ANGLES = (58, 288)
EYE_CORNERS = (33, 133, 362, 263)
MIN_SAMPLES = 200  # pixels of each colour class needed to split hair from shoulders
PERSON = 128  # matte threshold (uint8)
SHOULDER_VISIBLE = 0.5


def _fill(canvas: np.ndarray, points: np.ndarray, value: int) -> None:
    cv2.fillPoly(canvas, [np.round(points * 16).astype(np.int32)], value, cv2.LINE_8, shift=4)


def torso_line(landmarks: np.ndarray, pose: np.ndarray | None) -> float:
    """Image row where the torso starts (see the module docstring)."""
    chin = float(landmarks[CHIN, 1])
    face_h = max(chin - float(landmarks[FOREHEAD, 1]), 1.0)
    if pose is not None and np.all(pose[[LEFT_SHOULDER, RIGHT_SHOULDER], 3] >= SHOULDER_VISIBLE):
        shoulders = float(pose[[LEFT_SHOULDER, RIGHT_SHOULDER], 1].mean())
        return max(chin + 0.1 * face_h, shoulders - 0.25 * face_h)
    return chin + 0.6 * face_h


def _gaussian(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    mean = samples.mean(axis=0)
    cov = np.cov(samples, rowvar=False) + 4.0 * np.eye(3)  # CIELAB units^2; floor for flat areas
    return mean, np.linalg.inv(cov), float(np.log(np.linalg.det(cov)))


def split_hair(labels: np.ndarray, rgb: np.ndarray, landmarks: np.ndarray) -> None:
    """Relabel ``HAIR`` pixels below the jaw angles that look like the torso (in place)."""
    h = labels.shape[0]
    jaw_y = int(np.clip(landmarks[list(JAW_ANGLES), 1].mean(), 0, h))
    eye_y = int(np.clip(landmarks[list(EYE_CORNERS), 1].min(), 0, h))
    hair, torso = labels == HAIR, labels == TORSO
    unsure = hair.copy()
    unsure[:jaw_y] = False
    hair[eye_y:] = False
    if not unsure.any() or hair.sum() < MIN_SAMPLES or torso.sum() < MIN_SAMPLES:
        return

    def lab(mask: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(rgb[mask][:, None, :])
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2LAB)[:, 0].astype(np.float32)

    step = max(1, int(hair.sum()) // 4000), max(1, int(torso.sum()) // 4000)
    models = [_gaussian(lab(hair)[:: step[0]]), _gaussian(lab(torso)[:: step[1]])]
    colours = lab(unsure)
    scores = [
        np.einsum("ni,ij,nj->n", colours - mean, inv, colours - mean) + logdet
        for mean, inv, logdet in models
    ]
    relabel = np.zeros_like(unsure)
    relabel[unsure] = scores[1] < scores[0]
    relabel = cv2.medianBlur(relabel.astype(np.uint8), 5).astype(bool) & unsure
    labels[relabel] = TORSO


def label_frame(
    landmarks: np.ndarray,
    alpha: np.ndarray,
    head_box: np.ndarray,
    pose: np.ndarray | None = None,
    rgb: np.ndarray | None = None,
) -> np.ndarray:
    """Label map ``(H, W) uint8`` from landmarks ``(478, 3)``, matte ``(H, W) uint8``,
    head box ``(4,)``, pose ``(33, 4)`` (or ``None``) and the frame ``(H, W, 3)`` (or ``None``:
    no colour split of hair and shoulders)."""
    h, w = alpha.shape
    person = alpha >= PERSON
    labels = np.zeros((h, w), np.uint8)
    labels[person] = TORSO
    top = int(np.clip(np.ceil(torso_line(landmarks, pose)), 0, h))
    # head region: the head box widened by 20% each side, above the torso line
    x0, y0, x1, y1 = head_box
    pad = 0.2 * (x1 - x0)
    head = np.zeros((h, w), bool)
    head[max(0, int(y0 - pad)) : top, max(0, int(x0 - pad)) : max(0, int(np.ceil(x1 + pad)))] = True
    labels[person & head] = HAIR
    if rgb is not None:
        split_hair(labels, rgb, landmarks)
    neck = np.zeros((h, w), np.uint8)
    jaw = landmarks[JAW, :2]
    _fill(neck, np.vstack([jaw, [[jaw[-1, 0], top], [jaw[0, 0], top]]]), 1)
    neck[top:] = 0
    labels[person & (neck > 0)] = NECK
    for contour, value in (
        (FACE_OVAL, SKIN),
        (LEFT_BROW, BROWS),
        (RIGHT_BROW, BROWS),
        (LEFT_EYE, EYES),
        (RIGHT_EYE, EYES),
        (LIPS_OUTER, LIPS),
        (LIPS_INNER, MOUTH),
    ):
        _fill(labels, landmarks[contour, :2], value)
    return labels


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.perception.parsing", description=__doc__)
    p.add_argument("--twin", required=True)
    p.add_argument("--video", required=True, help="video.mp4 (colours for hair vs shoulders)")
    p.add_argument("--face", required=True, help="face.npz")
    p.add_argument("--body", required=True, help="body.npz")
    p.add_argument("--matte", required=True, help="matte.mkv")
    p.add_argument("--out", required=True, help="out: parsing.mkv")
    return p


def run(args: argparse.Namespace) -> None:
    face = load_npz(args.face)
    body = load_npz(args.body)
    fps, _ = stream_info(args.matte)
    n = len(face["landmarks"])
    counts = np.zeros(len(LABELS), np.int64)
    with MaskWriter(args.out, fps) as writer:
        frames = lockstep(iter_frames(args.video), iter_masks(args.matte), path=args.matte)
        for t, (rgb, alpha) in enumerate(tqdm(frames, total=n, desc="parsing")):
            if t >= n:
                raise InputError(f"has more frames than face.npz ({n})", path=args.matte)
            pose = body["pose"][t] if body["pose_present"][t] else None
            labels = label_frame(face["landmarks"][t], alpha, face["head_box"][t], pose, rgb)
            counts += np.bincount(labels.ravel(), minlength=len(LABELS))
            writer.write(labels)
        if writer.frames_written != n:
            raise InputError(f"has {writer.frames_written} frames, face.npz {n}", path=args.matte)
    share = counts / counts.sum()
    log.info("label shares: %s", ", ".join(f"{LABELS[i]} {share[i]:.1%}" for i in LABELS))


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
