"""The mocap rules in the workflow: the plan, and a twin without a person failing alone."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import make_project, planned_jobs, shared_media, snakemake
from twinflow.media.video import VideoWriter, iter_frames

FAST = {
    "mocap": {"overrides": {"iters_global": 3, "iters_body": 6, "iters_full": 4}},
}


def _first_frames(src, dst, n: int):
    with VideoWriter(dst, 25) as w:
        for i, rgb in enumerate(iter_frames(src)):
            if i >= n:
                break
            w.write(rgb)
    return dst


def _nobody(dst, n: int = 30):
    """A video of a plain wall with a moving light: no person anywhere."""
    y, x = np.mgrid[0:128, 0:128]
    with VideoWriter(dst, 25) as w:
        for t in range(n):
            v = 120 + 60 * np.sin((x + 3 * t) / 20.0) * np.cos(y / 30.0)
            w.write(np.repeat(v[..., None], 3, axis=2).astype(np.uint8))
    return dst


def test_plan_covers_twin_and_driving_video_fits(tmp_path, demo_media):
    video = str(demo_media / "talk.mp4")
    make_project(
        tmp_path,
        [{"twin_id": "a", "video": video}],
        [
            {"render_id": "own", "twin_id": "a", "pipeline": "mocap"},
            {"render_id": "drv", "twin_id": "a", "pipeline": "mocap", "driving_video": video},
        ],
        config=FAST,
    )
    jobs = planned_jobs(tmp_path)  # the default target: every mocap row's outputs
    rules = {r for r, _ in jobs}
    assert {
        "mocap_fit", "mocap_fit_drive", "mocap_preview", "mocap_preview_drive", "mocap_metrics",
        "mocap_metrics_drive", "mocap_traj_data", "mocap_traj_train", "mocap_traj_infer",
        "mocap_traj_infer_drive", "mocap_render",
    } <= rules  # fmt: skip
    assert ("mocap_render", "render=drv") in jobs and ("mocap_render", "render=own") in jobs
    assert ("mocap_fit_drive", "render=drv,person=person0") in jobs
    assert ("mocap_fit", "twin=a,person=person0") in jobs


@pytest.mark.slow
@pytest.mark.realdata
def test_no_person_fails_for_that_twin_only(tmp_path):
    clip = _first_frames(shared_media("fullbody_s13.mp4"), tmp_path / "person.mp4", 30)
    empty = _nobody(tmp_path / "wall.mp4")
    make_project(
        tmp_path,
        [
            {"twin_id": "ok", "video": str(clip), "crop": "0,0,720,1080"},
            {"twin_id": "empty", "video": str(empty)},
        ],
        config=FAST,
    )
    targets = [
        f"results/{t}/mocap/{f}" for t in ("ok", "empty") for f in ("person0.npz", "metrics.json")
    ]
    proc = snakemake(tmp_path, "--keep-going", *targets, check=False, timeout=900)
    assert proc.returncode != 0
    assert (tmp_path / "results/ok/mocap/person0.npz").exists()
    assert (tmp_path / "results/ok/mocap/metrics.json").exists()
    assert not (tmp_path / "results/empty/mocap/person0.npz").exists()
    log = (tmp_path / "logs/perception_ready/empty_mocap.log").read_text()
    assert "twin 'empty'" in log and "wall.mp4" in log, log
    assert "no body found in 30 of 30 frames" in log and "mocap needs the person's body" in log
    with np.load(tmp_path / "results/ok/mocap/person0.npz") as d:
        assert d["pose"].shape == (30, 104, 3) and np.isfinite(d["joints3d"]).all()
