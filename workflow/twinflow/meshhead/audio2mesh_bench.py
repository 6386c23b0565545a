"""The audio-to-mesh part of ``python -m twinflow.meshhead.gpu_bench``: FaceFormer at the paper's
sizes with random weights.

Per setup (``vocaset``: d=64, 5023 FLAME vertices, 8 subjects, 30 fps; ``biwi``: d=128, 23370
vertices, 6 subjects, 25 fps), with a wav2vec2-base-960h-sized encoder (transformers'
``Wav2Vec2Config()`` defaults: 12 layers of 768, 94M parameters) inside:

* parameters (all, and trainable: the CNN feature encoder is frozen);
* one training step as FaceFormer trains: a ``--train-seconds`` sentence (4 s: 120 / 100
  frames), batch 1, autoregressive rollout with gradients through it, MSE, Adam;
* one inference: ``--infer-seconds`` of audio (10 s) to meshes (:func:`generate`, one window up
  to 600 frames), frames per second.

On CUDA it repeats each ``--repeats`` times after a warm-up and reports steps per second, frames
per second and peak memory; ``--dtype fp16|bf16`` runs both under autocast (FaceFormer trains in
float32, the default). On a CPU one of each is timed (a smoke run of the full-size model).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from twinflow.meshhead.audio2mesh import Audio2Mesh, generate, rollout
from twinflow.meshhead.presets import audio2mesh_preset

SETUPS = {  # preset: (vertices, subjects, fps)
    "vocaset": (5023, 8, 30.0),
    "biwi": (23370, 6, 25.0),
}
SAMPLE_RATE = 16000


def build(preset: str, device: torch.device) -> tuple[Audio2Mesh, float]:
    from twinflow.meshhead.audio import require_transformers

    n_vertices, n_subjects, fps = SETUPS[preset]
    w2v = require_transformers().Wav2Vec2Config().to_dict()  # wav2vec2-base-960h's architecture
    cfg = audio2mesh_preset(preset)
    model = Audio2Mesh(cfg, 3 * n_vertices, n_subjects, wav2vec2_config=w2v, fps=fps)
    return model.to(device), fps


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int) -> float:
    """Seconds per call of ``fn`` (after one warm-up call on CUDA)."""
    if device.type == "cuda":
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / repeats


def bench_setup(
    preset: str,
    device: torch.device,
    dtype: torch.dtype,
    train_seconds: float,
    infer_seconds: float,
    repeats: int,
) -> dict:
    torch.manual_seed(0)
    model, fps = build(preset, device)
    cfg = model.cfg
    rng = np.random.default_rng(0)
    style = torch.zeros(1, model.n_speakers, device=device)
    style[0, 0] = 1
    offset = torch.zeros(1, dtype=torch.long, device=device)
    n_train = int(train_seconds * fps)
    wave = torch.from_numpy(rng.standard_normal(int(train_seconds * SAMPLE_RATE)).astype("f4"))
    wave = wave[None].to(device)
    target = 1e-3 * torch.randn(1, n_train, model.n_out, device=device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def train_step():
        model.train()
        with autocast:
            memory = model.encode(wave, n_train)
            n = min(n_train, memory.shape[1] // cfg.audio_per_frame)
            pred = rollout(model, memory, n, style, offset)
            loss = F.mse_loss(pred.float(), target[:, :n])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    infer_wave = torch.from_numpy(
        rng.standard_normal(int(infer_seconds * SAMPLE_RATE)).astype("f4")
    )[None].to(device)
    frames = []

    @torch.no_grad()
    def infer():
        model.eval()
        with autocast:
            memory = model.encode(infer_wave, chunk_frames=cfg.window)
            n = memory.shape[1] // cfg.audio_per_frame
            generate(model, memory, n, style, cfg.window, cfg.history)
        frames[:] = [n]

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_s = _timed(train_step, device, repeats)
    train_mem = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    infer_s = _timed(infer, device, repeats)
    infer_mem = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    gib = 1024**3
    return {
        "preset": preset,
        "vertices": SETUPS[preset][0],
        "fps": fps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_frames": n_train,
        "train_step_seconds": round(train_s, 3),
        "train_steps_per_second": round(1 / train_s, 2),
        "infer_audio_seconds": infer_seconds,
        "infer_frames": frames[0],
        "infer_seconds": round(infer_s, 3),
        "infer_frames_per_second": round(frames[0] / infer_s, 1),
        "peak_memory_train_gib": None if train_mem is None else round(train_mem / gib, 2),
        "peak_memory_infer_gib": None if infer_mem is None else round(infer_mem / gib, 2),
    }


def bench(
    presets: list[str],
    device: torch.device,
    dtype: torch.dtype,
    train_seconds: float = 4.0,
    infer_seconds: float = 10.0,
    repeats: int = 5,
) -> list[dict]:
    """One result per preset (see the module docstring); one repeat on a CPU."""
    repeats = repeats if device.type == "cuda" else 1
    return [bench_setup(p, device, dtype, train_seconds, infer_seconds, repeats) for p in presets]
