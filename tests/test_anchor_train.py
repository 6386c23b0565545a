"""Anchor training and model loading: a short tiny training lowers the loss, a killed training
CLI resumes, the paper preset loads SD-1.5-format folders (a tiny random model saved in that
format) and runs one window, and the CLIP reference encoder fails clearly without transformers."""

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
import torch
import yaml

from tests.helpers import REPO
from twinflow.anchor.presets import get_preset

torch.set_num_threads(1)
MYA_FIXTURES = Path(__file__).parent / "fixtures" / "anchor" / "mya"
SMALL = {"body_size": 32, "head_size": 16, "ref_size": 32}


def synthetic_clip(path: Path, n: int = 24, size: int = 32, head: int = 16, seed: int = 0) -> Path:
    """A clip .npz (twinflow.anchor.data format): a red square moving over a gray frame, its
    condition a white square at the same place; heads are crops of the frames."""
    rng = np.random.default_rng(seed)
    frames = np.full((n, size, size, 3), 90, np.uint8)
    cond = np.zeros((n, size, size, 3), np.uint8)
    for t in range(n):
        x = int(4 + (size - 16) * t / max(n - 1, 1))
        frames[t, 10:22, x : x + 10] = (220, 40, 40)
        cond[t, 10:22, x : x + 10] = 255
    frames = np.clip(frames + rng.integers(-5, 5, frames.shape), 0, 255).astype(np.uint8)
    masks = np.zeros((n, head, head), np.uint8)
    masks[:, 4:12, 4:12] = 255
    arrays = {
        "frames": frames,
        "condition": cond,
        "head": frames[:, :head, :head].copy(),
        "head_condition": cond[:, :head, :head].copy(),
        "head_context": frames[:, :head, :head].copy(),
        "head_mask": masks,
        "head_matrix": np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (n, 1, 1)),
        "frame_index": np.arange(n, dtype=np.int32),
        "held_out": np.arange(n) >= n - 4,
        "info": np.array(json.dumps({"clip": "clip_000", "video_size": [size, size]})),
    }
    np.savez_compressed(path, **arrays)
    return path


def fixed_batch_loss(model, scheduler, data, cfg, seed=5) -> float:
    from twinflow.anchor.generate import to_tensor

    g = torch.Generator().manual_seed(seed)
    idx = np.arange(8)
    x0 = to_tensor(data.arrays["frames"][idx])
    ctrl = to_tensor(data.arrays["condition"][idx]).add(1).div(2)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(50, 900, (8,), generator=g)
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    with torch.no_grad():
        tokens = model.tokens(to_tensor(data.arrays["frames"][[0] * 8]))
        eps = model(xt, t, ctrl, tokens)
    return float(torch.nn.functional.mse_loss(eps, noise))


def test_short_tiny_training_lowers_the_loss(tmp_path):
    from diffusers import DDPMScheduler

    from twinflow.anchor.data import load_clips
    from twinflow.anchor.inference import Trained, render_body
    from twinflow.anchor.models import build_denoiser
    from twinflow.anchor.train import train_model

    cfg = get_preset("tiny", SMALL)
    data = load_clips([synthetic_clip(tmp_path / "clip_000.npz")])
    torch.manual_seed(0)
    fresh, meta = build_denoiser(cfg, "body")
    scheduler = DDPMScheduler.from_config(meta["scheduler_config"])
    before = fixed_batch_loss(fresh.eval(), scheduler, data, cfg)
    result = train_model("body", data, cfg, tmp_path / "body.pt", steps=60, log_every=10)
    assert result.steps_done == 60
    trained = Trained.load(tmp_path / "body.pt", "body")
    after = fixed_batch_loss(trained.model, scheduler, data, cfg)
    assert after < 0.6 * before, (before, after)
    # the trained model renders frames of the conditioning's size, in the reference's place
    out = render_body(trained, data.arrays["condition"][:3], steps=2)
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.uint8


def with_faces(path: Path, detected: np.ndarray) -> Path:
    """Rewrite a clip file with perception's face flags ``face_detected``."""
    with np.load(path) as data:
        arrays = dict(data)
    np.savez_compressed(path, **arrays, face_detected=np.asarray(detected, bool))
    return path


