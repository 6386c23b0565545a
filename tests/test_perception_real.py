"""Perception on real clips (../shared/data): detection, jitter, head pose, matte, parsing, photo.

Each clip is normalised as the workflow does (constant 25 fps, centre square, 512x512; calling
the prep functions directly) but only its first seconds, then goes through the face_track pass
and the head pose solver once per module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import shared_media
from twinflow.media.image import crop_box, fit_to_size, load_image
from twinflow.media.video import (
    constant_rate,
    iter_frames_timed,
    probe_video,
    read_frames,
    write_video,
)
from twinflow.perception.body import BodyConfig
from twinflow.perception.face import FaceConfig
from twinflow.perception.head_pose import HeadPoseConfig, solve_head_pose
from twinflow.perception.matte import MatteConfig
from twinflow.perception.parsing import EYES, HAIR, LIPS, SKIN, TORSO, label_frame
from twinflow.perception.photo import photo_face
from twinflow.perception.report import MatteStats
from twinflow.perception.store import read_masks
from twinflow.perception.summary import landmark_jitter, stabilised, still_stretch
from twinflow.perception.template import build_template
from twinflow.perception.track import track_video
from twinflow.prep.photo import photo_box

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

SIZE, FPS = 512, 25.0
CLIPS = {"talk_d12.mp4": 5.0, "talk_d6.mp4": 5.0, "halfbody_s18.mp4": 4.0}
TALKING = ["talk_d12.mp4", "talk_d6.mp4"]


def normalised_clip(name: str, seconds: float, out: Path) -> Path:
    """The first ``seconds`` of a shared clip, normalised like ``twinflow.prep.normalise``."""
    src = shared_media(name)
    info = probe_video(src)
    box = crop_box(info.width, info.height, None)
    frames = constant_rate(iter_frames_timed(src), FPS, round(seconds * FPS))
    write_video(out, (fit_to_size(f, box, SIZE) for f in frames), FPS)
    return out


@pytest.fixture(scope="module")
def perceived(tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("perception_real")
    out = {}
    for name, seconds in CLIPS.items():
        video = normalised_clip(name, seconds, root / name)
        matte = root / f"{name}.matte.mkv"
        face, body = track_video(
            str(video), str(matte), FaceConfig(), BodyConfig(), MatteConfig(), twin=name
        )
        template = build_template(face["landmarks"], face["detected"])
        pose = solve_head_pose(
            face["landmarks"], face["detected"], template, SIZE, SIZE, HeadPoseConfig()
        )
        out[name] = {
            "face": face,
            "body": body,
            "template": template,
            "pose": pose,
            "matte": read_masks(matte),
            "video": video,
        }
    return out


@pytest.mark.parametrize("name", TALKING)
def test_face_found_in_nearly_every_frame_of_talking_clips(perceived, name):
    face = perceived[name]["face"]
    assert face["detected"].mean() >= 0.98
    assert face["info"]["people_seen"] == 1 and len(face["info"]["kept_tracks"]) >= 1
    assert face["landmarks"].shape == (len(face["detected"]), 478, 3)
    assert (face["confidence"][face["detected"]] > 0.5).mean() >= 0.98
    # every landmark of a detected frame is on (or just off) the frame
    xy = face["landmarks"][face["detected"], :, :2]
    assert (xy > -10).all() and (xy < SIZE + 10).all()


@pytest.mark.parametrize("name", ["talk_d6.mp4", "halfbody_s18.mp4"])
def test_landmark_jitter_on_a_near_still_stretch(perceived, name):
    """Jitter (see twinflow.perception.summary): RMS of the pose-stabilised rigid landmarks'
    deviation from a 9-frame quadratic fit, on the stillest 1 s of the clip.

    Threshold 1.0 px (0.2% of the 512 px frame, ~0.5% of the face width): mediapipe's
    tracking-mode landmarks measure 0.3-0.5 px on these talking clips and under 0.1 px on the
    calm half-body clip, and adding 1 px Gaussian noise to the landmarks raises the measure to
    1.2-1.4 px, so a noisier tracker (or a jump between faces) fails it.
    """
    data = perceived[name]
    face = data["face"]
    jitter = landmark_jitter(
        stabilised(face["landmarks"], data["pose"], data["template"]), face["detected"]
    )
    still = still_stretch(face["landmarks"], jitter, FPS)
    assert still is not None
    assert still["motion_px_per_frame"] < 2.0, still  # near-still: < 2 px of head motion per frame
    assert still["jitter_px"] < 1.0, still
    # the measure sees noise: 1 px of added noise must show
    noisy = face["landmarks"] + np.random.default_rng(0).normal(0, 1, face["landmarks"].shape)
    noisy_jitter = landmark_jitter(
        stabilised(noisy, data["pose"], data["template"]), face["detected"]
    )
    assert np.nanmedian(noisy_jitter) > 1.0


@pytest.mark.parametrize("name", list(CLIPS))
def test_head_pose_reprojects_the_template_onto_the_landmarks(perceived, name):
    """The rigid template at each frame's pose lands within a few pixels of the landmarks."""
    pose = perceived[name]["pose"]
    err = pose["reproj_error"][perceived[name]["face"]["detected"]]
    assert np.median(err) < 2.5 and np.percentile(err, 95) < 5.0, np.percentile(err, [50, 95])
    f = float(pose["focal"])
    assert 0.8 * SIZE < f < 4.0 * SIZE  # a plausible lens, not the search bounds
    assert 0.2 < np.median(pose["t"][:, 2]) < 3.0  # the head half a metre or so away


