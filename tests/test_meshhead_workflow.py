"""Meshhead rules in the workflow: the planned jobs of meshhead renders (dry runs) and
parse-time errors for bad render options."""

from __future__ import annotations

import pytest

from tests.helpers import copy_media, make_project, planned_jobs, snakemake


@pytest.fixture(scope="module")
def project(tmp_path_factory, demo_media):
    root = tmp_path_factory.mktemp("meshhead_project")
    m = root / "media"
    copy_media(demo_media / "talk.mp4", m / "talk.mp4")
    copy_media(demo_media / "photo.png", m / "photo.png")
    copy_media(demo_media / "drive_speech.wav", m / "speech.wav")
    copy_media(demo_media / "drive_motion.mp4", m / "motion.mp4")
    twins = [{"twin_id": "demo", "video": "media/talk.mp4", "photo": "media/photo.png"}]
    renders = [
        {
            "render_id": "m_default",
            "twin_id": "demo",
            "pipeline": "meshhead",
            "driving_audio": "media/speech.wav",
        },
        {
            "render_id": "m_photo",
            "twin_id": "demo",
            "pipeline": "meshhead",
            "driving_audio": "media/speech.wav",
            "options": "source=photo;pose=neutral",
        },
        {
            "render_id": "m_video",
            "twin_id": "demo",
            "pipeline": "meshhead",
            "driving_audio": "media/speech.wav",
            "driving_video": "media/motion.mp4",
            "options": "pose=video",
        },
    ]
    return make_project(root, twins, renders)


def test_plan_of_meshhead_renders(project):
    jobs = planned_jobs(
        project,
        "results/renders/m_default.mp4",
        "results/renders/m_photo.mp4",
        "results/renders/m_video.mp4",
        "results/drive/m_default/meshhead/mesh_preview.mp4",
        "results/demo/meshhead/metrics.json",
    )
    rules = {rule for rule, _ in jobs}
    twin_jobs = {
        "meshhead_dataset",
        "meshhead_frames",
        "meshhead_train_audio2mesh",
        "meshhead_train_warp",
        "meshhead_evaluate",
    }
    assert {(r, "twin=demo") for r in twin_jobs} <= jobs
    for render in ("m_default", "m_photo", "m_video"):
        for rule in ("meshhead_infer", "meshhead_render", "meshhead_mux"):
            assert (rule, f"render={render}") in jobs
    assert ("meshhead_preview", "render=m_default") in jobs
    assert {"face_track", "head_pose", "photo_face", "head_pose_driving"} <= rules
    assert ("head_pose_driving", "render=m_video") in jobs
    assert not any(r == "head_pose_driving" and w != "render=m_video" for r, w in jobs)


def test_all_target_includes_meshhead_outputs(project):
    rules = {rule for rule, _ in planned_jobs(project)}
    assert {"meshhead_mux", "meshhead_preview", "meshhead_evaluate"} <= rules


def test_bad_render_option_fails_at_parse_time(project, tmp_path):
    bad = make_project(
        tmp_path,
        [{"twin_id": "demo", "video": str(project / "media/talk.mp4")}],
        [
            {
                "render_id": "m_bad",
                "twin_id": "demo",
                "pipeline": "meshhead",
                "driving_audio": str(project / "media/speech.wav"),
                "options": "pose=video",
            }
        ],
    )
    proc = snakemake(bad, "-n", check=False)
    assert proc.returncode != 0
    assert "invalid meshhead configuration" in proc.stderr + proc.stdout
    assert "m_bad" in proc.stderr + proc.stdout and "driving_video" in proc.stderr + proc.stdout
