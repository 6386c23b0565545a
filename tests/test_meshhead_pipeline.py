"""Meshhead stages on a real clip (talk_d12.mp4, 7.3 s): dataset, frames, training with a kill
and resume, evaluation, and a 60-second driving audio rendered end to end through the CLIs
(infer -> preview -> render -> mux). Tiny models trained for a few steps: this checks the
plumbing, shapes, lengths and seams, not quality (see ``python -m twinflow.meshhead.acceptance``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO, shared_media
from twinflow.media.audio import write_wav
from twinflow.media.video import probe_video
from twinflow.meshhead.common import load_npz
from twinflow.meshhead.fixtures import prepare_twin, speech_like

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

ENV = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), "TWINFLOW_DEVICE": "cpu"}
A2M = [
    "--preset",
    "tiny",
    "--set",
    "d_model=16",
    "--set",
    "audio_channels=16",
    "--set",
    "eval_every=20",
    "--set",
    "lr=1e-3",
]
WARP = ["--preset", "tiny", "--set", "batch=2"]


def stage(name: str, *args, log: Path | None = None, check: bool = True):
    cmd = [sys.executable, "-m", f"twinflow.meshhead.{name}", *map(str, args)]
    if name not in ("dataset", "frames", "preview", "mux"):  # stages that run torch
        cmd += ["--threads", "1"]
    with open(log or os.devnull, "w") as fh:
        proc = subprocess.run(cmd, env=ENV, stdout=fh, stderr=subprocess.STDOUT, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed:\n{Path(log).read_text() if log else ''}")
    return proc


def train_with_kill(module: str, args: list[str], out: Path, log: Path) -> str:
    """Start a training CLI, SIGKILL it once its resumable state exists, run it again."""
    resume = out.with_name(out.name + ".resume.pt")
    cmd = [
        sys.executable,
        "-m",
        f"twinflow.meshhead.{module}",
        *args,
        "--out",
        str(out),
        "--threads",
        "1",
    ]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=ENV, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while not resume.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert resume.exists(), f"no resumable state before the run ended:\n{log.read_text()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not out.exists()
    with open(log, "a") as fh:
        subprocess.run(cmd, env=ENV, stdout=fh, stderr=subprocess.STDOUT, timeout=600, check=True)
    return log.read_text()


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("meshhead_twin")
    files = prepare_twin(shared_media("talk_d12.mp4"), root)
    m = root / "meshhead"
    stage(
        "dataset", "--twin", "d12", "--face", files["face"], "--template", files["template"],
        "--head-pose", files["head_pose"], "--audio", files["audio"], "--out", m / "dataset.npz",
    )  # fmt: skip
    stage(
        "frames", "--twin", "d12", "--video", files["video"], "--dataset", m / "dataset.npz",
        "--size", "64", "--out", m / "frames.npz",
    )  # fmt: skip
    return {**files, "root": root, "dataset": m / "dataset.npz", "frames": m / "frames.npz"}


@pytest.fixture(scope="module")
def models(twin) -> dict[str, Path]:
    m = twin["root"] / "meshhead"
    a2m_log = train_with_kill(
        "train_audio2mesh",
        [
            "--twin",
            "d12",
            "--dataset",
            str(twin["dataset"]),
            *A2M,
            "--steps",
            "60",
            "--save-every",
            "20",
        ],
        m / "audio2mesh.pt",
        m / "train_audio2mesh.log",
    )
    stage(
        "train_warp", "--twin", "d12", "--frames", twin["frames"], "--dataset", twin["dataset"],
        *WARP, "--steps", "6", "--save-every", "3", "--out", m / "warp.pt", log=m / "train_warp.log",
    )  # fmt: skip
    return {"audio2mesh": m / "audio2mesh.pt", "warp": m / "warp.pt", "a2m_log": a2m_log}


def test_warp_training_is_reproducible_from_its_seed(twin, tmp_path):
    """The weights' initialisation is seeded too: the same seed gives the same model."""
    import torch

    weights = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        out = tmp_path / f"{name}.pt"
        stage("train_warp", "--twin", "d12", "--frames", twin["frames"], "--dataset",
              twin["dataset"], *WARP, "--steps", "1", "--seed", seed, "--out", out)  # fmt: skip
        weights.append(torch.load(out, weights_only=False)["modules"]["generator"])
    a, b, c = weights
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_dataset_is_pose_free_mesh_motion_with_a_time_split(twin):
    data = load_npz(twin["dataset"])
    n = len(data["disp"])
    assert data["disp"].shape == (n, 468, 3) and data["template"].shape == (468, 3)
    assert str(data["topology"]) == "mediapipe468"
    assert abs(n - 7.3 * 25) < 3 and data["split"][-1] == 1 and data["split"][0] == 0
    assert data["split"].sum() == round(0.2 * n)
    # pose-free: the rigid points barely move (mm), the lips do
    moving = np.linalg.norm(data["disp"] - data["disp"].mean(0), axis=-1).mean(0) * 1000
    from twinflow.meshhead.topology import MOUTH
    from twinflow.perception.landmarks import RIGID

    assert moving[RIGID].mean() < 0.5 * moving[MOUTH].mean()
    frames = load_npz(twin["frames"])
    assert frames["frames"].shape == (n, 64, 64, 3) and frames["kp"].shape[1:] == (55, 2)
    assert frames["info"]["kp_reposed_vs_tracked_px"] < 1.5
    assert np.abs(frames["kp"]).max() < 1.2


