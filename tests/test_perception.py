"""Perception units on synthetic data: index maps, track choice, gap filling, template and head
pose (a known camera recovered), NeRF cameras, signals, matte smoothing, lossless mask files,
background median, config flags, the missing-face policy, and the face path on a photo."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from mediapipe.python.solutions import face_mesh_connections as fmc
from scipy.spatial.transform import Rotation

from twinflow.errors import InputError
from twinflow.perception import landmarks as lm
from twinflow.perception.background import median_plate, torso_rgba, unoccluded
from twinflow.perception.body import BodyConfig
from twinflow.perception.cameras import camera_to_world, split_frames, transforms
from twinflow.perception.face import (
    FaceConfig,
    FrameFaces,
    build_face_track,
    faces_on_body,
    fill_missing,
    head_boxes,
)
from twinflow.perception.head_pose import HeadPoseConfig, project, solve_head_pose
from twinflow.perception.matte import TemporalSmoother
from twinflow.perception.needs import check_coverage
from twinflow.perception.options import add_dataclass_args, dataclass_from_args, flags
from twinflow.perception.signals import blink_signal, compute_signals, eye_aspect_ratio
from twinflow.perception.store import MaskWriter, iter_masks, load_info, load_npz, save_npz
from twinflow.perception.template import build_template
from twinflow.perception.tracks import choose_tracks, link_tracks, people_seen

# --- index maps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contour", "edges"),
    [
        (lm.FACE_OVAL, fmc.FACEMESH_FACE_OVAL),
        (lm.LEFT_EYE, fmc.FACEMESH_LEFT_EYE),
        (lm.RIGHT_EYE, fmc.FACEMESH_RIGHT_EYE),
        (lm.LIPS_OUTER + lm.LIPS_INNER, fmc.FACEMESH_LIPS),
    ],
)
def test_contours_are_mediapipe_loops_in_order(contour, edges):
    """Consecutive points of each closed contour are exactly mediapipe's connection set."""
    undirected = {frozenset(e) for e in edges}
    loops = [lm.LIPS_OUTER, lm.LIPS_INNER] if len(contour) == 40 else [contour]
    ours = {frozenset((c[i], c[(i + 1) % len(c)])) for c in loops for i in range(len(c))}
    assert ours == undirected


@pytest.mark.parametrize(
    ("brow", "edges"),
    [(lm.LEFT_BROW, fmc.FACEMESH_LEFT_EYEBROW), (lm.RIGHT_BROW, fmc.FACEMESH_RIGHT_EYEBROW)],
)
def test_brow_polygons_follow_mediapipe_brow_edges(brow, edges):
    # mediapipe draws the brow as two open lines; our polygon joins them at both ends
    ours = {frozenset((brow[i], brow[i + 1])) for i in range(len(brow) - 1)}
    assert {frozenset(e) for e in edges} <= ours
    assert len(ours - {frozenset(e) for e in edges}) == 1  # the inner end joins the two lines


def test_ibug68_map_is_68_distinct_mesh_points_in_ibug_layout():
    idx = lm.IBUG68
    assert len(idx) == 68 and len(set(idx)) == 68 and max(idx) < 468
    assert idx[8] == 152 and idx[30] == 4 and idx[33] == 2  # chin, nose tip, subnasale
    assert (idx[36], idx[39], idx[42], idx[45]) == (33, 133, 362, 263)  # eye corners
    assert (idx[48], idx[54], idx[51], idx[57]) == (61, 291, 0, 17)  # mouth corners, mid lips
    assert set(lm.RIGHT_EYE_EAR) <= set(lm.RIGHT_EYE) and set(lm.LEFT_EYE_EAR) <= set(lm.LEFT_EYE)
    assert set(lm.RIGID).isdisjoint(lm.LIPS_OUTER + lm.LIPS_INNER)


# --- choosing the person ----------------------------------------------------------------------


def _box(cx, cy, side):
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


def test_main_track_is_largest_and_most_central_and_survives_a_gap():
    """Frames 0-29: the twin (large, central) and a bystander (small, in a corner). The twin is
    lost at 30-49 (longer than a track waits) and found again at 50, moved (a new track)."""
    boxes = []
    for t in range(70):
        frame = []
        if t < 30:
            frame.append(_box(256 + t, 250, 200))
        elif t >= 50:
            frame.append(_box(380, 250, 200))
        frame.append(_box(60, 60, 50))
        boxes.append(np.stack(frame))
    ids = link_tracks(boxes)
    kept, infos = choose_tracks(boxes, ids, 512, 512)
    assert len(kept) == 2  # the twin's two pieces, chained
    bystander = ids[0][1]
    assert bystander not in kept
    assert infos[0].track_id == ids[0][0] and infos[0].kept
    assert people_seen(ids, infos, 70) == 2


