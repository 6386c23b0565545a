"""Workflow semantics: planning, nothing-to-do after a run, exact reruns, bad inputs, kills.

Uses the demo twin and real clips from ../shared/data, with the ``preprocess`` target so that the
rerun sets stay exact whatever pipelines exist downstream.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import (
    REPO,
    SNAKEMAKE,
    copy_media,
    make_project,
    planned_jobs,
    shared_media,
    snakemake,
    tone_wav,
    truncated_copy,
    zero_frame_video,
)
from twinflow.media.audio import read_wav, write_wav
from twinflow.media.video import probe_video


@pytest.fixture(scope="module")
def project(tmp_path_factory, demo_media) -> Path:
    """Three twins (demo, a real talking head, a real half-body clip) and four renders."""
    root = tmp_path_factory.mktemp("project")
    m = root / "media"
    copy_media(demo_media / "talk.mp4", m / "demo.mp4")
    copy_media(demo_media / "photo.png", m / "demo.png")
    copy_media(shared_media("talk_d12.mp4"), m / "talker.mp4")
    copy_media(shared_media("halfbody_s18.mp4"), m / "walker.mp4")
    copy_media(demo_media / "drive_speech.wav", m / "speech_a.wav")
    copy_media(demo_media / "drive_speech.wav", m / "speech_b.wav")
    copy_media(demo_media / "drive_motion.mp4", m / "motion.mp4")
    twins = [
        {"twin_id": "demo", "video": "media/demo.mp4", "photo": "media/demo.png"},
        {"twin_id": "talker", "video": "media/talker.mp4"},
        {"twin_id": "walker", "video": "media/walker.mp4", "crop": "280,0,720,720"},
    ]
    renders = [
        {
            "render_id": "r_nerf",
            "twin_id": "demo",
            "pipeline": "nerf",
            "driving_audio": "media/speech_a.wav",
        },
        {
            "render_id": "r_mesh",
            "twin_id": "talker",
            "pipeline": "meshhead",
            "driving_audio": "media/speech_b.wav",
        },
        {
            "render_id": "r_anim",
            "twin_id": "talker",
            "pipeline": "animate",
            "driving_video": "media/motion.mp4",
        },
        {
            "render_id": "r_anchor",
            "twin_id": "walker",
            "pipeline": "anchor",
            "driving_video": "media/motion.mp4",
        },
    ]
    return make_project(root, twins, renders, {"clips": {"seconds": 4, "min_seconds": 1}})


EXPECTED_PLAN = {
    ("probe_video", "twin=demo"),
    ("probe_video", "twin=talker"),
    ("probe_video", "twin=walker"),
    ("normalise_video", "twin=demo"),
    ("normalise_video", "twin=talker"),
    ("normalise_video", "twin=walker"),
    ("extract_audio", "twin=demo"),
    ("extract_audio", "twin=talker"),
    ("prepare_photo", "twin=demo"),
    ("split_clips", "twin=walker"),
    ("extract_driving_audio", "render=r_nerf"),
    ("extract_driving_audio", "render=r_mesh"),
    ("probe_driving_video", "render=r_anim"),
    ("normalise_driving_video", "render=r_anim"),
    ("probe_driving_video", "render=r_anchor"),
    ("normalise_driving_video", "render=r_anchor"),
}


@pytest.fixture(scope="module")
def completed(project) -> Path:
    assert planned_jobs(project, "preprocess") == EXPECTED_PLAN
    snakemake(project, "preprocess")
    return project


def test_plan_then_run_then_nothing_to_do(completed):
    assert planned_jobs(completed, "preprocess") == set()
    r = completed / "results"
    talker = probe_video(r / "talker/media/video.mp4")
    assert (talker.width, talker.height, talker.fps) == (512, 512, 25.0)
    walker = yaml.safe_load((r / "walker/media/meta.json").read_text())
    assert walker["crop_xywh"] == [280, 0, 720, 720]
    clips = yaml.safe_load((r / "walker/media/clips/clips.json").read_text())["clips"]
    assert sum(c["stop_frame"] - c["start_frame"] for c in clips) == walker["n_frames"]
    assert all((r / "walker/media/clips" / f"{c['clip']}.mp4").exists() for c in clips)
    samples, sr = read_wav(r / "talker/media/audio.wav")
    assert sr == 16000 and abs(len(samples) / sr - 7.3) < 0.2
    snakemake(completed, "results/demo/media/frames")
    demo_frames = sorted((r / "demo/media/frames").glob("*.png"))
    assert len(demo_frames) == probe_video(r / "demo/media/video.mp4").n_frames == 150
    for rule in ("normalise_video", "split_clips", "extract_frames"):
        assert any((completed / "logs" / rule).iterdir())
        assert any((completed / "benchmarks" / rule).iterdir())


def _modify_audio(path: Path) -> bytes:
    original = path.read_bytes()
    samples, sr = read_wav(path)
    write_wav(path, samples * 0.5, sr)
    return original


def test_changed_driving_audio_reruns_only_its_jobs(completed):
    wav = completed / "media/speech_a.wav"
    original = _modify_audio(wav)
    try:
        assert planned_jobs(completed, "preprocess") == {("extract_driving_audio", "render=r_nerf")}
    finally:
        wav.write_bytes(original)
    assert planned_jobs(completed, "preprocess") == set()


def test_changed_training_video_reruns_that_twins_chain_only(completed, demo_media):
    video = completed / "media/talker.mp4"
    original = video.read_bytes()
    shutil.copyfile(demo_media / "talk.mp4", video)
    try:
        assert planned_jobs(completed, "preprocess") == {
            ("probe_video", "twin=talker"),
            ("normalise_video", "twin=talker"),
            ("extract_audio", "twin=talker"),
        }
    finally:
        video.write_bytes(original)


def test_changed_parameter_reruns_that_rule_and_dependents(completed):
    config = completed / "config/config.yaml"
    original = config.read_text()
    data = yaml.safe_load(original)
    data["clips"]["seconds"] = 3
    config.write_text(yaml.safe_dump(data))
    try:
        assert planned_jobs(completed, "preprocess") == {("split_clips", "twin=walker")}
        data["video"]["size"] = 256
        config.write_text(yaml.safe_dump(data))
        assert planned_jobs(completed, "preprocess") == {
            ("normalise_video", "twin=demo"),
            ("normalise_video", "twin=talker"),
            ("normalise_video", "twin=walker"),
            ("normalise_driving_video", "render=r_anim"),
            ("normalise_driving_video", "render=r_anchor"),
            ("prepare_photo", "twin=demo"),
            ("split_clips", "twin=walker"),
        }
    finally:
        config.write_text(original)
    assert planned_jobs(completed, "preprocess") == set()


def audio_only_mp4(path: Path) -> Path:
    """An .mp4 whose only stream is AAC audio (a file with no video stream)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        tone = (0.2 * np.sin(np.arange(16000) / 8)).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def test_bad_inputs_fail_their_twin_and_others_finish(tmp_path, demo_media):
    m = tmp_path / "media"
    copy_media(demo_media / "talk.mp4", m / "good.mp4")
    truncated_copy(shared_media("talk_d12.mp4"), m / "cut.mp4", keep=0.4)
    audio_only_mp4(m / "noaudio_video.mp4")
    tone_wav(m / "speech.wav")
    zero_frame_video(m / "empty.mp4")
    bad = {
        "cut": "media/cut.mp4",
        "novideo": "media/noaudio_video.mp4",
        "wavtwin": "media/speech.wav",
        "empty": "media/empty.mp4",
    }
    twins = [{"twin_id": "good", "video": "media/good.mp4"}]
    twins += [{"twin_id": t, "video": v} for t, v in bad.items()]
    renders = [
        {
            "render_id": "r_bad",
            "twin_id": "good",
            "pipeline": "animate",
            "driving_video": "media/speech.wav",
        }
    ]
    make_project(tmp_path, twins, renders)
    proc = snakemake(tmp_path, "--keep-going", "--show-failed-logs", "preprocess", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for twin, video in bad.items():
        assert f"twinflow error: twin '{twin}', file '{video}'" in out, twin
        assert not (tmp_path / f"results/{twin}/media/video.mp4").exists()
    assert "twin 'good', render 'r_bad', file 'media/speech.wav': has no video stream" in out
    assert "no video stream (found: audio); is it an audio file?" in out
    assert "zero-length" in out
    good = probe_video(tmp_path / "results/good/media/video.mp4")
    assert good.n_frames == 150 and good.fps == 25.0


def test_job_killed_mid_write_leaves_nothing_complete(tmp_path):
    copy_media(shared_media("halfbody_s18.mp4"), tmp_path / "media/long.mp4")
    make_project(tmp_path, [{"twin_id": "long", "video": "media/long.mp4"}])
    media = tmp_path / "results/long/media"
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "1"]
    proc = subprocess.Popen(
        [*cmd, "preprocess"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(media.glob(".video.mp4.tmp-*")):
        time.sleep(0.05)
    time.sleep(0.3)  # let the encoder write some frames
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(media.glob(".video.mp4.tmp-*")), "the normalise job was not caught mid-write"
    assert not (media / "video.mp4").exists()
    assert not (media / "meta.json").exists()
    snakemake(tmp_path, "--unlock")
    assert ("normalise_video", "twin=long") in planned_jobs(tmp_path, "preprocess")
    snakemake(tmp_path, "--rerun-incomplete", "preprocess")
    assert probe_video(media / "video.mp4").n_frames == 235