def test_training_resumes_after_a_kill(models):
    log = models["a2m_log"]
    resumed = [line for line in log.splitlines() if "resuming audio2mesh from step" in line]
    assert resumed, log
    assert int(resumed[0].split("from step ")[1].split()[0]) > 0
    assert "trained 60 steps (resumed from" in log and models["audio2mesh"].exists()


def test_sixty_seconds_of_speech_render_end_to_end(twin, models, tmp_path):
    audio = tmp_path / "drive.wav"
    write_wav(audio, speech_like(60.0, seed=3), 16000)
    mesh, preview = tmp_path / "mesh.npz", tmp_path / "mesh_preview.mp4"
    frames, final = tmp_path / "frames.mp4", tmp_path / "render.mp4"
    t0 = time.perf_counter()
    stage(
        "infer", "--render", "r60", "--model", models["audio2mesh"], "--audio", audio, "--out", mesh
    )
    stage(
        "preview",
        "--render",
        "r60",
        "--mesh",
        mesh,
        "--audio",
        audio,
        "--size",
        "128",
        "--out",
        preview,
    )
    stage(
        "render", "--render", "r60", "--warp", models["warp"], "--mesh", mesh,
        "--dataset", twin["dataset"], "--frames", twin["frames"], "--out", frames,
    )  # fmt: skip
    stage("mux", "--render", "r60", "--video", frames, "--audio", audio, "--out", final)
    seconds = time.perf_counter() - t0
    pred = load_npz(mesh)
    assert pred["vertices"].shape == (1500, 468, 3) and np.isfinite(pred["vertices"]).all()
    info = probe_video(final)
    assert info.n_frames == 1500 and info.has_audio and abs(info.duration - 60.0) < 0.1
    assert (info.width, info.height) == (64, 64)
    assert probe_video(preview).n_frames == 1500 and probe_video(preview).has_audio
    print(f"60 s of audio: infer + preview + render + mux in {seconds:.1f} s")


def test_windowed_decoding_has_no_seam(models):
    """Jumps between the last frame of one window and the first of the next are no larger
    than the motion between ordinary neighbouring frames."""
    from twinflow.meshhead.infer import Audio2MeshRunner

    runner = Audio2MeshRunner(models["audio2mesh"])
    runner.extra["output_scale"] = 1.0  # the decoder's own output, not shrunk by model selection
    window, history = 32, 16
    speech = speech_like(16.0, seed=5)
    disp = runner.predict(speech, 16000, window=window, history=history)
    step = np.linalg.norm(np.diff(disp, axis=0), axis=-1).mean(-1)  # (T-1,) mean vertex motion
    borders = np.arange(window, len(disp), window) - 1  # step index between b-1 and b
    ordinary = np.setdiff1d(np.arange(len(step)), borders)
    assert len(borders) >= 10 and step[ordinary].max() > 0
    assert step[borders].max() <= step[ordinary].max()
    assert step[borders].mean() <= 2 * step[ordinary].mean()
    # and the windows follow one long pass closely (the history carries the state)
    long = runner.predict(speech, 16000, window=len(disp), history=0)
    assert np.abs(disp - long).mean() < 0.5 * np.abs(long - long.mean(0)).mean()


def test_evaluate_writes_metrics_with_baselines(twin, models, tmp_path):
    out = tmp_path / "metrics.json"
    stage(
        "evaluate", "--twin", "d12", "--dataset", twin["dataset"], "--audio2mesh", models["audio2mesh"],
        "--frames", twin["frames"], "--warp", models["warp"], "--out", out, log=tmp_path / "eval.log",
    )  # fmt: skip
    data = json.loads(out.read_text())
    keys = {"mesh_mouth_lmd_mm", "mesh_lip_vertex_error_mm"}
    keys |= {"video_mouth_lmd_px", "video_psnr", "video_ssim"}
    assert data["pipeline"] == "meshhead" and set(data["values"]) == keys
    assert set(data["baselines"]) == {"static", "ridge", "tracked"}
    assert all(set(b) == keys for b in data["baselines"].values())
    assert data["baselines"]["tracked"]["mesh_mouth_lmd_mm"] == 0.0
    assert data["baselines"]["tracked"]["mesh_lip_vertex_error_mm"] == 0.0
    assert data["baselines"]["static"]["video_psnr"] > 10
    assert data["measured"]["test_frames"] == round(0.2 * len(load_npz(twin["dataset"])["disp"]))
    assert "audio2mesh" in data["measured"] and "warp" in data["measured"]
    warp = data["measured"]["warp"]  # mesh-driven vs the reference's estimator-driven reenactment
    video_keys = {"video_mouth_lmd_px", "video_psnr", "video_ssim"}
    assert set(warp["values"]) == video_keys
    assert set(warp["baselines"]) == {"estimator_driven", "copy_source"}
    assert set(warp["baselines"]["estimator_driven"]) == video_keys
    assert warp["driver_fit"]["exp"] >= 0 and warp["generator"] == "original"


