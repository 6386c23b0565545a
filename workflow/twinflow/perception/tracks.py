"""Which face is the twin: link per-frame faces into tracks and keep the main person's.

FaceMesh runs with ``max_faces`` 2-4, so other people (or faces on posters and screens) are seen
too. Faces are linked frame to frame by box overlap (Hungarian matching on IoU); the track with
the largest sum over frames of ``area fraction x centrality`` is kept, where centrality is 1 at
the image centre and 0 at a corner. Tracks that never overlap it in time and have a similar face
size are chained to it (the same person lost and re-found after a gap or a fast turn).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class TrackInfo:
    """One linked track of faces, as reported in the summary."""

    track_id: int
    first_frame: int
    last_frame: int
    n_frames: int
    mean_area_fraction: float
    mean_centrality: float
    score: float
    kept: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a (N, 4)`` and ``b (M, 4)`` (``x0, y0, x1, y1``) -> ``(N, M)``."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def link_tracks(
    boxes: list[np.ndarray], *, min_iou: float = 0.2, max_gap: int = 12
) -> list[np.ndarray]:
    """Give every face a track id.

    ``boxes[t]`` is ``(n_t, 4)``: the faces of frame ``t``. Returns ``ids[t]``, ``(n_t,) int``.
    A face continues the track whose last box (seen at most ``max_gap`` frames ago) overlaps it
    with IoU >= ``min_iou``; otherwise it starts a new track.
    """
    last_box: dict[int, np.ndarray] = {}
    last_seen: dict[int, int] = {}
    next_id = 0
    ids: list[np.ndarray] = []
    for t, frame_boxes in enumerate(boxes):
        frame_ids = np.full(len(frame_boxes), -1, int)
        active = [k for k, seen in last_seen.items() if t - seen <= max_gap]
        if len(frame_boxes) and active:
            overlap = iou(frame_boxes, np.stack([last_box[k] for k in active]))
            rows, cols = linear_sum_assignment(-overlap)
            for r, c in zip(rows, cols, strict=True):
                if overlap[r, c] >= min_iou:
                    frame_ids[r] = active[c]
        for r in range(len(frame_boxes)):
            if frame_ids[r] < 0:
                frame_ids[r] = next_id
                next_id += 1
            last_box[frame_ids[r]] = frame_boxes[r]
            last_seen[frame_ids[r]] = t
        ids.append(frame_ids)
    return ids


def choose_tracks(
    boxes: list[np.ndarray],
    ids: list[np.ndarray],
    width: int,
    height: int,
    *,
    size_ratio: float = 2.0,
    max_overlap_frames: int = 2,
) -> tuple[list[int], list[TrackInfo]]:
    """Pick the main person's track(s).

    Returns the kept track ids (the best-scoring track and the tracks chained to it) and a
    :class:`TrackInfo` per track, best first. A track is chained when it shares at most
    ``max_overlap_frames`` frames with the kept ones and its mean face area is within a factor
    ``size_ratio`` of the best track's.
    """
    centre = np.array([width / 2, height / 2])
    half_diag = float(np.hypot(width, height) / 2)
    per_track: dict[int, dict] = {}
    for t, (frame_boxes, frame_ids) in enumerate(zip(boxes, ids, strict=True)):
        for box, k in zip(frame_boxes, frame_ids, strict=True):
            area = max(0.0, (box[2] - box[0]) * (box[3] - box[1])) / (width * height)
            mid = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            centrality = max(0.0, 1.0 - float(np.linalg.norm(mid - centre)) / half_diag)
            entry = per_track.setdefault(int(k), {"frames": [], "area": [], "centrality": []})
            entry["frames"].append(t)
            entry["area"].append(area)
            entry["centrality"].append(centrality)
    infos = []
    for k, entry in per_track.items():
        area, cent = np.array(entry["area"]), np.array(entry["centrality"])
        infos.append(
            TrackInfo(
                track_id=k,
                first_frame=min(entry["frames"]),
                last_frame=max(entry["frames"]),
                n_frames=len(entry["frames"]),
                mean_area_fraction=float(area.mean()),
                mean_centrality=float(cent.mean()),
                score=float((area * cent).sum()),
            )
        )
    infos.sort(key=lambda info: -info.score)
    if not infos:
        return [], []
    best = infos[0]
    best.kept = True
    kept = [best.track_id]
    covered = set(per_track[best.track_id]["frames"])
    for info in infos[1:]:
        frames = set(per_track[info.track_id]["frames"])
        ratio = info.mean_area_fraction / max(best.mean_area_fraction, 1e-12)
        if len(frames & covered) <= max_overlap_frames and 1 / size_ratio <= ratio <= size_ratio:
            info.kept = True
            kept.append(info.track_id)
            covered |= frames
    return kept, infos


def people_seen(
    ids: list[np.ndarray], infos: list[TrackInfo], n_frames: int, min_fraction: float = 0.02
) -> int:
    """How many people were seen: the most faces in one frame, counting only tracks seen in at
    least ``max(3, min_fraction * n_frames)`` frames (brief false detections are ignored).

    A lower bound: people who are never on screen together count once."""
    min_frames = max(3, int(np.ceil(min_fraction * n_frames)))
    real = {i.track_id for i in infos if i.n_frames >= min_frames or i.kept}
    return max((sum(int(k) in real for k in frame_ids) for frame_ids in ids), default=0)
