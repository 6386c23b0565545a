"""Body: mediapipe Pose (33 landmarks) and Hands (21 per hand) per frame.

``body.npz`` (``T`` frames; pixel coordinates of the ``W x H`` frame; NaN where not seen):

================  ====================  =====================================================
key               shape, dtype          meaning
================  ====================  =====================================================
pose              (T, 33, 4) float32    x, y pixels, z (mediapipe depth x W, hip-centred),
                                        visibility 0..1 (mediapipe BlazePose order)
pose_world        (T, 33, 3) float32    metric 3-D landmarks, metres, origin between the hips
pose_present      (T,) bool             a body was found
hands             (T, 2, 21, 3) float32 slot 0: the person's left hand, 1: right; x, y pixels,
                                        z = depth x W relative to the wrist
hands_world       (T, 2, 21, 3) float32 metric hand landmarks, metres, origin near the hand
hand_present      (T, 2) bool           that hand was found
hand_score        (T, 2) float32        mediapipe handedness score (0 where absent)
info              JSON text             config, hand model runs
================  ====================  =====================================================

Handedness: each hand goes to the slot of the nearer pose wrist (landmarks 15: left, 16: right)
when the pose sees that wrist; otherwise mediapipe's label is used, swapped, because mediapipe
labels hands as if the image were mirrored (a selfie view) and normalised videos are not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from twinflow.perception import solutions

N_POSE = 33
N_HAND = 21
LEFT_WRIST, RIGHT_WRIST = 15, 16
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12


@dataclass(frozen=True)
class BodyConfig:
    """Body settings (config ``perception.body``).

    Attributes:
        hands: run the hand model at all.
        hand_every: while no hand is tracked, run the hand model (its palm detector) only on
            every this many frames; while a hand is tracked, on every frame. Palm detection
            costs ~10 ms per 512x512 frame, and talking-head videos rarely show hands (1: every
            frame). The pose's wrist visibility proved no usable gate: on the test clips it is
            0.2-0.45 both for hands in view and for hands out of the frame.
        min_detection: detection confidence of pose and hands.
        min_tracking: tracking confidence of pose and hands.
    """

    hands: bool = True
    hand_every: int = 5
    min_detection: float = 0.5
    min_tracking: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


def _empty(n: int) -> dict[str, np.ndarray]:
    return {
        "pose": np.full((n, N_POSE, 4), np.nan, np.float32),
        "pose_world": np.full((n, N_POSE, 3), np.nan, np.float32),
        "pose_present": np.zeros(n, bool),
        "hands": np.full((n, 2, N_HAND, 3), np.nan, np.float32),
        "hands_world": np.full((n, 2, N_HAND, 3), np.nan, np.float32),
        "hand_present": np.zeros((n, 2), bool),
        "hand_score": np.zeros((n, 2), np.float32),
    }


class BodyRunner:
    """Pose and (gated) hands for one frame at a time; :meth:`arrays` stacks the results."""

    def __init__(self, cfg: BodyConfig, *, static: bool = False):
        self.cfg = cfg
        self.pose = solutions.pose(
            static=static, min_detection=cfg.min_detection, min_tracking=cfg.min_tracking
        )
        self.hands = (
            solutions.hands(
                static=static, min_detection=cfg.min_detection, min_tracking=cfg.min_tracking
            )
            if cfg.hands
            else None
        )
        self.frames: list[dict[str, np.ndarray]] = []
        self.hand_runs = 0
        self._tracking_hands = False

    def __call__(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        h, w = rgb.shape[:2]
        out = {k: v[0] for k, v in _empty(1).items()}
        result = self.pose.process(rgb)
        if result.pose_landmarks:
            lm = np.array(
                [(p.x * w, p.y * h, p.z * w, p.visibility) for p in result.pose_landmarks.landmark],
                np.float32,
            )
            out["pose"] = lm
            out["pose_world"] = np.array(
                [(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark], np.float32
            )
            out["pose_present"] = np.bool_(True)
        every = max(1, self.cfg.hand_every)
        if self.hands is not None and (self._tracking_hands or len(self.frames) % every == 0):
            self.hand_runs += 1
            self._hands(rgb, out)
            self._tracking_hands = bool(out["hand_present"].any())
        self.frames.append(out)
        return out

    def _hands(self, rgb: np.ndarray, out: dict[str, np.ndarray]) -> None:
        h, w = rgb.shape[:2]
        result = self.hands.process(rgb)
        if not result.multi_hand_landmarks:
            return
        for lms, world, handed in zip(
            result.multi_hand_landmarks,
            result.multi_hand_world_landmarks,
            result.multi_handedness,
            strict=True,
        ):
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lms.landmark], np.float32)
            label = handed.classification[0]
            slot = 1 if label.label == "Left" else 0  # mirrored labels: "Left" is the right hand
            if out["pose_present"]:
                wrists = out["pose"][[LEFT_WRIST, RIGHT_WRIST]]
                if wrists[:, 3].max() >= 0.1:
                    dist = np.linalg.norm(wrists[:, :2] - pts[0, :2], axis=1)
                    dist[wrists[:, 3] < 0.1] = np.inf
                    slot = int(np.argmin(dist))
            if out["hand_present"][slot] and out["hand_score"][slot] >= label.score:
                continue
            out["hands"][slot] = pts
            out["hands_world"][slot] = np.array(
                [(p.x, p.y, p.z) for p in world.landmark], np.float32
            )
            out["hand_present"][slot] = True
            out["hand_score"][slot] = label.score

    def arrays(self) -> dict[str, np.ndarray | dict]:
        n = len(self.frames)
        data = _empty(n)
        for t, frame in enumerate(self.frames):
            for key, value in frame.items():
                data[key][t] = value
        data["info"] = {"config": self.cfg.to_dict(), "hand_model_runs": self.hand_runs}
        return data

    def close(self) -> None:
        self.pose.close()
        if self.hands is not None:
            self.hands.close()
