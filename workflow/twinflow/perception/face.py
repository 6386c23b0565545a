"""Face track: mediapipe FaceMesh (478 points) per frame, the main person's face, gaps filled.

``face.npz`` (one per video; ``T`` frames, coordinates in pixels of the ``W x H`` frame):

=================  ===================  ====================================================
key                shape, dtype         meaning
=================  ===================  ====================================================
landmarks          (T, 478, 3) float32  x, y pixels; z = mediapipe depth x W (smaller nearer)
detected           (T,) bool            the kept face was found in this frame
interpolated       (T,) bool            ``~detected``: landmarks filled in (linear between
                                        the nearest detected frames, held at the ends)
confidence         (T,) float32         face detection (BlazeFace) score of the kept face,
                                        0 where none matched it
face_box           (T, 4) float32       x0, y0, x1, y1 of the 468 mesh points
head_box           (T, 4) float32       smoothed square head box x0, y0, x1, y1 (may extend
                                        past the frame; crop with padding)
n_faces            (T,) uint8           faces FaceMesh found in the frame (all people)
ibug68             (T, 68, 3) float32   ``landmarks[:, ibug68_index]``: iBUG 68-point order
ibug68_index       (68,) int16          :data:`twinflow.perception.landmarks.IBUG68`
info               JSON text            size, fps, tracks, kept tracks, people seen, config
=================  ===================  ====================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.interpolate import interp1d
from scipy.ndimage import gaussian_filter1d

from twinflow.perception import solutions
from twinflow.perception.landmarks import IBUG68, N_LANDMARKS, box_of, to_pixels
from twinflow.perception.tracks import choose_tracks, link_tracks, people_seen


@dataclass(frozen=True)
class FaceConfig:
    """Face tracking settings (config ``perception.face``).

    Attributes:
        max_faces: faces FaceMesh follows per frame (2-4 lets it see other people, so that the
            main person's track can be chosen; 1 would lock on whichever face came first).
        min_detection: detection confidence of FaceMesh and FaceDetection.
        min_tracking: FaceMesh tracking confidence; below it the face is detected again.
        head_box_scale: head box side as a multiple of the larger extent of the mesh.
        head_box_shift: the head box centre sits this fraction of its side above the mesh
            centre (hair and forehead above, less below the chin).
        head_box_sigma: temporal Gaussian smoothing of the head box, in frames.
    """

    max_faces: int = 2
    min_detection: float = 0.5
    min_tracking: float = 0.5
    head_box_scale: float = 1.6
    head_box_shift: float = 0.1
    head_box_sigma: float = 2.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FrameFaces:
    """What the face models found in one frame.

    ``faces``: ``(n, 478, 3)`` pixel landmarks of every face; ``detections``: ``(m, 5)`` face
    detection boxes ``x0, y0, x1, y1, score`` in pixels.
    """

    faces: np.ndarray
    detections: np.ndarray

    @property
    def boxes(self) -> np.ndarray:
        return box_of(self.faces[:, :468]) if len(self.faces) else np.zeros((0, 4), np.float32)


class FaceRunner:
    """FaceMesh (tracking mode for video, ``static`` for photos) plus BlazeFace for scores."""

    def __init__(self, cfg: FaceConfig, *, static: bool = False):
        self.mesh = solutions.face_mesh(
            static=static,
            max_faces=cfg.max_faces,
            min_detection=cfg.min_detection,
            min_tracking=cfg.min_tracking,
        )
        self.detector = solutions.face_detection(min_detection=cfg.min_detection)

    def __call__(self, rgb: np.ndarray) -> FrameFaces:
        h, w = rgb.shape[:2]
        result = self.mesh.process(rgb)
        faces = [
            to_pixels(np.array([(p.x, p.y, p.z) for p in face.landmark], np.float32), w, h)
            for face in (result.multi_face_landmarks or [])
        ]
        dets = []
        for det in self.detector.process(rgb).detections or []:
            box = det.location_data.relative_bounding_box
            x0, y0 = box.xmin * w, box.ymin * h
            dets.append((x0, y0, x0 + box.width * w, y0 + box.height * h, det.score[0]))
        return FrameFaces(
            faces=np.stack(faces) if faces else np.zeros((0, N_LANDMARKS, 3), np.float32),
            detections=np.array(dets, np.float32).reshape(-1, 5),
        )

    def close(self) -> None:
        self.mesh.close()
        self.detector.close()


def match_confidence(face_box: np.ndarray, detections: np.ndarray) -> float:
    """Score of the best detection whose centre lies inside ``face_box`` (0 when none)."""
    if not len(detections):
        return 0.0
    cx = (detections[:, 0] + detections[:, 2]) / 2
    cy = (detections[:, 1] + detections[:, 3]) / 2
    inside = (cx >= face_box[0]) & (cx <= face_box[2]) & (cy >= face_box[1]) & (cy <= face_box[3])
    return float(detections[inside, 4].max()) if inside.any() else 0.0


def off_body(frames: list[FrameFaces], pose: np.ndarray | None, *, margin: float = 0.5):
    """Which faces are not on the body's head: ``off[t]`` ``(n_t,)`` bool per frame.

    ``pose`` is ``body.npz``'s ``(T, 33, 4)`` (x, y pixels, z, visibility; NaN where no body).
    Where the body's nose (landmark 0) is seen with visibility >= 0.5, a face is off the body
    unless its mesh box, widened by ``margin`` of its side on every side, holds that nose.
    Frames without a body (or without a pose) flag nothing.
    """
    off = [np.zeros(len(f.faces), bool) for f in frames]
    if pose is None:
        return off
    for t, (frame, landmarks) in enumerate(zip(frames, pose, strict=True)):
        nose = landmarks[0]
        if not len(frame.faces) or not (np.isfinite(nose).all() and nose[3] >= 0.5):
            continue
        box = frame.boxes
        pad = margin * np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
        off[t] = ~(
            (nose[0] >= box[:, 0] - pad)
            & (nose[0] <= box[:, 2] + pad)
            & (nose[1] >= box[:, 1] - pad)
            & (nose[1] <= box[:, 3] + pad)
        )
    return off


def faces_on_body(
    frames: list[FrameFaces], pose: np.ndarray | None
) -> tuple[list[FrameFaces], list[np.ndarray], int]:
    """The frames without the faces of any track seen off the body's head (:func:`off_body`),
    their track ids, and how many faces went.

    FaceMesh finds faces in wood grain, posters and chairs, and on a whole-body shot such a face
    can outscore the person's own, far smaller one; a track caught off the body once is dropped
    in every frame (also where the body is not seen).
    """
    ids = link_tracks([f.boxes for f in frames])
    off = off_body(frames, pose)
    banned = {int(k) for frame_ids, o in zip(ids, off, strict=True) for k in frame_ids[o]}
    kept_frames, kept_ids, dropped = [], [], 0
    for frame, frame_ids in zip(frames, ids, strict=True):
        keep = np.array([int(k) not in banned for k in frame_ids], bool)
        dropped += int((~keep).sum())
        kept_frames.append(FrameFaces(faces=frame.faces[keep], detections=frame.detections))
        kept_ids.append(frame_ids[keep])
    return kept_frames, kept_ids, dropped


def fill_missing(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Linearly interpolate ``values (T, ...)`` over frames where ``present`` is False; frames
    before the first / after the last present frame hold its value."""
    if present.all():
        return values.copy()
    t = np.flatnonzero(present)
    if len(t) == 1:
        return np.repeat(values[t], len(values), axis=0)
    f = interp1d(t, values[t], axis=0, bounds_error=False, fill_value=(values[t[0]], values[t[-1]]))
    return f(np.arange(len(values))).astype(values.dtype)


def head_boxes(face_box: np.ndarray, cfg: FaceConfig) -> np.ndarray:
    """Square head boxes ``(T, 4)`` from mesh boxes ``(T, 4)``, smoothed over time."""
    side = cfg.head_box_scale * np.maximum(
        face_box[:, 2] - face_box[:, 0], face_box[:, 3] - face_box[:, 1]
    )
    cx = (face_box[:, 0] + face_box[:, 2]) / 2
    cy = (face_box[:, 1] + face_box[:, 3]) / 2 - cfg.head_box_shift * side
    if cfg.head_box_sigma > 0 and len(side) > 1:
        side, cx, cy = (
            gaussian_filter1d(v, cfg.head_box_sigma, mode="nearest") for v in (side, cx, cy)
        )
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1).astype(
        np.float32
    )