def test_fill_missing_interpolates_and_holds_the_ends():
    values = np.arange(10, dtype=np.float32)[:, None] * np.ones((10, 2), np.float32)
    present = np.ones(10, bool)
    present[[0, 1, 4, 5, 9]] = False
    filled = fill_missing(values * present[:, None], present)
    assert np.allclose(filled[:, 0], [2, 2, 2, 3, 4, 5, 6, 7, 8, 8])


def test_head_boxes_are_square_smoothed_and_above_the_face():
    face = np.tile(np.array([[200, 200, 300, 320]], np.float32), (20, 1))
    face[10] += 30  # one jumpy frame
    boxes = head_boxes(face, FaceConfig())
    side = boxes[:, 2] - boxes[:, 0]
    assert np.allclose(side, boxes[:, 3] - boxes[:, 1])
    assert np.allclose(side[0], 1.6 * 120)
    assert boxes[0, 1] < 200 and (boxes[0, 1] + boxes[0, 3]) / 2 < 260  # centre above the face's
    assert abs(boxes[10, 0] - boxes[0, 0]) < 15  # the jump is smoothed (raw: 30)


def test_a_face_off_the_bodys_head_is_not_the_persons():
    """FaceMesh finds a large face in a chair beside a whole-body person whose own face is too
    small to track: with the body's pose the chair's face is dropped, without it kept."""

    def face_at(x: float, y: float, side: float) -> np.ndarray:
        pts = np.zeros((478, 3), np.float32)
        pts[:, 0] = x + np.linspace(0, side, 478)
        pts[:, 1] = y + np.linspace(0, side, 478)[::-1]
        return pts

    chair, own = face_at(60, 180, 140), face_at(250, 40, 24)
    frames = [
        FrameFaces(faces=np.stack([chair]), detections=np.zeros((0, 5), np.float32)),
        FrameFaces(faces=np.stack([chair, own]), detections=np.zeros((0, 5), np.float32)),
        FrameFaces(faces=np.stack([chair]), detections=np.zeros((0, 5), np.float32)),
    ]
    pose = np.full((3, 33, 4), np.nan, np.float32)
    pose[:2, 0] = (262, 52, 0, 0.9)  # the body's nose, on its own small face; frame 2: no body
    kept, _, dropped = faces_on_body(frames, pose)
    # the chair's track is dropped everywhere, also in frame 2 where no body is seen
    assert dropped == 3 and [len(f.faces) for f in kept] == [0, 1, 0]
    assert np.array_equal(kept[1].faces[0], own)
    face = build_face_track(frames, 512, 512, FaceConfig(), pose)
    assert face["detected"].tolist() == [False, True, False]
    assert face["info"]["faces_off_body"] == 3
    assert build_face_track(frames, 512, 512, FaceConfig())["detected"].all()  # no body: kept


def test_missing_face_policy_names_the_twin_the_file_and_the_pipeline():
    detected = np.array([True] * 7 + [False] * 3)
    check_coverage(detected, "face", 0.3, ["nerf"], twin="ok", path="v.mp4")
    with pytest.raises(InputError) as err:
        check_coverage(detected, "face", 0.2, ["animate", "nerf"], twin="alice", path="a.mp4")
    text = str(err.value)
    assert "alice" in text and "a.mp4" in text and "3 of 10 frames" in text
    assert "nerf needs the person's face" in text and "perception.max_missing_face" in text


def test_only_the_pipelines_that_need_a_part_refuse_a_video_without_it():
    nothing = np.zeros(10, bool)
    for pipelines in ([], ["animate"], ["mocap", "anchor", "animate"]):
        check_coverage(nothing, "face", 0.2, pipelines, twin="t", path="v.mp4")
    check_coverage(nothing, "body", 0.2, ["nerf", "meshhead"], twin="t", path="v.mp4")
    with pytest.raises(InputError, match="anchor and mocap need the person's body"):
        check_coverage(nothing, "body", 0.2, ["mocap", "anchor", "nerf"], twin="t", path="v.mp4")
    with pytest.raises(InputError, match="meshhead needs the person's face"):
        check_coverage(nothing, "face", 1.0, ["meshhead"], twin="t", path="v.mp4")