def test_photo_source_and_other_pose_tracks(twin, models, tmp_path):
    """source=photo (with the perception stage's photo_face.npz format), pose=video (a driving
    video's head pose), pose=neutral, the reference's relative modes with adapt_scale and
    free-view offsets render a short clip of the right length."""
    from twinflow.cli import stage_main
    from twinflow.media.image import save_image
    from twinflow.media.video import read_frames
    from twinflow.meshhead import infer, render

    audio = tmp_path / "drive.wav"
    write_wav(audio, speech_like(2.0, seed=4), 16000)
    mesh = tmp_path / "mesh.npz"
    args = ["--render", "r", "--model", models["audio2mesh"], "--audio", audio, "--out", mesh]
    assert stage_main(infer.build_parser, infer.run, [*map(str, args), "--threads", "1"]) == 0
    face = load_npz(twin["face"])
    photo, photo_face = tmp_path / "photo.png", tmp_path / "photo_face.npz"
    save_image(photo, read_frames(twin["video"])[10])
    np.savez(photo_face, landmarks=face["landmarks"][10])  # (478, 3) pixels, as the photo stage
    base = ["--warp", models["warp"], "--mesh", mesh, "--dataset", twin["dataset"]]
    base += ["--frames", twin["frames"], "--threads", "1"]
    cases = {
        "photo_video": ["--source", "photo", "--photo", photo, "--photo-face", photo_face,
                        "--pose", "video", "--drive-pose", twin["head_pose"]],
        "frame_neutral": ["--source-frame", "3", "--pose", "neutral", "--size", "96"],
        "best_free_view": ["--relative", "best", "--adapt-scale", "--yaw", "20", "--roll", "-5"],
        "absolute": ["--relative", "off"],
    }  # fmt: skip
    for name, extra in cases.items():
        out = tmp_path / f"{name}.mp4"
        args = ["--render", name, *base, *extra, "--out", out]
        assert stage_main(render.build_parser, render.run, [str(a) for a in args]) == 0
        info = probe_video(out)
        assert info.n_frames == 50
        assert info.width == (96 if name == "frame_neutral" else 64)


def test_a_converted_reference_checkpoint_drives_the_twin(twin, tmp_path):
    """meshhead.warp_pretrained: a reference checkpoint converted with ``twinflow.convert fv2v``
    is fitted to the twin without training (steps 0: the networks stay as converted) and
    renders a mesh-driven clip."""
    import torch

    from tests.fixtures.meshhead.fv2v.recipe import materialize
    from twinflow.convert.__main__ import main as convert_main
    from twinflow.meshhead.common import save_npz

    fixtures = REPO / "tests" / "fixtures" / "meshhead" / "fv2v"
    weights = torch.load(fixtures / "weights.pt", weights_only=False)
    source, converted = tmp_path / "ref-checkpoint.pth.tar", tmp_path / "converted.pt"
    torch.save(materialize(weights, "original"), source)
    args = [
        "fv2v",
        source,
        "--config",
        fixtures / "original.yaml",
        "--size",
        "64",
        "--out",
        converted,
    ]
    assert convert_main([str(a) for a in args]) == 0
    warp = tmp_path / "warp.pt"
    stage("train_warp", "--twin", "d12", "--frames", twin["frames"], "--dataset", twin["dataset"],
          "--preset", "tiny", "--pretrained", converted, "--steps", "0", "--out", warp,
          log=tmp_path / "train.log")  # fmt: skip
    fitted = torch.load(warp, weights_only=False)
    ref_gen = torch.load(converted, weights_only=False)["modules"]["generator"]
    assert all(torch.equal(v, fitted["modules"]["generator"][k]) for k, v in ref_gen.items())
    assert fitted["meta"]["converted_from"]["kind"] == "fv2v" and "driver" in fitted["extra"]
    data = load_npz(twin["dataset"])
    mesh = tmp_path / "mesh.npz"
    disp = data["disp"][-30:]
    save_npz(mesh, disp=disp, vertices=data["template"] + disp, fps=np.array(25.0))
    out = tmp_path / "frames.mp4"
    stage("render", "--render", "r", "--warp", warp, "--mesh", mesh, "--dataset", twin["dataset"],
          "--frames", twin["frames"], "--out", out, log=tmp_path / "render.log")  # fmt: skip
    info = probe_video(out)
    assert info.n_frames == 30 and info.width == 64
