"""Media I/O: probing catches bad videos with clear messages; normalisation is exact."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import shared_media, tone_wav, truncated_copy, zero_frame_video
from twinflow.atomic import read_json
from twinflow.errors import InputError
from twinflow.media.audio import load_audio, read_wav
from twinflow.media.image import crop_box, fit_to_size
from twinflow.media.video import constant_rate, probe_video, read_frames, write_video


def ramp_video(path, n=30, fps=30.0, size=(96, 64)):
    """Frames whose mean brightness encodes the frame index (4 * i)."""
    w, h = size
    frames = [np.full((h, w, 3), 4 * i, np.uint8) for i in range(n)]
    write_video(path, frames, fps)
    return path


def test_probe_reports_stream_facts(tmp_path):
    info = probe_video(ramp_video(tmp_path / "v.mp4", n=45, fps=30))
    assert (info.width, info.height, info.n_frames, info.fps) == (96, 64, 45, 30.0)
    assert info.duration == pytest.approx(1.5, abs=0.01)
    assert not info.has_audio


def test_probe_rejects_bad_files(tmp_path):
    good = ramp_video(tmp_path / "good.mp4", n=60)
    cases = {
        "truncated": (truncated_copy(good, tmp_path / "cut.mp4", 0.5), "truncated|damaged|opened"),
        "audio as video": (tone_wav(tmp_path / "speech.wav"), "no video stream.*audio file"),
        "zero-length": (zero_frame_video(tmp_path / "empty.mp4"), "zero-length|decoded 0"),
        "empty file": (tmp_path / "zero.mp4", "empty"),
        "missing": (tmp_path / "nope.mp4", "not found"),
        "text": (tmp_path / "notes.mp4", "cannot be opened|no video stream"),
    }
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("hello " * 100)
    for name, (path, pattern) in cases.items():
        with pytest.raises(InputError, match=pattern) as err:
            probe_video(path)
        assert str(path) in str(err.value), name


def test_constant_rate_resamples_30_to_25_fps():
    times = [i / 30 for i in range(30)]
    frames = list(constant_rate(((t, i) for i, t in enumerate(times)), fps=25, count=25))
    assert len(frames) == 25
    # Output frame k shows the last source frame at or before k/25 s.
    assert frames == [int(np.floor(k / 25 * 30 + 1e-9)) for k in range(25)]


def test_crop_box_and_fit():
    assert crop_box(1280, 720, None) == (280, 0, 720, 720)
    assert crop_box(720, 1080, (0, 100)) == (0, 100, 720, 720)
    with pytest.raises(ValueError, match="does not fit"):
        crop_box(100, 100, (50, 50, 80, 80))
    img = np.zeros((100, 200, 3), np.uint8)
    assert fit_to_size(img, (0, 0, 200, 100), 64).shape == (64, 64, 3)


def test_normalise_real_clip_to_constant_25fps(tmp_path):
    src = shared_media("halfbody_s18.mp4")  # 1280x720 at 30 fps
    probe = tmp_path / "probe.json"
    out = tmp_path / "video.mp4"
    run = [sys.executable, "-m"]
    subprocess.run(
        [*run, "twinflow.prep.probe", "--twin", "t", "--video", str(src), "--out", str(probe)],
        check=True,
    )
    subprocess.run(
        [
            *run,
            "twinflow.prep.normalise",
            "--twin",
            "t",
            "--video",
            str(src),
            "--probe",
            str(probe),
            "--size",
            "256",
            "--out",
            str(out),
            "--meta",
            str(tmp_path / "meta.json"),
        ],
        check=True,
    )
    info = probe_video(out)
    src_info = read_json(probe)
    assert (info.width, info.height, info.fps) == (256, 256, 25.0)
    assert info.n_frames == round(src_info["duration"] * 25)
    assert read_json(tmp_path / "meta.json")["crop_xywh"] == [280, 0, 720, 720]


def test_audio_from_video_track_and_wav(tmp_path):
    src = shared_media("talk_d12.mp4")  # 44.1 kHz track
    samples = load_audio(src, 16000)
    assert samples.ndim == 1 and abs(len(samples) / 16000 - 7.3) < 0.2
    assert np.abs(samples).max() > 0.05, "speech, not silence"
    wav = tone_wav(tmp_path / "t.wav", seconds=0.5, sample_rate=22050)
    resampled = load_audio(wav, 16000)
    assert len(resampled) == pytest.approx(8000, abs=64)
    with pytest.raises(InputError, match="no audio stream"):
        load_audio(ramp_video(tmp_path / "silent.mp4"))


def test_video_roundtrip_keeps_content(tmp_path):
    frames = read_frames(ramp_video(tmp_path / "r.mp4", n=10))
    means = frames.reshape(10, -1).mean(axis=1)
    assert np.allclose(means, 4 * np.arange(10), atol=2)
    assert read_wav  # imported API used by stages
