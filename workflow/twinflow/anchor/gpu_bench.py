"""Benchmark: seconds to render a 15-second video with the paper sizes (random weights), and
seconds per training step of the body and head models.

``python -m twinflow.anchor.gpu_bench [--seconds 15] [--fps 25] [--dtype fp16] [--frames N]
[--train-steps N] [--device auto] [--json out.json]``

Builds SD-1.5-sized networks with random weights (UNet 320-640-1280-1280 and a ControlNet from it,
the SD VAE, a 9-channel inpainting UNet with its ControlNet for 256 px heads, a CLIP ViT-B/32
vision tower for the appearance tokens, 50 x 768) and times the whole per-clip inference with the
``paper`` preset's (Make-Your-Anchor's) settings: body frames at 512 px (20 DDIM steps, windows of
16 frames every 12, group norms over the window, classifier-free guidance: 2 x 16 frames per UNet
call, VAE decoding), head crops, head inpainting at 256 px (per frame, batches of 30), blending. ``--frames N`` times the first
``N`` frames only and scales to the full length by the frames denoised over all windows (a
quick estimate; use at least 16 frames, one full window);
by default the whole ``seconds x fps`` frames are rendered. Then one training step per model
(:func:`time_training`: the preset's batch of 4 at 512 px for the body, 4 at 256 px for the head,
AdamW at 1e-5, UNet and ControlNet trained, fp32 weights under autocast) is timed after a warm-up
step (``--train-steps``; ``"train"`` in the printed JSON). A benchmark, not a test; meant for a
GPU machine (``--device cpu --frames 2 --steps 1 --set body_size=64 --set head_size=64`` is a
smoke run).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import torch
from torch import nn

from twinflow.anchor import runtime
from twinflow.anchor.inference import Trained, blend_heads, enhance_heads, render_body
from twinflow.anchor.models import VaeCodec, build_denoiser
from twinflow.anchor.presets import AnchorConfig, get_preset
from twinflow.anchor.sampling import window_starts
from twinflow.anchor.train import denoising_loss
from twinflow.atomic import write_json
from twinflow.cli import stage_main
from twinflow.presets import parse_overrides

log = logging.getLogger("twinflow.anchor.gpu_bench")

SD_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}


def paper_parts(device, dtype, overrides=None) -> tuple[AnchorConfig, VaeCodec, nn.Module]:
    """The ``paper`` preset without SD folders, the SD VAE and a CLIP ViT-B/32 vision tower, all
    with random weights (the tower and the VAE frozen, as in the reference)."""
    from diffusers import AutoencoderKL

    from twinflow.anchor.appearance import ClipImageTokens

    # no SD folders: networks from the preset's configs; random CLIP tower, zero unconditional
    # tokens (the empty prompt's embedding costs one text-encoder call per clip)
    no_folders = {"base_model": None, "inpaint_model": None, "uncond": "zeros"}
    cfg = get_preset("paper", {**no_folders, "ref_encoder": "conv", **(overrides or {})})
    codec = VaeCodec(AutoencoderKL(**SD_VAE).to(device, dtype))
    return cfg, codec, ClipImageTokens(None, cfg.cross_attention_dim)


def paper_models(parts, device, dtype) -> tuple[Trained, Trained]:
    """Body and head models on :func:`paper_parts` for inference, weights in ``dtype``."""
    cfg, codec, clip = parts
    out = []
    for kind in ("body", "head"):
        model, meta = build_denoiser(cfg, kind)
        model.ref = clip
        model.to(device, dtype).eval()
        size = cfg.body_size if kind == "body" else cfg.head_size
        out.append(
            Trained(
                model=model,
                cfg=cfg,
                codec=codec,
                scheduler_config=meta["scheduler_config"],
                reference=np.full((size, size, 3), 128, np.uint8),
            )
        )
    return out[0], out[1]


def time_training(
    kind: str, parts, device: torch.device, dtype: torch.dtype, steps: int, warmup: int
) -> dict:
    """Seconds per training step of the ``kind`` denoiser (UNet + ControlNet, both trained) at
    the preset's batch, resolution, optimiser and learning rate, on random data: the loss of
    :func:`twinflow.anchor.train.denoising_loss`, fp32 weights under autocast to ``dtype``
    (with a gradient scaler for fp16), as the reference's ``accelerate --mixed_precision``.

    twinflow encodes the training frames to latents once before training, so a step's cost is the
    denoiser's (plus, for the head, the VAE encoding of the masked crop)."""
    from diffusers import DDPMScheduler

    cfg, codec, clip = parts
    model, meta = build_denoiser(cfg, kind)
    model.ref = clip
    model.to(device).train()
    alphas = DDPMScheduler.from_config(meta["scheduler_config"]).alphas_cumprod.to(device)
    body = kind == "body"
    batch = cfg.batch_size if body else cfg.head_batch_size
    size = cfg.body_size if body else cfg.head_size
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        params, lr=cfg.lr if body else cfg.head_lr, weight_decay=cfg.weight_decay
    )
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    gen = torch.Generator().manual_seed(0)
    latent = size // cfg.scale
    x0 = torch.randn(batch, cfg.channels, latent, latent, generator=gen).to(device)
    control = torch.rand(batch, 3, size, size, generator=gen).to(device)
    reference = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device)
    known = mask = None
    if not body:
        known = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device)
        mask = torch.zeros(batch, 1, size, size, device=device)
        mask[..., size // 6 : -size // 6, size // 5 : -size // 5] = 1
    cuda = device.type == "cuda"
    for i in range(warmup + steps):
        if i == warmup:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = denoising_loss(
                model, codec, cfg, alphas, x0, control, reference, known=known, mask=mask
            )
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {
        "batch": batch,
        "px": size,
        "trainable_params_m": round(sum(p.numel() for p in params) / 1e6, 1),
        "steps_timed": steps,
        "s_per_step": round(seconds / steps, 3),
        "loss_finite": bool(torch.isfinite(loss).item()),
        "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        if cuda
        else None,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.anchor.gpu_bench", description=__doc__)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--frames", type=int, default=None, help="time only this many frames")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: 20)")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default="fp16")
    p.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help="training steps timed per model after one warm-up step (default: 3 on a GPU, "
        "1 without warm-up on a CPU; 0: inference only)",
    )
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--set", action="append", default=[], help="preset field=value (smoke runs)")
    runtime.add_args(p)
    return p


