"""Benchmark: the reference-size MRAA (training step, animation) on random data.

``python -m twinflow.animate.gpu_bench [--presets vox256 ted384] [--steps 20] [--warmup 3]
[--frames 64] [--batch N] [--amp none|bf16|fp16] [--device auto] [--threads T] [--json out.json]``

For each preset: builds the main model and the AVD network at the reference's sizes (parameter
counts printed), runs ``--steps`` training steps of the main model (reconstruction + equivariance
losses, Adam) on random frame pairs at the preset's batch size (``--batch`` overrides; on a CPU the
default is 1 pair and one step), and animates ``--frames`` driving frames in avd mode, 16 at a
time. Prints one JSON line per preset: seconds per training step, steps/s, animation frames/s,
peak GPU memory. The reference trains in float32; ``--amp`` runs the networks under autocast
(the region geometry stays float32). Not a test: no pass/fail.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import torch

log = logging.getLogger("twinflow.animate.gpu_bench")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def bench_preset(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    from twinflow.animate.avd import AVDNetwork
    from twinflow.animate.inference import animate_tensors
    from twinflow.animate.losses import ReconstructionLoss, equivariance_losses
    from twinflow.animate.model import MRAA
    from twinflow.animate.presets import get_preset

    cfg = get_preset(name)
    cpu = device.type == "cpu"
    batch = args.batch or (1 if cpu else cfg.batch_size)
    steps = args.steps if not cpu or args.batch else 1
    warmup = min(args.warmup, steps - 1) if not cpu else 0
    torch.manual_seed(0)
    model = MRAA(cfg).to(device)
    avd = AVDNetwork(cfg).to(device).eval()
    recon = ReconstructionLoss(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")

    def autocast():
        return torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None)

    source = torch.rand(batch, 3, cfg.size, cfg.size, device=device)
    driving = torch.rand(batch, 3, cfg.size, cfg.size, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    t_start = time.perf_counter()
    for i in range(steps):
        if i == warmup:
            _sync(device)
            t_start = time.perf_counter()
        with autocast():
            out = model(source, driving)
            losses = recon(out["prediction"].float(), driving)
            losses.update(
                equivariance_losses(model.region_predictor, driving, out["driving_regions"], cfg)
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(sum(losses.values())).backward()
        scaler.step(optimizer)
        scaler.update()
    _sync(device)
    train_s = (time.perf_counter() - t_start) / max(1, steps - warmup)
    train_peak = torch.cuda.max_memory_allocated(device) / 2**30 if not cpu else None

    model.eval()
    frames = 1 if cpu and not args.batch else args.frames
    chunk = min(16, frames)
    src = torch.rand(1, 3, cfg.size, cfg.size, device=device)
    drv = [
        torch.rand(min(chunk, frames - k), 3, cfg.size, cfg.size, device=device)
        for k in range(0, frames, chunk)
    ]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad(), autocast():
        list(animate_tensors(model, src, drv[:1], "avd", avd))  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        for _out in animate_tensors(model, src, drv, "avd", avd):
            pass
        _sync(device)
        animate_s = time.perf_counter() - t0
    return {
        "preset": name,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "size": cfg.size,
        "regions": cfg.num_regions,
        "params_main": count(model),
        "params_region_predictor": count(model.region_predictor),
        "params_bg_motion": count(model.bg_motion),
        "params_generator": count(model.generator),
        "params_avd": count(avd),
        "amp": args.amp,
        "train_batch": batch,
        "train_steps_timed": steps - warmup,
        "train_s_per_step": train_s,
        "train_steps_per_s": 1 / train_s if train_s > 0 else None,
        "train_peak_gpu_mem_gib": train_peak,
        "animate_frames": frames,
        "animate_s": animate_s,
        "animate_frames_per_s": frames / animate_s if animate_s > 0 else None,
        "animate_peak_gpu_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30
        if not cpu
        else None,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.animate.gpu_bench", description=__doc__)
    p.add_argument("--presets", nargs="+", default=["vox256", "ted384"])
    p.add_argument("--steps", type=int, default=20, help="training steps (CPU default: 1)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--frames", type=int, default=64, help="animated frames (CPU default: 1)")
    p.add_argument("--batch", type=int, default=None, help="default: the preset's (CPU: 1)")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the results here")
    return p


def run(args: argparse.Namespace) -> None:
    from twinflow.atomic import write_json
    from twinflow.device import pick_device

    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for name in args.presets:
        result = bench_preset(name, args, device)
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    from twinflow.cli import stage_main

    raise SystemExit(stage_main(build_parser, run))
