"""The nerf torso stage on a real clip (issue 27: the torso rendered in the wrong colours).

speech_25s_b.mp4 (a man in a light-blue shirt, head and shoulders, 256x256, 30 fps): its first
3 s at 25 fps go through the perception stages the nerf dataset needs (face track with the
matte, head pose and split) and the nerf dataset at the tiny preset's 128 px, calling the stage
CLIs in-process; a head of a few steps (the torso stage composites over it), then the torso stage
with the workflow's tiny torso steps (config.yaml: 150). The saved torso must reproduce the torso
region of training frames, in its colours, better than a flat fill with their mean colour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import shared_media

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

SECONDS, FPS = 3.0, 25.0
TORSO_STEPS = 150  # config/config.yaml nerf: steps: tiny: torso


def _stage(module, argv: list, run: str = "run") -> None:
    """Run a stage CLI in this process (``python -m`` would import torch and mediapipe again)."""
    from twinflow.cli import stage_main

    code = stage_main(module.build_parser, getattr(module, run), [str(a) for a in argv])
    assert code == 0, module.__name__


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> Path:
    """The clip's nerf dataset, audio features and a head checkpoint under one folder."""
    from twinflow.media.audio import load_audio, write_wav
    from twinflow.media.video import constant_rate, iter_frames_timed, write_video
    from twinflow.nerf import audio_features, dataset
    from twinflow.perception import head_pose, track

    src = shared_media("speech_25s_b.mp4")
    root = tmp_path_factory.mktemp("nerf_torso_real")
    video, wav, perc = root / "video.mp4", root / "audio.wav", root / "perception"
    perc.mkdir()
    write_video(video, constant_rate(iter_frames_timed(src), FPS, round(SECONDS * FPS)), FPS)
    write_wav(wav, load_audio(src, 16000)[: int(SECONDS * 16000)], 16000)
    f = {k: perc / name for k, name in (
        ("face", "face.npz"), ("body", "body.npz"), ("signals", "signals.npz"),
        ("matte", "matte.mkv"), ("template", "template.npz"), ("pose", "head_pose.npz"),
        ("train", "transforms_train.json"), ("val", "transforms_val.json"))}  # fmt: skip
    _stage(track, ["--twin", "b", "--video", video, "--no-body-hands", "--face", f["face"],
                   "--body", f["body"], "--signals", f["signals"], "--matte", f["matte"]])  # fmt: skip
    _stage(head_pose, ["--twin", "b", "--face", f["face"], "--template", f["template"],
                       "--pose", f["pose"], "--train", f["train"], "--val", f["val"]])  # fmt: skip
    _stage(audio_features, ["--twin", "b", "--wav", wav, "--kind", "logmel", "--fps", FPS,
                            "--out", root / "audio_features.npz"])  # fmt: skip
    _stage(dataset, ["--twin", "b", "--video", video, "--perception", perc, "--res", 128,
                     "--out-frames", root / "frames.mkv", "--out", root / "dataset.npz"], "build")  # fmt: skip
    _train(root, "head", 2)
    return root


def _train(root: Path, stage: str, steps: int, *extra) -> Path:
    from twinflow.nerf import train

    out = root / f"{stage}.pt"
    argv = ["--stage", stage, "--twin", "b", "--dataset", root / "dataset.npz",
            "--frames", root / "frames.mkv", "--features", root / "audio_features.npz",
            "--preset", "tiny", "--steps", steps, "--threads", 1, "--out", out, *extra]  # fmt: skip
    assert train.main([str(a) for a in argv]) == 0
    return out


def torso_reconstruction(root: Path, torso_path: Path, n_frames: int = 4) -> dict:
    """The saved torso over the plate on the torso pixels of ``n_frames`` training frames (each
    with its own code) against the frames: PSNR, the PSNR of a flat fill with their mean colour,
    and both mean colours (0-255)."""
    from twinflow.nerf.data import NerfData
    from twinflow.nerf.dataset import TORSO
    from twinflow.nerf.model import load_torso, torso_rays
    from twinflow.train import load_checkpoint

    data = NerfData(root / "dataset.npz", root / "frames.mkv", None)
    torso = load_torso(load_checkpoint(torso_path), "cpu")
    uv, plate = data.image_uv(), data.bg.view(-1, 3)
    n = len(uv)
    idx = data.train_idx[torch.linspace(0, len(data.train_idx) - 1, n_frames).long()]
    pred, real = [], []
    with torch.no_grad():
        for f in idx.tolist():
            c2w = data.c2w[f].expand(n, 4, 4)
            code = torso.frame_codes(torch.full((n,), f), n)
            rgb, alpha, _ = torso_rays(torso, uv, c2w, data.intrinsics, data.res, code)
            mask = data.labels[f].flatten() == TORSO
            pred.append((alpha[:, None] * rgb + (1 - alpha[:, None]) * plate)[mask] * 255)
            real.append(data.images[f].view(-1, 3)[mask].float())
    pred, real = torch.cat(pred), torch.cat(real)
    psnr = lambda a: float(10 * torch.log10(255**2 / ((a - real) ** 2).mean()))  # noqa: E731
    mean = real.mean(0)
    return {
        "psnr": psnr(pred),
        "flat_psnr": psnr(mean.expand_as(real)),
        "mean_pred": pred.mean(0).numpy(),
        "mean_real": mean.numpy(),
        "pixels": len(real),
    }


def test_the_torso_stage_reproduces_the_real_torso_in_its_colours(twin):
    """Issue 27: the torso rendered a light-blue shirt cyan-green (a navy suit dark green): the
    saved torso was a weight average that still held 0.99^149 = 22% of the first step's weights
    after the 150 steps. Measured on 4 training frames (13,046 torso pixels): then 17.5 dB, 1.0 dB
    above the flat fill's 16.5 dB, its mean colour off by (-17, +2, -26) grey levels; with the
    torso stage's ``torch_ema`` average 21.5 dB (+5.0 dB) and off by (0, 0, +4)."""
    res = torso_reconstruction(twin, _train(twin, "torso", TORSO_STEPS, "--init", twin / "head.pt"))
    off = res["mean_pred"] - res["mean_real"]
    assert res["pixels"] > 4000, res
    assert res["psnr"] > res["flat_psnr"] + 3.0, res
    assert np.abs(off).max() < 8.0, res