def test_head_pass_skips_frames_without_a_face(tmp_path):
    """The head model learns only from frames showing a face and regenerates only those; a head
    model that saw no face is not trained and keeps the body's head everywhere."""
    from twinflow.anchor.data import load_clips
    from twinflow.anchor.inference import Trained, enhance_heads
    from twinflow.anchor.train import train_model

    cfg = get_preset("tiny", SMALL)
    detected = np.arange(24) % 3 != 0  # every third frame: no face
    data = load_clips([with_faces(synthetic_clip(tmp_path / "clip_000.npz"), detected)])
    assert set(data.train_with_face) == set(np.flatnonzero(detected[:20]))
    train_model("head", data, cfg, tmp_path / "head.pt", steps=2, log_every=1)
    head = Trained.load(tmp_path / "head.pt", "head")
    assert head.face_frames == int(detected[:20].sum())
    a = data.arrays
    crops = a["head"][:3]
    args = (a["head_condition"][:3], a["head_mask"][:3], a["head_matrix"][:3])
    heads = enhance_heads(head, crops, *args, steps=2, has_face=np.array([True, False, True]))
    assert np.array_equal(heads.crops[1], crops[1]) and not heads.alpha[1].any()
    assert heads.alpha[0].max() > 0.5 and heads.alpha[2].max() > 0.5
    masked = a["head_mask"][0] > 0
    assert not np.array_equal(heads.crops[0][masked], crops[0][masked])

    faceless = load_clips([with_faces(synthetic_clip(tmp_path / "c1.npz"), np.zeros(24, bool))])
    result = train_model("head", faceless, cfg, tmp_path / "none.pt", steps=5, log_every=1)
    assert result.steps_done == 0
    untrained = Trained.load(tmp_path / "none.pt", "head")
    assert untrained.face_frames == 0
    heads = enhance_heads(untrained, crops, *args, steps=2, has_face=np.ones(3, bool))
    assert np.array_equal(heads.crops, crops) and not heads.alpha.any()


def test_head_model_trains_and_keeps_unmasked_pixels(tmp_path):
    from twinflow.anchor.data import load_clips
    from twinflow.anchor.inference import Trained, enhance_heads
    from twinflow.anchor.train import train_model

    cfg = get_preset("tiny", SMALL)
    data = load_clips([synthetic_clip(tmp_path / "clip_000.npz")])
    train_model("head", data, cfg, tmp_path / "head.pt", steps=4, log_every=2)
    head = Trained.load(tmp_path / "head.pt", "head")
    a = data.arrays
    heads = enhance_heads(
        head,
        a["head"][:3],
        a["head_condition"][:3],
        a["head_mask"][:3],
        a["head_matrix"][:3],
        steps=2,
    )
    keep = a["head_mask"][:3] == 0
    assert np.array_equal(heads.crops[keep], a["head"][:3][keep])
    assert heads.alpha.shape == (3, 16, 16) and heads.alpha.max() <= 1


def test_killed_training_cli_resumes(tmp_path):
    data = synthetic_clip(tmp_path / "clip_000.npz")
    out = tmp_path / "body.pt"
    state = out.with_name(out.name + ".resume.pt")
    sets = [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]
    cmd = [
        sys.executable, "-m", "twinflow.anchor.train_body", "--twin", "t", "--data", str(data),
        "--preset", "tiny", *sets, "--save-every", "2", "--threads", "1", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    log1 = (tmp_path / "run1.log").open("w")
    proc = subprocess.Popen([*cmd, "--steps", "100000"], stderr=log1, stdout=log1, env=env)
    try:
        deadline = time.time() + 240
        while not state.exists():
            assert proc.poll() is None, (tmp_path / "run1.log").read_text()[-2000:]
            assert time.time() < deadline, "no resumable state written"
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists(), "a killed run leaves no final checkpoint"
    saved = torch.load(state, weights_only=False)["steps"]
    assert saved >= 2
    run2 = subprocess.run(
        [*cmd, "--steps", str(saved + 2)], capture_output=True, text=True, env=env, timeout=300
    )
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert f"resuming anchor body from step {saved}" in run2.stderr
    assert f"resumed from step {saved}" in run2.stderr
    ckpt = torch.load(out, weights_only=False)
    assert ckpt["steps"] == saved + 2 and not state.exists()


def _tiny_sd_folder(root: Path, inpaint: bool = False) -> Path:
    """A random model in SD-1.5's diffusers layout (unet/, vae/, scheduler/, and the tiny
    text_encoder/ and tokenizer/ of the Make-Your-Anchor fixtures), tiny sizes."""
    import shutil

    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    mya = MYA_FIXTURES / ("sd-inpainting" if inpaint else "sd")
    for sub in ("text_encoder", "tokenizer"):
        shutil.copytree(mya / sub, root / sub)

    torch.manual_seed(0)
    UNet2DConditionModel(
        sample_size=8,
        in_channels=9 if inpaint else 4,
        out_channels=4,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=16,  # the width of the fixture's CLIP and text encoder
        attention_head_dim=2,
        norm_num_groups=16,
    ).save_pretrained(root / "unet")
    AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    ).save_pretrained(root / "vae")
    DDPMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False
    ).save_pretrained(root / "scheduler")
    return root


