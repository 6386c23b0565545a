"""What perception requires of a twin follows from its renders (twinflow.perception.needs).

A whole-body twin whose face is too small for the face mesh (the first 2 s of a real tai-chi
clip: FaceMesh finds no face on the person, only one in the furniture, which is off the body and
dropped) runs mocap and anchor to their renders next to a talking-head twin, with the default
``max_missing_face``; anchor's head pass is skipped on every frame and says so in its metrics.
The same sheet with a talking-head twin whose video shows no face fails that twin, naming nerf and
meshhead, and reruns nothing of the other twin.
"""

from __future__ import annotations

import json
from itertools import islice

import numpy as np
import pytest

from tests.helpers import assert_metrics_sane, make_project, shared_media, snakemake
from tests.test_anchor_workflow import TOY
from tests.test_mocap_workflow import FAST as MOCAP_FAST
from tests.test_perception_workflow import gradient_video
from twinflow.media.video import iter_frames, write_video

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

FAST = {
    "mocap": MOCAP_FAST["mocap"],
    "anchor": TOY,  # mesh conditioning from the mocap fit, parsing masks: the defaults
}


def sheet(tmp_path, demo_media, talker_video):
    body = tmp_path / "taiji.mp4"
    write_video(body, islice(iter_frames(shared_media("fullbody_taiji_17s.mp4")), 48), 24.0)
    speech = str(demo_media / "drive_speech.wav")
    twins = [
        {"twin_id": "body", "video": str(body)},
        {"twin_id": "talker", "video": str(talker_video)},
    ]
    renders = [
        {"render_id": "b_mocap", "twin_id": "body", "pipeline": "mocap"},
        {"render_id": "b_anchor", "twin_id": "body", "pipeline": "anchor"},
        {"render_id": "t_nerf", "twin_id": "talker", "pipeline": "nerf", "driving_audio": speech},
        {
            "render_id": "t_mesh",
            "twin_id": "talker",
            "pipeline": "meshhead",
            "driving_audio": speech,
        },
    ]
    return make_project(tmp_path, twins, renders, FAST)


BODY_TARGETS = (
    "results/renders/b_mocap.mp4",
    "results/renders/b_anchor.mp4",
    "results/body/anchor/metrics.json",
    "results/body/perception/summary.json",
)
# the talking-head twin's pipelines as far as their first jobs past the perception gate
TALKER_TARGETS = ("results/talker/nerf/dataset.npz", "results/talker/meshhead/dataset.npz")


def test_a_body_twin_runs_next_to_a_talking_head_twin(tmp_path, demo_media):
    work = sheet(tmp_path, demo_media, demo_media / "talk.mp4")
    snakemake(work, *BODY_TARGETS, *TALKER_TARGETS, timeout=1500)

    summary = json.loads((work / "results/body/perception/summary.json").read_text())
    assert summary["face"]["frames_with_face"] == 0 and summary["people"]["faces_off_body"] > 0
    assert summary["body"]["pose_rate"] == 1.0 and summary["head_pose"] is None
    assert not (work / "results/body/perception/head_pose.npz").exists()  # no pipeline wants it
    ready = json.loads((work / "results/body/perception/ready/anchor.json").read_text())
    assert ready["needs"] == ["body"] and ready["face"]["found"] == 0
    metrics = json.loads((work / "results/body/anchor/metrics.json").read_text())
    assert_metrics_sane(metrics)
    head = metrics["measured"]["head_pass"]
    assert head["frames"] == 0 and head["skipped_without_face"] == metrics["measured"]["frames"]
    for clip in sorted((work / "results/drive/b_anchor/anchor/head").glob("*.npz")):
        with np.load(clip) as heads:
            assert not heads["head_pass"].any() and not heads["alpha"].any()
    talker = json.loads((work / "results/talker/perception/ready/nerf.json").read_text())
    assert talker["face"]["missing"] == 0

    # the talking-head twin's video now shows no face: it fails, naming the pipelines
    done = {p: (work / p).stat().st_mtime_ns for p in BODY_TARGETS}
    gradient_video(tmp_path / "blank.mp4", seconds=2.0)
    sheet(tmp_path, demo_media, tmp_path / "blank.mp4")
    proc = snakemake(work, "--keep-going", *BODY_TARGETS, *TALKER_TARGETS, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for pipeline in ("nerf", "meshhead"):
        log = (work / f"logs/perception_ready/talker_{pipeline}.log").read_text()
        assert "twin 'talker'" in log and "blank.mp4" in log, log
        assert (
            "no face found in 50 of 50 frames" in log
            and f"{pipeline} needs the person's face" in log
        )
    assert "perception_ready" in out
    assert {p: (work / p).stat().st_mtime_ns for p in BODY_TARGETS} == done  # nothing rerun
