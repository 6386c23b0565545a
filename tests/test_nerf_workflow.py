"""nerf pipeline in the workflow: a tiny project runs end to end, then a new driving audio reruns
only that render's audio features, render, paste-back and mux (never training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import copy_media, make_project, planned_jobs, snakemake
from twinflow.media.audio import read_wav, write_wav
from twinflow.media.video import probe_video

# Training steps and model sizes cut to seconds: this tests the plumbing, not the quality.
TINY = {
    "nerf": {
        "steps": {"tiny": {"head": 12, "lips": 4, "torso": 4}},
        "max_minutes": {"tiny": None},
        "save_every": 5,
        "overrides": {
            "res": 64,
            "rays": 512,
            "frames_per_step": 2,
            "n_samples": 16,
            "occ_res": 16,
            "occ_warmup": 4,
            "occ_every": 4,
            "patch": 8,
            "log_every": 4,
        },
    }
}


N_RENDER = 42


@pytest.fixture(scope="module")
def completed(tmp_path_factory, demo_media) -> Path:
    root = tmp_path_factory.mktemp("nerf_project")
    m = root / "media"
    copy_media(demo_media / "talk.mp4", m / "talk.mp4")
    speech, sr = read_wav(demo_media / "drive_speech.wav")
    # 42 frames: the played-back poses cross the first val block (frames 34-37 of the 6 s demo
    # twin) and the guard gaps either side of it (30-33, 38-41), frames in neither split
    write_wav(m / "drive.wav", speech[: int(1.68 * sr)], sr)
    twins = [{"twin_id": "demo", "video": "media/talk.mp4"}]
    renders = [
        {
            "render_id": "r_nerf",
            "twin_id": "demo",
            "pipeline": "nerf",
            "driving_audio": "media/drive.wav",
            "options": "paste=head",
        }
    ]
    make_project(root, twins, renders, TINY)
    targets = ["results/renders/r_nerf.mp4", "results/demo/nerf/metrics.json"]
    snakemake(root, *targets, timeout=1200)
    return root


def test_tiny_project_renders_and_measures(completed):
    out = probe_video(completed / "results/renders/r_nerf.mp4")
    assert out.n_frames == N_RENDER and out.has_audio and (out.width, out.height) == (512, 512)
    metrics = json.loads((completed / "results/demo/nerf/metrics.json").read_text())
    assert metrics["pipeline"] == "nerf" and set(metrics["values"]) == {
        "psnr",
        "psnr_full",
        "ssim",
        "lmd",
        "lmd_uncentred",
        "lmd_ernerf",
    }  # no lpips: its weights are not supplied
    assert set(metrics["baselines"]["no_audio"]) == set(metrics["values"])
    render = json.loads((completed / "results/drive/r_nerf/nerf/render.json").read_text())
    assert render["frames"] == N_RENDER and render["audio_features"] == "logmel"
    for rule in ("nerf_train_head", "nerf_train_lips", "nerf_train_torso", "nerf_render"):
        assert any((completed / "logs" / rule).iterdir())
        assert any((completed / "benchmarks" / rule).iterdir())
    assert (
        planned_jobs(completed, "results/renders/r_nerf.mp4", "results/demo/nerf/metrics.json")
        == set()
    )


def test_render_crosses_val_blocks_and_the_gaps_around_them(completed):
    """Every frame has a camera, whatever its split: the render plays the twin's poses back and
    forth over all frames, including val frames and the guard gaps in neither split."""
    data = np.load(completed / "results/demo/nerf/dataset.npz")
    render = json.loads((completed / "results/drive/r_nerf/nerf/render.json").read_text())
    used = set(render["frame_index"])
    gaps = set(range(len(data["c2w"]))) - set(data["train"]) - set(data["val"])
    assert used & gaps and used & set(data["val"]), "the render must cross a gap and a val block"
    rot = data["c2w"][:, :3, :3].astype(float)
    assert np.allclose(rot @ rot.transpose(0, 2, 1), np.eye(3), atol=1e-4)


def test_new_driving_audio_reruns_only_that_render(completed):
    wav = completed / "media/drive.wav"
    original = wav.read_bytes()
    samples, sr = read_wav(wav)
    write_wav(wav, samples[::-1].copy() * 0.8, sr)
    try:
        plan = planned_jobs(
            completed, "results/renders/r_nerf.mp4", "results/demo/nerf/metrics.json"
        )
        assert plan == {
            ("extract_driving_audio", "render=r_nerf"),
            ("nerf_driving_audio_features", "render=r_nerf"),
            ("nerf_render", "render=r_nerf"),
            ("nerf_paste", "render=r_nerf"),
            ("nerf_mux", "render=r_nerf"),
        }
    finally:
        wav.write_bytes(original)
