"""The anchor rules end to end on the demo twin, at toy sizes: clips of the twin -> conditioning
-> datasets -> stage-1 body and head training over the sheet -> the twin's body and head
training from them -> evaluation; a render's motion split into overlapping clips -> per-clip
body, head and blend jobs -> stitched, cross-faded, audio muxed. A twin with supplied models
(``anchor: models:``) plans no training.

Perception runs for real (its rules); the conditioning is the development stand-in
(``anchor: condition: standin``) to keep the mocap fit out of this test's time. The default,
mesh renders of the mocap fit, runs in tests/test_pipelines_workflow.py (the demo twin) and
tests/test_needs_workflow.py (a real whole-body clip)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers import assert_metrics_sane, make_project, planned_jobs, snakemake

pytestmark = pytest.mark.slow

# toy sizes and step counts of the anchor models and renders (also tests/test_needs_workflow.py)
TOY = {
    "overrides": {"ddim_steps": 2, "body_size": 32, "head_size": 16, "window": 8, "overlap": 2},
    "steps": {"tiny": 3},
    "head_steps": {"tiny": 3},
    "eval_frames": 4,
    "render_clip_seconds": 0.8,
    "clip_overlap": 4,
    "max_render_seconds": {"tiny": 1.2},
}
ANCHOR = {
    **TOY,
    "condition": "standin",
    "face_labels": [],  # face-mesh silhouette masks: no parsing jobs
    "pretrain": True,  # two stages: the sheet, then the twin
    "pretrain_steps": {"tiny": 2},
    "pretrain_head_steps": {"tiny": 2},
}


def test_anchor_rules_end_to_end(tmp_path, demo_media):
    from twinflow.media.video import probe_video

    work = make_project(
        tmp_path,
        twins=[{"twin_id": "demo", "video": str(demo_media / "talk.mp4")}],
        renders=[
            {
                "render_id": "anc",
                "twin_id": "demo",
                "pipeline": "anchor",
                "driving_audio": str(demo_media / "drive_speech.wav"),
                "driving_video": str(demo_media / "drive_motion.mp4"),
            }
        ],
        config={"anchor": ANCHOR},
    )
    targets = ("results/renders/anc.mp4", "results/demo/anchor/metrics.json")
    jobs = planned_jobs(work, *targets)
    rules = {rule for rule, _ in jobs}
    assert {"split_clips", "anchor_clips", "anchor_train_body", "anchor_train_head"} <= rules
    assert {"anchor_pretrain_body", "anchor_pretrain_head"} <= rules
    assert not any(rule.startswith("mocap") for rule in rules)  # standin: no mesh fit needed

    snakemake(work, *targets)
    out = work / "results/renders/anc.mp4"
    info = probe_video(out)
    plan = json.loads((work / "results/drive/anc/anchor/clips.json").read_text())
    assert len(plan["clips"]) == 2 and info.n_frames == plan["n_frames"] == 30
    assert info.has_audio and info.width == 32
    twin_clips = json.loads((work / "results/demo/media/clips/clips.json").read_text())["clips"]
    for c in twin_clips:
        assert (work / f"results/demo/anchor/data/{c['clip']}.npz").exists()
    metrics = json.loads((work / "results/demo/anchor/metrics.json").read_text())
    assert set(metrics["values"]) == {"psnr", "ssim", "pck", "flicker_gap"}
    assert_metrics_sane(metrics)
    assert set(metrics["baselines"]) == {"nearest_pose", "reference"}
    assert metrics["measured"]["condition_source"] == ["standin"]
    for rule in ("anchor_body", "anchor_head", "anchor_blend", "anchor_stitch"):
        assert any((work / "logs" / rule).iterdir())
    for kind in ("body", "head"):  # stage 2 started from stage 1
        meta = torch.load(work / f"results/demo/anchor/{kind}.pt", weights_only=False)["meta"]
        assert meta["init"] == f"results/anchor_pretrain/{kind}.pt"
    # nothing left to do
    assert not planned_jobs(work, *targets)


def test_supplied_models_replace_training(tmp_path):
    """``anchor: models: {twin: folder}`` plans anchor_use_model instead of the trainings."""
    video = tmp_path / "talk.mp4"
    video.write_bytes(b"")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "body.pt").write_bytes(b"")
    work = make_project(
        tmp_path,
        twins=[{"twin_id": "seth", "video": str(video)}, {"twin_id": "other", "video": str(video)}],
        config={"anchor": {**ANCHOR, "pretrain": False, "models": {"seth": str(tmp_path / "m")}}},
    )
    jobs = planned_jobs(work, "results/seth/anchor/body.pt", "results/other/anchor/body.pt")
    assert {w for rule, w in jobs if rule == "anchor_use_model"} == {"twin=seth,kind=body"}
    assert {w for rule, w in jobs if rule == "anchor_train_body"} == {"twin=other"}
