"""Construct mediapipe 0.10.21's bundled legacy solutions, quietly and without downloads.

Only the models inside the wheel are used: FaceMesh (with iris refinement, 478 points),
FaceDetection (short range), Pose (``model_complexity=1``, the only bundled pose landmark model;
0 and 2 would be downloaded at run time, which fails offline), Hands and SelfieSegmentation.
"""

from __future__ import annotations

import os

# absl / glog / TF-Lite print INFO and WARNING lines to stderr; keep errors only.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import mediapipe as mp  # noqa: E402

POSE_MODEL_COMPLEXITY = 1


def face_mesh(*, static: bool, max_faces: int, min_detection: float, min_tracking: float):
    return mp.solutions.face_mesh.FaceMesh(
        static_image_mode=static,
        max_num_faces=max_faces,
        refine_landmarks=True,
        min_detection_confidence=min_detection,
        min_tracking_confidence=min_tracking,
    )


def face_detection(*, min_detection: float):
    return mp.solutions.face_detection.FaceDetection(
        model_selection=0, min_detection_confidence=min_detection
    )


def pose(*, static: bool, min_detection: float = 0.5, min_tracking: float = 0.5):
    return mp.solutions.pose.Pose(
        static_image_mode=static,
        model_complexity=POSE_MODEL_COMPLEXITY,
        smooth_landmarks=True,
        enable_segmentation=False,
        min_detection_confidence=min_detection,
        min_tracking_confidence=min_tracking,
    )


def hands(*, static: bool, min_detection: float = 0.5, min_tracking: float = 0.5):
    return mp.solutions.hands.Hands(
        static_image_mode=static,
        max_num_hands=2,
        model_complexity=1,
        min_detection_confidence=min_detection,
        min_tracking_confidence=min_tracking,
    )


def selfie_segmentation():
    # model 0 ("general", 256x256 input) suits square frames; 1 is the 144x256 landscape model.
    return mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)


def pose_connections() -> list[tuple[int, int]]:
    return sorted(mp.solutions.pose.POSE_CONNECTIONS)


def hand_connections() -> list[tuple[int, int]]:
    return sorted(mp.solutions.hands.HAND_CONNECTIONS)
