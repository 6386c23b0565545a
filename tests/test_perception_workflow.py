"""The perception rules in a workflow: a twin without a face fails, naming the twin, the file and
the pipeline that needs the face, while another twin finishes under --keep-going; driving videos
get their own perception jobs."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import make_project, planned_rules, shared_media, snakemake
from twinflow.media.video import iter_frames, write_video
from twinflow.perception.store import load_npz

FPS = 25.0


def gradient_video(path: Path, seconds: float = 2.0, size: int = 256) -> Path:
    """A moving colour gradient: a valid video with no face in it."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size

    def frame(t: int) -> np.ndarray:
        phase = t / 25.0
        rgb = np.stack(
            [(x + phase) % 1.0, (y + 0.5 * phase) % 1.0, 0.5 + 0.5 * np.sin(6 * x + phase)], -1
        )
        return (rgb * 255).astype(np.uint8)

    write_video(path, (frame(t) for t in range(int(seconds * FPS))), FPS)
    return path


@pytest.mark.slow
@pytest.mark.realdata
def test_a_twin_without_a_face_fails_by_name_while_another_finishes(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    talker = media / "talker.mp4"  # the first 3 s of a real talking-head clip
    write_video(talker, islice(iter_frames(shared_media("talk_d12.mp4")), 75), FPS)
    gradient_video(media / "noface.mp4")
    twins = [
        {"twin_id": "talker", "video": str(talker), "photo": str(shared_media("photo_s12.jpg"))},
        {"twin_id": "noface", "video": str(media / "noface.mp4")},
    ]
    speech = str(shared_media("libri_198-209-0000.wav"))
    renders = [
        {"render_id": "nf", "twin_id": "noface", "pipeline": "nerf", "driving_audio": speech}
    ]
    make_project(tmp_path, twins, renders)
    good = "results/talker/perception"
    targets = [
        f"{good}/summary.json",
        f"{good}/background.png",
        f"{good}/photo_face.npz",
        "results/noface/perception/ready/nerf.json",
    ]
    proc = snakemake(tmp_path, "--keep-going", "--show-failed-logs", *targets, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "twin 'noface'" in out and "no face found in 50 of 50 frames" in out
    assert "nerf needs the person's face" in out  # the pipeline that needs it is named
    assert "noface.mp4" in out  # the user's file is named
    log = (tmp_path / "logs/perception_ready/noface_nerf.log").read_text()
    assert "twin 'noface'" in log
    assert not (tmp_path / "results/noface/perception/ready/nerf.json").exists()

    # the other twin finished every perception output
    for name in [
        "face.npz",
        "body.npz",
        "signals.npz",
        "matte.mkv",
        "template.npz",
        "head_pose.npz",
        "transforms_train.json",
        "transforms_val.json",
        "parsing.mkv",
        "background.png",
        "torso.mkv",
        "composite.mp4",
        "preview.mp4",
        "summary.json",
        "photo_face.npz",
    ]:
        assert (tmp_path / good / name).stat().st_size > 0, name
    summary = json.loads((tmp_path / good / "summary.json").read_text())
    assert summary["n_frames"] == 75 and summary["face"]["detection_rate"] >= 0.98
    assert summary["people"]["people_seen"] == 1
    assert summary["head_pose"]["reproj_error_px"]["median"] < 2.5
    train = json.loads((tmp_path / good / "transforms_train.json").read_text())
    val = json.loads((tmp_path / good / "transforms_val.json").read_text())
    val_ids = [f["img_id"] for f in val["frames"]]
    train_ids = {f["img_id"] for f in train["frames"]}
    # the default split: 8 frames in 4 blocks spread over the video, 4-frame gaps in neither split
    assert val_ids == [17, 18, 36, 37, 54, 55, 73, 74]
    assert len(train_ids) == 75 - 36 and not train_ids & set(val_ids)
    photo = load_npz(tmp_path / good / "photo_face.npz")
    assert photo["landmarks"].shape == (478, 3) and photo["alpha"].shape == (512, 512)


def test_driving_videos_get_their_own_perception_jobs(tmp_path):
    video = gradient_video(tmp_path / "twin.mp4", seconds=1.0)
    motion = gradient_video(tmp_path / "motion.mp4", seconds=1.0)
    make_project(
        tmp_path,
        [{"twin_id": "tw", "video": str(video)}],
        [
            {
                "render_id": "r1",
                "twin_id": "tw",
                "pipeline": "animate",
                "driving_video": str(motion),
            }
        ],
    )
    rules = planned_rules(
        tmp_path,
        "results/drive/r1/perception/summary.json",
        "results/drive/r1/perception/parsing.mkv",
        "results/tw/perception/composite.mp4",
    )
    assert {
        "face_track_driving",
        "face_parsing_driving",
        "perception_report_driving",
        "normalise_driving_video",
        "face_track",
        "face_parsing",
        "background",
    } <= rules
    assert "face_track" in rules and "head_pose" not in rules  # composite needs no head pose
    # animate needs no face: its driving video's report is drawn without a head pose
    assert "head_pose_driving" not in rules