def run(args: argparse.Namespace) -> None:
    device = runtime.setup(args.device, args.threads)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    if device.type == "cpu" and dtype == torch.float16:
        dtype = torch.float32
    cuda = device.type == "cuda"
    parts = paper_parts(device, dtype, parse_overrides(args.set))
    body, head = paper_models(parts, device, dtype)
    total = int(round(args.seconds * args.fps))
    n = min(args.frames or total, total)
    cfg = body.cfg
    rng = np.random.default_rng(0)
    conditions = rng.integers(0, 255, (n, cfg.body_size, cfg.body_size, 3), dtype=np.uint8)
    # a fixed head crop per frame (the alignment's cost is negligible; not what is timed)
    matrices = np.tile(np.array([[[1, 0, 0], [0, 1, 0]]], np.float32), (n, 1, 1))
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        frames = render_body(body, conditions, steps=args.steps, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t_body = time.perf_counter() - t0
        h = cfg.head_size
        crops = frames[:, :h, :h]
        masks = np.zeros((n, h, h), np.uint8)
        masks[:, h // 6 : -h // 6, h // 5 : -h // 5] = 255
        heads = enhance_heads(
            head, crops, conditions[:, :h, :h], masks, matrices, steps=args.steps, device=device
        )
        blend_heads(frames, heads)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0

    def frame_evaluations(frames: int) -> int:  # frames denoised per step, over all windows
        windows = window_starts(frames, cfg.window, cfg.overlap, cfg.last_window)
        return sum(b - a for a, b in windows)

    scale = frame_evaluations(total) / frame_evaluations(n)
    result = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "dtype": str(dtype).replace("torch.", ""),
        "video_seconds": args.seconds,
        "frames_total": total,
        "frames_timed": n,
        "body_px": cfg.body_size,
        "head_px": cfg.head_size,
        "ddim_steps": args.steps or cfg.ddim_steps,
        "guidance": cfg.guidance,
        "seconds_timed": round(seconds, 2),
        "seconds_body_timed": round(t_body, 2),
        "seconds_per_video": round(seconds * scale, 1),
        "extrapolated": n < total,
    }
    del body, head, frames, heads
    if cuda:
        torch.cuda.empty_cache()
    train_steps = args.train_steps if args.train_steps is not None else (3 if cuda else 1)
    if train_steps > 0:
        result["train"] = {
            kind: time_training(kind, parts, device, dtype, train_steps, 1 if cuda else 0)
            for kind in ("body", "head")
        }
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