def test_head_yaw_follows_the_nose_in_the_image(perceived):
    """Consistency with the landmarks themselves: when the head turns (yaw), the nose tip moves
    sideways between the two face sides. talk_d12 turns by about +-15 degrees."""
    data = perceived["talk_d12.mp4"]
    lmk = data["face"]["landmarks"]
    left, right, nose = lmk[:, 454, 0], lmk[:, 234, 0], lmk[:, 4, 0]
    offset = (nose - (left + right) / 2) / (left - right)
    yaw = data["pose"]["euler_deg"][:, 1]
    assert np.ptp(yaw) > 15
    assert abs(np.corrcoef(offset, yaw)[0, 1]) > 0.9


@pytest.mark.parametrize("name", ["talk_d12.mp4", "halfbody_s18.mp4"])
def test_matte_covers_the_person(perceived, name):
    data = perceived[name]
    face, body, mattes = data["face"], data["body"], data["matte"]
    assert mattes.shape == (len(face["detected"]), SIZE, SIZE)
    stats = MatteStats()
    for t, alpha in enumerate(mattes):
        stats.add(
            alpha,
            face["face_box"][t] if face["detected"][t] else None,
            body["pose"][t] if body["pose_present"][t] else None,
        )
    result = stats.to_dict()
    assert result["face_box_covered"] > 0.9, result
    assert result["pose_points_checked"] > 10 * len(mattes) and result["pose_points_covered"] > 0.95
    # and not the background: the top corners of these clips are scenery
    corners = np.concatenate([mattes[:, :48, :48], mattes[:, :48, -48:]], axis=1)
    assert np.median(corners) < 26


def test_parsing_labels_land_on_the_right_parts(perceived):
    data = perceived["halfbody_s18.mp4"]
    face, body, mattes = data["face"], data["body"], data["matte"]
    frames = read_frames(data["video"])
    for t in (0, 50, 99):
        lmk = face["landmarks"][t]
        labels = label_frame(lmk, mattes[t], face["head_box"][t], body["pose"][t], frames[t])

        def at(x: float, y: float, labels: np.ndarray = labels) -> int:
            return int(labels[int(round(y)), int(round(x))])

        assert at(*lmk[468, :2]) == EYES and at(*lmk[473, :2]) == EYES
        assert at(*lmk[4, :2]) == SKIN
        assert at(*(lmk[0, :2] + lmk[13, :2]) / 2) == LIPS
        forehead, chin = lmk[10, :2], lmk[152, :2]
        above = forehead + 0.15 * (forehead - chin)  # on the hair above the forehead
        assert at(*above) == HAIR
        shoulders = body["pose"][t, [11, 12], :2]
        for x, y in shoulders:
            if y + 15 < SIZE:
                assert at(x, y + 15) == TORSO


@pytest.mark.parametrize("name", ["photo_s12.jpg", "photo_s5.jpg"])
def test_a_single_photo_goes_through_the_face_path(name):
    """A real portrait and a painted one, fitted as prepare_photo does, then photo_face."""
    rgb = load_image(shared_media(name))
    photo = fit_to_size(rgb, photo_box(rgb.shape[1], rgb.shape[0]), SIZE)
    data = photo_face(photo, FaceConfig(), path=name)
    pts = data["landmarks"]
    assert pts.shape == (478, 3) and data["ibug68"].shape == (68, 3)
    assert data["confidence"] > 0.7 and data["n_faces"] >= 1
    x0, y0, x1, y1 = data["face_box"]
    assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE and (x1 - x0) > 60
    assert data["alpha"][int(pts[4, 1]), int(pts[4, 0])] > 200  # the matte covers the nose
    ibug = data["ibug68"]
    assert ibug[0, 0] < ibug[8, 0] < ibug[16, 0]  # jaw from image left over the chin to right
    assert ibug[19, 1] < ibug[37, 1] < ibug[30, 1] < ibug[51, 1] < ibug[8, 1]  # brow..chin


def test_second_person_and_face_gaps_on_a_real_clip():
    """A real talking head with a second, smaller person's photo in the top-right corner, and
    frames 20-29 blanked out (the face is lost): the second person is seen and reported but the
    large central track is kept, and the gap is interpolated and flagged, not dropped."""
    import cv2

    from twinflow.media.video import iter_frames
    from twinflow.perception.face import FaceRunner, build_face_track

    photo = load_image(shared_media("photo_s12.jpg"))
    inset = cv2.resize(photo[: photo.shape[1]], (190, 190), interpolation=cv2.INTER_AREA)
    frames = []
    for t, rgb in enumerate(iter_frames(shared_media("talk_d12.mp4"))):
        if t == 60:
            break
        rgb = rgb.copy()
        if 20 <= t < 30:
            rgb[:] = 128
        rgb[8:198, 314:504] = inset
        frames.append(rgb)
    runner = FaceRunner(FaceConfig())
    try:
        observed = [runner(f) for f in frames]
    finally:
        runner.close()
    face = build_face_track(observed, SIZE, SIZE, FaceConfig())
    info = face["info"]
    assert info["people_seen"] == 2 and len(info["tracks"]) >= 2
    kept = [t for t in info["tracks"] if t["kept"]]
    assert all(t["mean_area_fraction"] > 0.1 for t in kept)  # the talking head, not the inset
    cx = (face["face_box"][:, 0] + face["face_box"][:, 2]) / 2
    cy = (face["face_box"][:, 1] + face["face_box"][:, 3]) / 2
    in_inset = (cx > 314) & (cx < 504) & (cy > 8) & (cy < 198)
    assert not in_inset.any()  # never the inset's face
    assert list(np.flatnonzero(~face["detected"])) == list(range(20, 30))
    assert face["interpolated"][20:30].all() and len(face["landmarks"]) == 60
    lmk = face["landmarks"]
    expected = lmk[19] + (lmk[30] - lmk[19]) * (25 - 19) / (30 - 19)
    assert np.allclose(lmk[25], expected, atol=1e-3)
