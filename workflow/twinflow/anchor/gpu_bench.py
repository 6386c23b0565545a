"""Benchmark: seconds to render a 15-second video with the paper sizes (random weights).

``python -m twinflow.anchor.gpu_bench [--seconds 15] [--fps 25] [--dtype fp16] [--frames N]
[--device auto] [--json out.json]``

Builds SD-1.5-sized networks with random weights (UNet 320-640-1280-1280 and a ControlNet from it,
the SD VAE, a 9-channel inpainting UNet with its ControlNet for 256 px heads, a CLIP ViT-B/32
vision tower for the appearance tokens, 50 x 768) and times the whole per-clip inference with the
``paper`` preset's (Make-Your-Anchor's) settings: body frames at 512 px (20 DDIM steps, windows of
16 frames every 12, group norms over the window, classifier-free guidance: 2 x 16 frames per UNet
call, VAE decoding), head crops, head inpainting at 256 px (per frame, batches of 30), blending. ``--frames N`` times the first
``N`` frames only and scales to the full length by the frames denoised over all windows (a
quick estimate; use at least 16 frames, one full window);
by default the whole ``seconds x fps`` frames are rendered. A benchmark, not a test; meant for a
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

from twinflow.anchor import runtime
from twinflow.anchor.inference import Trained, blend_heads, enhance_heads, render_body
from twinflow.anchor.models import VaeCodec, build_denoiser
from twinflow.anchor.presets import get_preset
from twinflow.anchor.sampling import window_starts
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


def paper_models(device, dtype, overrides=None) -> tuple[Trained, Trained]:
    from diffusers import AutoencoderKL

    from twinflow.anchor.appearance import ClipImageTokens

    # no SD folders: networks from the preset's configs; random CLIP tower, zero unconditional
    # tokens (the empty prompt's embedding costs one text-encoder call per clip)
    no_folders = {"base_model": None, "inpaint_model": None, "uncond": "zeros"}
    cfg = get_preset("paper", {**no_folders, "ref_encoder": "conv", **(overrides or {})})
    vae = AutoencoderKL(**SD_VAE).to(device, dtype)
    codec = VaeCodec(vae)
    clip = ClipImageTokens(None, cfg.cross_attention_dim)
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.anchor.gpu_bench", description=__doc__)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--frames", type=int, default=None, help="time only this many frames")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: 20)")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default="fp16")
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--set", action="append", default=[], help="preset field=value (smoke runs)")
    runtime.add_args(p)
    return p


def run(args: argparse.Namespace) -> None:
    device = runtime.setup(args.device, args.threads)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    if device.type == "cpu" and dtype == torch.float16:
        dtype = torch.float32
    body, head = paper_models(device, dtype, parse_overrides(args.set))
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
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
