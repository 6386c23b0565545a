"""Issue 27: on a whole-body shot the fitted head must sit on the person's head.

Two causes put it beside the head, and each is tested: the face tracker's "face" was not the
person's (on ``fullbody_taiji_17s.mp4`` FaceMesh finds one in a chair beside the man, whose own
face is too small for it, and the fit pulled the head towards the chair), and face landmarks that
``face.npz`` fills in over frames without a face (held beyond the first and last detection) were
fitted as observations."""

from __future__ import annotations

import json
from itertools import islice
from types import SimpleNamespace

import numpy as np
import pytest

from tests.helpers import make_project, shared_media, snakemake
from tests.mocap_helpers import write_perception
from twinflow.media.video import iter_frames, write_video
from twinflow.mocap import skeleton


def test_face_landmarks_count_only_where_the_face_was_found(tmp_path):
    n = 10
    rng = np.random.default_rng(0)
    obs = SimpleNamespace(xy=rng.uniform(100, 400, (n, skeleton.N_POINTS, 2)))
    folder = write_perception(tmp_path, obs, n)
    with np.load(folder / "face.npz") as face:
        arrays = dict(face)
    arrays["detected"] = np.arange(n) >= 4  # found from frame 4 on; 0-3 hold frame 4's
    np.savez(folder / "face.npz", **arrays)
    loaded = skeleton.load_observations(
        folder / "body.npz", folder / "face.npz", width=512, height=512, fps=25
    )
    face_conf = loaded.conf[:, skeleton.GROUPS["face"]]
    assert not face_conf[:4].any() and (face_conf[4:] == 1).all()


@pytest.mark.slow
@pytest.mark.realdata
def test_fitted_head_sits_on_the_head_of_a_whole_body_clip(tmp_path):
    """The first 4 s of the tai-chi clip through the workflow (default config, a mocap render):
    per-part reprojection error of the fit against the smoothed detections, head within twice
    the torso's (the issue's acceptance line).

    Measured (2026-12-03, 96 frames normalised to 512 px, the person ~240 px tall; medians in
    px against the body's own detections): before (0bc8f5c, the chair's face kept in all 96
    frames) head 19.73, torso 8.60, arms 6.45, legs 4.97 (the body bent towards the chair by
    frame 90); after: head 2.70, torso 4.35, arms 5.29, legs 2.83. No face landmarks reach the
    fit now (the man's face is never found), only the pose model's face points."""
    clip = tmp_path / "taiji.mp4"
    write_video(clip, islice(iter_frames(shared_media("fullbody_taiji_17s.mp4")), 96), 24.0)
    make_project(
        tmp_path,
        [{"twin_id": "taiji", "video": str(clip)}],
        [{"render_id": "tj", "twin_id": "taiji", "pipeline": "mocap"}],
    )
    snakemake(tmp_path, "results/taiji/mocap/metrics.json", timeout=1200)
    with np.load(tmp_path / "results/taiji/perception/face.npz") as face:
        info = json.loads(str(face["info"]))
        assert not face["detected"].any() and info["faces_off_body"] > 0  # the chair's face
    metrics = json.loads((tmp_path / "results/taiji/mocap/metrics.json").read_text())
    model, smoothed = metrics["values"], metrics["baselines"]["smoothed_detections"]
    parts = {p: model[f"reproj_px_{p}"] for p in ("torso", "arms", "legs", "head")}
    assert all(np.isfinite(v) for v in parts.values()), parts
    assert parts["head"] <= 2 * parts["torso"], parts
    assert parts["head"] <= 2 * max(smoothed["reproj_px_head"], 2.0), (parts, smoothed)