def build_face_track(
    frames: list[FrameFaces],
    width: int,
    height: int,
    cfg: FaceConfig,
    pose: np.ndarray | None = None,
) -> dict[str, np.ndarray | dict]:
    """The kept face of every frame as the arrays of ``face.npz`` (plus ``info``); with the body
    ``pose`` ``(T, 33, 4)`` of the same frames, only faces on the body's head count
    (:func:`faces_on_body`).

    Does not apply a missing-face policy; see :mod:`twinflow.perception.needs`.
    """
    frames, ids, off_body_faces = faces_on_body(frames, pose)
    n = len(frames)
    boxes = [f.boxes for f in frames]
    kept, infos = choose_tracks(boxes, ids, width, height)
    landmarks = np.zeros((n, N_LANDMARKS, 3), np.float32)
    detected = np.zeros(n, bool)
    confidence = np.zeros(n, np.float32)
    for t, (frame, frame_ids) in enumerate(zip(frames, ids, strict=True)):
        mine = [i for i, k in enumerate(frame_ids) if k in kept]
        if not mine:
            continue
        areas = [np.prod(boxes[t][i, 2:] - boxes[t][i, :2]) for i in mine]
        i = mine[int(np.argmax(areas))]
        landmarks[t] = frame.faces[i]
        detected[t] = True
        confidence[t] = match_confidence(boxes[t][i], frame.detections)
    if detected.any():
        landmarks = fill_missing(landmarks, detected)
    face_box = box_of(landmarks[:, :468]).astype(np.float32)
    info = {
        "width": width,
        "height": height,
        "n_frames": n,
        "tracks": [i.to_dict() for i in infos],
        "kept_tracks": kept,
        "people_seen": people_seen(ids, infos, n),
        "faces_off_body": off_body_faces,
        "config": cfg.to_dict(),
    }
    return {
        "landmarks": landmarks,
        "detected": detected,
        "interpolated": ~detected,
        "confidence": confidence,
        "face_box": face_box,
        "head_box": head_boxes(face_box, cfg) if detected.any() else np.zeros((n, 4), np.float32),
        "n_faces": np.array([len(f.faces) for f in frames], np.uint8),
        "ibug68": landmarks[:, IBUG68],
        "ibug68_index": np.array(IBUG68, np.int16),
        "info": info,
    }