@pytest.fixture
def sd_registry(tmp_path) -> Path:
    from twinflow.models import record

    _tiny_sd_folder(tmp_path / "stable-diffusion-v1-5")
    _tiny_sd_folder(tmp_path / "stable-diffusion-inpainting", inpaint=True)
    registry = tmp_path / "registry.yaml"
    entries = {
        name: {
            "file": name,
            "sha256": None,
            "licence": "test",
            "source": "random weights",
            "used_by": ["tests"],
        }
        for name in ("stable-diffusion-v1-5", "stable-diffusion-inpainting")
    }
    entries["clip-vit-base-patch32"] = {**entries["stable-diffusion-v1-5"]}
    entries["clip-vit-base-patch32"]["file"] = str(MYA_FIXTURES.resolve() / "clip")
    registry.write_text(yaml.safe_dump({"models": entries}))
    for name in entries:
        record(name, registry)
    return registry


def test_paper_preset_loads_sd_folders_and_runs_one_window(tmp_path, sd_registry):
    from twinflow.anchor.generate import generate
    from twinflow.anchor.models import VaeCodec, build_codec, build_denoiser

    cfg = get_preset(
        "paper",
        {"body_size": 64, "head_size": 64, "ref_size": 32, "ref_tokens": 4, "ref_width": 16},
    )
    assert cfg.space == "latent" and cfg.base_model == "stable-diffusion-v1-5"
    body, meta = build_denoiser(cfg, "body", sd_registry)
    assert body.unet.config.in_channels == 4 and body.unet.config.block_out_channels == [32, 64]
    assert meta["scheduler_config"]["beta_schedule"] == "scaled_linear"
    # Make-Your-Anchor's conditioning: CLIP hidden states, the empty prompt's embedding
    assert cfg.ref_encoder == "clip" and body.null.shape == (1, 17, 16)
    codec = build_codec(cfg, sd_registry)
    assert isinstance(codec, VaeCodec)
    controls = np.zeros((3, 64, 64, 3), np.uint8)
    controls[:, 20:40, 20:40] = 200
    ref = np.full((64, 64, 3), 128, np.uint8)
    out = generate(body, codec, cfg, meta["scheduler_config"], controls, ref, steps=2)
    assert out.shape == (3, 64, 64, 3)

    head, _ = build_denoiser(cfg, "head", sd_registry)
    assert head.unet.config.in_channels == 9 and head.controlnet.config.in_channels == 4
    masks = np.zeros((3, 64, 64), np.uint8)
    masks[:, 16:48, 16:48] = 255
    faces = np.full((3, 64, 64, 3), 100, np.uint8)
    out = generate(
        head,
        codec,
        cfg,
        meta["scheduler_config"],
        controls,
        ref,
        images=faces,
        masks=masks,
        steps=2,
    )
    assert np.array_equal(out[:, 0, 0], faces[:, 0, 0])


def test_missing_sd_weights_and_clip_encoder_fail_clearly(tmp_path):
    from twinflow.anchor.models import build_denoiser
    from twinflow.errors import ModelFileError, TwinflowError

    registry = tmp_path / "registry.yaml"
    registry.write_text((REPO / "models" / "registry.yaml").read_text())
    with pytest.raises(ModelFileError, match="not supplied"):
        build_denoiser(get_preset("paper"), "body", registry)
    try:
        import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(TwinflowError, match="transformers"):
            build_denoiser(get_preset("tiny", {**SMALL, "ref_encoder": "clip"}), "body", registry)


def test_gpu_bench_times_inference_and_a_training_step_of_both_models(capsys):
    """The paper-size benchmark at reduced widths (its layers, batch and optimiser as the paper
    preset's): a render of two frames, then a timed training step of the body and head models."""
    from twinflow.anchor import gpu_bench

    narrow = {
        "body_size": 64,
        "head_size": 64,
        "block_out_channels": "[32,64,64,64]",
        "cond_embed_channels": "[16,16,16,16]",
        "norm_num_groups": 8,
        "attention_heads": 2,
        "layers_per_block": 1,
    }
    sets = [arg for k, v in narrow.items() for arg in ("--set", f"{k}={v}")]
    args = gpu_bench.build_parser().parse_args(
        ["--device", "cpu", "--frames", "2", "--steps", "1", "--threads", "1", *sets]
    )
    gpu_bench.run(args)
    result = json.loads(capsys.readouterr().out)
    assert result["frames_timed"] == 2 and result["seconds_per_video"] > 0
    for kind in ("body", "head"):
        train = result["train"][kind]
        assert train["batch"] == 4 and train["px"] == 64, train
        assert train["s_per_step"] > 0 and train["loss_finite"], train
        assert train["trainable_params_m"] > 1, train