# --- template, head pose, cameras ---------------------------------------------------------------


def synthetic_face(seed: int = 0) -> np.ndarray:
    """A rigid face-like point cloud (478, 3) in metres, head frame (x right, y down, z in)."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform([-0.07, -0.1], [0.07, 0.1], (478, 2))
    z = 0.06 * ((xy[:, 0] / 0.07) ** 2 + (xy[:, 1] / 0.1) ** 2)  # curved back from the nose
    pts = np.column_stack([xy, z])
    pts[33] = [-0.045, -0.01, 0.03]
    pts[263] = [0.045, -0.01, 0.03]
    pts[10] = [0.0, -0.09, 0.04]
    pts[2] = [0.0, 0.03, -0.01]
    return pts


def synthetic_video(pts, f=700.0, n=60, size=512, seed=1):
    """Landmarks ``(n, 478, 3)`` as mediapipe gives them (perspective x, y; weak-perspective
    depth), of a head turning +-25 degrees at ~0.5 m, and the true poses."""
    rng = np.random.default_rng(seed)
    angles = np.column_stack(
        [
            8 * np.sin(np.linspace(0, 3, n)),
            25 * np.sin(np.linspace(0, 6, n)),
            5 * np.cos(np.linspace(0, 4, n)),
        ]
    )
    rvec = Rotation.from_euler("xyz", angles, degrees=True).as_rotvec()
    tvec = np.column_stack(
        [rng.normal(0, 0.01, n), rng.normal(0, 0.01, n), 0.5 + 0.03 * rng.random(n)]
    )
    k = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]])
    uv = project(pts, rvec, tvec, k)
    cam = np.einsum("tij,kj->tki", Rotation.from_rotvec(rvec).as_matrix(), pts) + tvec[:, None]
    depth = (cam[..., 2] - cam[..., 2].mean(1, keepdims=True)) * f / tvec[:, 2:3]  # pixels
    return np.concatenate([uv, depth[..., None]], -1).astype(np.float32), rvec, tvec


def test_head_pose_recovers_a_known_camera_and_motion():
    """The rigid template is rebuilt from mediapipe-like landmarks, and the poses and focal
    length of a synthetic perspective camera come back: f within 5%, rotations within 1
    degree, reprojection error far below a pixel."""
    pts = synthetic_face()
    landmarks, rvec, _ = synthetic_video(pts)
    landmarks += np.random.default_rng(2).normal(0, 0.2, landmarks.shape).astype(np.float32)
    detected = np.ones(len(landmarks), bool)
    template = build_template(landmarks, detected)
    pose = solve_head_pose(landmarks, detected, template, 512, 512, HeadPoseConfig())
    assert abs(float(pose["focal"]) / 700 - 1) < 0.05, float(pose["focal"])
    assert np.median(pose["reproj_error"]) < 0.5
    # rotations relative to frame 0 (the template's own frame is arbitrary up to a rotation)
    true_rel = Rotation.from_rotvec(rvec) * Rotation.from_rotvec(rvec[0]).inv()
    est_rel = Rotation.from_rotvec(pose["rvec"]) * Rotation.from_rotvec(pose["rvec"][0]).inv()
    err_deg = np.degrees((true_rel * est_rel.inv()).magnitude())
    assert err_deg.max() < 1.0, err_deg.max()
    eyes = template["vertices"][263] - template["vertices"][33]
    assert abs(np.linalg.norm(eyes) - 0.09) < 1e-5 and eyes[0] > 0.08  # scaled, +x to the left eye
    assert template["vertices"][10, 1] < template["vertices"][2, 1]  # +y down the face
    assert set(template) >= {"vertices", "rigid_index", "rigid_residual", "rigid_reproj_px"}


def test_a_fixed_template_would_drive_the_focal_length_away():
    """Why the template is refined: with mediapipe-like depths kept as they are, the fit prefers
    an orthographic camera (checked here: the reprojection error keeps falling as f grows)."""
    pts = synthetic_face()
    landmarks, _, _ = synthetic_video(pts)
    template = build_template(landmarks, np.ones(len(landmarks), bool))
    rigid = template["rigid_index"].astype(int)
    from twinflow.perception.head_pose import intrinsics, solve_frames

    errors = []
    for f in (400, 700, 3000):
        k = intrinsics(f, 512, 512)
        r, t = solve_frames(template["vertices"][rigid], landmarks[:, rigid, :2], k)
        proj = project(template["vertices"][rigid], r, t, k)
        errors.append(np.sqrt(((proj - landmarks[:, rigid, :2]) ** 2).sum(-1).mean()))
    assert errors[0] > errors[1] > errors[2]


def test_camera_to_world_of_a_frontal_head_looks_down_minus_z():
    rot = np.eye(3)[None]
    c2w = camera_to_world(rot, np.array([[0.0, 0.0, 0.5]]))[0]
    assert np.allclose(c2w[:3, 3], [0, 0, 0.5])  # in front of the face (+z out of the face)
    assert np.allclose(c2w[:3, :3], np.eye(3))  # OpenGL camera: looks down -z, y up
    # a head turned to its left (camera sees its right cheek) puts the camera to the head's right
    turned = Rotation.from_euler("y", 30, degrees=True).as_matrix()[None]
    pos = camera_to_world(turned, np.array([[0.0, 0.0, 0.5]]))[0][:3, 3]
    assert np.isclose(np.linalg.norm(pos), 0.5) and abs(pos[0]) > 0.2


def test_split_holds_out_blocks_spread_over_the_video():
    train, val = split_frames(183, 0.1)  # one block: ER-NeRF's split
    assert list(val) == list(range(164, 183)) and list(train) == list(range(164))
    train, val = split_frames(200, 0.1, blocks=4, gap=3)
    assert len(val) == 20
    assert [list(b) for b in np.split(val, 4)] == [
        list(range(s, s + 5)) for s in (45, 95, 145, 195)
    ]
    assert not set(train) & set(val)
    near = {f for v in val for f in range(v - 3, v + 4)}
    assert set(train) == set(range(200)) - near  # the gaps belong to neither split
    train, val = split_frames(3, 0.5, blocks=4, gap=10)  # tiny videos keep a training frame
    assert len(val) == 2 and len(train) == 1
    pose = {
        "R": np.tile(np.eye(3), (20, 1, 1)),
        "t": np.tile([0.0, 0.0, 0.5], (20, 1)),
        "K": np.array([[700, 0, 256], [0, 700, 256], [0, 0, 1.0]]),
        "image_size": np.array([512, 512]),
        "interpolated": np.zeros(20, bool),
    }
    docs = transforms(pose, 25.0, 0.1, 1, 0)
    assert [f["img_id"] for f in docs["val"]["frames"]] == [18, 19]
    assert docs["train"]["n_frames_total"] == 20 and docs["train"]["fl_x"] == 700
    assert np.array(docs["train"]["frames"][0]["transform_matrix"]).shape == (4, 4)


# --- signals, matte, files -------------------------------------------------------------------


def test_eye_aspect_ratio_and_blink_normalisation():
    landmarks = np.zeros((3, 478, 3), np.float32)
    for t, opening in enumerate((6.0, 3.0, 0.0)):
        p1, p2, p3, p4, p5, p6 = lm.RIGHT_EYE_EAR
        landmarks[t, p1] = (0, 0, 0)
        landmarks[t, p4] = (20, 0, 0)
        landmarks[t, [p2, p3]] = [(7, -opening / 2, 0), (13, -opening / 2, 0)]
        landmarks[t, [p6, p5]] = [(7, opening / 2, 0), (13, opening / 2, 0)]
    ear = eye_aspect_ratio(landmarks, lm.RIGHT_EYE_EAR)
    assert np.allclose(ear, [0.3, 0.15, 0.0])
    blink, open_ear, _ = blink_signal(
        np.array([0.3] * 8 + [0.15, 0.0], np.float32), np.ones(10, bool)
    )
    assert open_ear == pytest.approx(0.3)
    assert blink[0] == 0 and 0.6 < blink[8] < 0.8 and blink[9] == 1
    sig = compute_signals(landmarks, np.ones(3, bool))
    assert set(sig) >= {"blink", "mouth_open", "ear_left", "ear_right", "interpolated"}


def test_temporal_median_removes_flicker_without_ghosting():
    frames = [np.full((2, 2), v, np.float32) for v in (0, 0, 1, 0, 0, 1, 1, 1)]
    smoother = TemporalSmoother(3)
    out = [o for f in frames for o in smoother.push(f)] + smoother.flush()
    values = [float(o[0, 0]) for o in out]
    assert len(values) == 8
    assert values[2] == 0  # one-frame flicker removed
    assert values[5:] == [1, 1, 1]  # a real change stays sharp (an average would blur it)


@pytest.mark.parametrize("kind", ["gray", "rgba"])
def test_mask_files_are_lossless(tmp_path, kind):
    rng = np.random.default_rng(0)
    shape = (5, 32, 48) if kind == "gray" else (5, 32, 48, 4)
    frames = rng.integers(0, 256, shape, dtype=np.uint8)
    with MaskWriter(tmp_path / "m.mkv", 25, kind=kind) as writer:
        for f in frames:
            writer.write(f)
    back = np.stack(list(iter_masks(tmp_path / "m.mkv")))
    assert np.array_equal(back, frames)


def test_npz_round_trip_with_info(tmp_path):
    save_npz(tmp_path / "a.npz", info={"fps": 25.0}, x=np.arange(3))
    data = load_npz(tmp_path / "a.npz")
    assert load_info(data) == {"fps": 25.0} and list(data["x"]) == [0, 1, 2]
    with pytest.raises(InputError):
        load_npz(tmp_path / "missing.npz")


def test_background_median_ignores_the_person_and_flags_unseen_pixels():
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    frames, free = [], []
    for t in range(9):
        frame = scene.copy()
        person = np.zeros((16, 16), np.uint8)
        person[:, t : t + 4] = 255  # a person walking right, occluding 4 columns
        person[:4, :4] = 255  # and a corner never free
        frame[person > 0] = 7
        frames.append(frame)
        free.append(unoccluded(person, margin=0))
    plate, never = median_plate(np.stack(frames), np.stack(free), rows=5)
    assert never[:4, :4].all() and never.sum() == 16
    assert np.array_equal(plate[~never], scene[~never])


def test_torso_rgba_keeps_neck_and_torso_only():
    rgb = np.full((4, 4, 3), 200, np.uint8)
    alpha = np.full((4, 4), 255, np.uint8)
    labels = np.array([[1, 6, 7, 8]] * 4, np.uint8)  # skin, hair, neck, torso
    out = torso_rgba(rgb, alpha, labels)
    assert list(out[0, :, 3]) == [0, 0, 255, 255] and list(out[0, :, 0]) == [0, 0, 200, 200]


def test_config_flags_round_trip_through_the_parser():
    section = {"hands": False, "hand_every": 3, "min_detection": 0.4, "min_tracking": 0.5}
    parser = argparse.ArgumentParser()
    add_dataclass_args(parser, BodyConfig, "body")
    args = parser.parse_args(flags("body", section).split())
    assert dataclass_from_args(BodyConfig, args, "body") == BodyConfig(**section)


# --- the face path on a photo ------------------------------------------------------------------


def test_photo_face_path_on_a_portrait_and_on_no_face():
    """skimage's astronaut portrait (the demo twin's face) through the static face path."""
    import skimage.data

    from twinflow.perception.parsing import EYES, LIPS, MOUTH, SKIN, label_frame
    from twinflow.perception.photo import photo_face

    rgb = np.ascontiguousarray(skimage.data.astronaut())
    data = photo_face(rgb, FaceConfig())
    pts = data["landmarks"]
    assert pts.shape == (478, 3) and data["confidence"] > 0.8
    x0, y0, x1, y1 = data["face_box"]
    assert 150 < x0 < x1 < 320 and 40 < y0 < y1 < 260  # the astronaut's face
    assert pts[263, 0] > pts[33, 0]  # the person's left eye is on the image right
    assert data["alpha"][int((y0 + y1) / 2), int((x0 + x1) / 2)] > 200
    labels = label_frame(pts, data["alpha"], data["head_box"], None, rgb)

    def at(*idx: int) -> int:  # label at the mean of some landmarks
        x, y = pts[list(idx), :2].mean(0)
        return int(labels[int(round(y)), int(round(x))])

    assert at(468) == EYES and at(473) == EYES  # iris centres
    assert at(4) == SKIN and at(151) == SKIN  # nose tip, forehead
    assert at(0, 13) == LIPS and at(17, 14) == LIPS  # inside the upper and the lower lip
    assert at(13, 14) in (LIPS, MOUTH)
    with pytest.raises(InputError, match="no face"):
        photo_face(np.full((256, 256, 3), 127, np.uint8), FaceConfig(), path="grey.png")
