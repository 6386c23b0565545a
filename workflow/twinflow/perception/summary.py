"""Per-video quality numbers of the perception stage, for ``summary.json``.

Landmark jitter: head motion is first taken out by subtracting, per frame, the projection of
the rigid template at that frame's head pose from the rigid landmarks; what is left (template
mismatch, expression leaks, noise) is smoothed along time with a Savitzky-Golay filter
(quadratic, 9 frames = 0.36 s at 25 fps), and jitter is the RMS distance (pixels) of the
residuals from that fit: the frame-to-frame noise. Fast head motion barely leaks in (the pose
follows it); the pose fit absorbs a little of the noise (6 of ~80 degrees of freedom per frame).
Reported as the median over frames whose whole window has a detected face, and on the video's
stillest stretch (the 1 s window with the least rigid-landmark motion).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import savgol_filter

from twinflow.perception.head_pose import project
from twinflow.perception.landmarks import RIGID
from twinflow.perception.store import load_info

JITTER_WINDOW = 9


def stabilised(
    landmarks: np.ndarray, pose: dict[str, np.ndarray], template: dict[str, np.ndarray]
) -> np.ndarray:
    """Rigid landmarks minus the template's projection at each frame's pose: ``(T, K, 2)``."""
    rigid = template["rigid_index"].astype(int)
    proj = project(
        template["vertices"][rigid].astype(np.float64),
        pose["rvec"].astype(np.float64),
        pose["t"].astype(np.float64),
        pose["K"].astype(np.float64),
    )
    return landmarks[:, rigid, :2] - proj


def landmark_jitter(
    points: np.ndarray, detected: np.ndarray, window: int = JITTER_WINDOW
) -> np.ndarray:
    """Per-frame jitter ``(T,)`` in pixels of trajectories ``points (T, K, 2)`` (for example
    :func:`stabilised`); NaN where the window is short of detected frames."""
    n = len(points)
    out = np.full(n, np.nan)
    if n < window:
        return out
    pts = points.astype(np.float64)
    smooth = savgol_filter(pts, window, 2, axis=0, mode="interp")
    resid = np.sqrt(((pts - smooth) ** 2).sum(-1).mean(-1))
    full = uniform_filter1d(detected.astype(float), window, mode="constant") > 1 - 1e-9
    out[full] = resid[full]
    return out


def head_motion(landmarks: np.ndarray, idx: list[int] = RIGID) -> np.ndarray:
    """Mean displacement ``(T,)`` of the rigid landmarks from the previous frame, pixels."""
    pts = landmarks[:, idx, :2].astype(np.float64)
    motion = np.zeros(len(pts))
    motion[1:] = np.linalg.norm(np.diff(pts, axis=0), axis=-1).mean(-1)
    return motion


def still_stretch(
    landmarks: np.ndarray, jitter: np.ndarray, fps: float, seconds: float = 1.0
) -> dict | None:
    """The stillest stretch with jitter ``(T,)`` defined throughout:
    ``{start, end, motion_px_per_frame, jitter_px}``."""
    n = max(JITTER_WINDOW, int(round(seconds * fps)))
    if len(landmarks) < n:
        return None
    motion = head_motion(landmarks)
    best = None
    for start in range(0, len(landmarks) - n + 1):
        part = jitter[start : start + n]
        if np.isnan(part).any():
            continue
        score = motion[start + 1 : start + n].mean()
        if best is None or score < best[0]:
            best = (score, start)
    if best is None:
        return None
    score, start = best
    return {
        "start": int(start),
        "end": int(start + n - 1),
        "motion_px_per_frame": float(score),
        "jitter_px": float(np.median(jitter[start : start + n])),
    }


def runs(flags: np.ndarray) -> list[list[int]]:
    """``[[first, last], ...]`` of the True runs of a ``(T,)`` bool array."""
    padded = np.concatenate([[0], flags.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return [[int(a), int(b - 1)] for a, b in zip(edges[::2], edges[1::2], strict=True)]


def build_summary(
    twin: str,
    face: dict,
    body: dict,
    signals: dict,
    pose: dict | None,
    template: dict | None,
    matte_stats: dict,
    max_missing_face: float,
) -> dict:
    """``summary.json`` from the stage's arrays (as loaded) and the matte statistics; without a
    head ``pose`` and ``template`` (a video no pipeline needs the face of) the jitter and
    head-pose sections are null."""
    info = load_info(face)
    detected = face["detected"].astype(bool)
    n = len(detected)
    fps = float(info.get("fps", 25.0))
    missing = np.flatnonzero(~detected)
    blink = signals["blink"]
    onsets = np.flatnonzero((blink[1:] >= 0.5) & (blink[:-1] < 0.5))
    return {
        "twin": twin,
        "video": info.get("video"),
        "source": info.get("source"),
        "n_frames": n,
        "fps": fps,
        "size": [info.get("width"), info.get("height")],
        "face": {
            "detection_rate": float(detected.mean()) if n else 0.0,
            "frames_with_face": int(detected.sum()),
            "frames_without_face": int(len(missing)),
            "missing_frames": missing.tolist(),
            "missing_runs": runs(~detected),
            "interpolated": "missing frames hold landmarks interpolated linearly between the "
            "nearest detected frames (held at the ends) and are flagged in face.npz",
            "max_missing_face": max_missing_face,
            "mean_confidence": float(face["confidence"][detected].mean()) if detected.any() else 0,
        },
        "people": {
            "people_seen": info.get("people_seen", 0),
            "faces_off_body": info.get("faces_off_body", 0),
            "kept_tracks": info.get("kept_tracks", []),
            "tracks": info.get("tracks", []),
            "rule": "the track with the largest sum over frames of face area fraction x "
            "centrality is kept, with tracks of a similar face size that never overlap it in "
            "time (the same person re-found)",
        },
        **head_sections(face, pose, template, detected, fps),
        "signals": {
            "blinks": int(len(onsets)),
            "blink_mean": float(blink.mean()),
            "mouth_open_mean": float(signals["mouth_open"].mean()),
        },
        "body": {
            "pose_rate": float(body["pose_present"].mean()) if n else 0.0,
            "left_hand_frames": int(body["hand_present"][:, 0].sum()),
            "right_hand_frames": int(body["hand_present"][:, 1].sum()),
        },
        "matte": matte_stats,
    }


def head_sections(
    face: dict, pose: dict | None, template: dict | None, detected: np.ndarray, fps: float
) -> dict:
    """The ``landmark_jitter_px`` and ``head_pose`` sections (null without a head pose)."""
    if pose is None or template is None:
        return {"landmark_jitter_px": None, "head_pose": None}
    jitter = landmark_jitter(stabilised(face["landmarks"], pose, template), detected)
    err = pose["reproj_error"][detected] if detected.any() else np.zeros(1)
    return {
        "landmark_jitter_px": {
            "median": float(np.nanmedian(jitter)) if np.isfinite(jitter).any() else None,
            "p95": float(np.nanpercentile(jitter, 95)) if np.isfinite(jitter).any() else None,
            "still_stretch": still_stretch(face["landmarks"], jitter, fps),
            "definition": "rigid landmarks minus the template projected at the head pose; RMS "
            "distance of that residual from its 9-frame quadratic Savitzky-Golay fit over time",
        },
        "head_pose": {
            "focal_px": float(pose["focal"]),
            "reproj_error_px": {
                "median": float(np.median(err)),
                "p95": float(np.percentile(err, 95)),
                "max": float(err.max()),
            },
            "yaw_deg": [float(v) for v in np.percentile(pose["euler_deg"][:, 1], [5, 95])],
            "pitch_deg": [float(v) for v in np.percentile(pose["euler_deg"][:, 0], [5, 95])],
            "distance_m": float(np.median(np.linalg.norm(pose["t"], axis=1))),
        },
    }
