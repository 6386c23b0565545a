"""Benchmark: ``paper``-preset training and rendering speed on synthetic data (meant for a GPU).

``python -m twinflow.nerf.gpu_bench [--iters 3000] [--res 512] [--frames 100] [--render-frames 20]
[--preset paper] [--set field=value ...] [--device auto] [--json out.json]``

Builds a synthetic talking head (:mod:`twinflow.nerf.synthetic`) at ``res x res``, trains the head
field for ``--iters`` steps with the preset's ray batch (65,536 rays per step for ``paper``),
then renders ``--render-frames`` full frames with head and (untrained) torso. Prints the
parameter counts, iterations/s (after ``--warmup`` steps), render frames/s, the training PSNR of
the last steps and the peak GPU memory, as one JSON line. Not a test: no pass/fail.

On a CPU the defaults shrink to one training step and one rendered frame at full size
(``--iters 1 --warmup 0 --render-frames 1 --frames 12``): the paper model's cost per step and
per frame, in seconds. ``--autocast fp16|bf16`` trains under CUDA autocast (ER-NeRF's ``-O``
trains in fp16; the preset's ``autocast`` field is the default).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

log = logging.getLogger("twinflow.nerf.gpu_bench")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(args: argparse.Namespace) -> dict:
    from twinflow.device import pick_device
    from twinflow.nerf.data import NerfData
    from twinflow.nerf.model import new_head, render_frame, update_occupancy
    from twinflow.nerf.network import new_torso
    from twinflow.nerf.presets import get_preset
    from twinflow.nerf.synthetic import make_synthetic
    from twinflow.nerf.train import Autocast, Progress, adamw, decay_schedule, head_loss
    from twinflow.presets import parse_overrides

    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = device.type != "cuda"
    for name, on_cpu, default in (("iters", 1, 3000), ("warmup", 0, 20),
                                  ("render_frames", 1, 20), ("frames", 12, 100)):  # fmt: skip
        if getattr(args, name) is None:
            setattr(args, name, on_cpu if cpu else default)
    args.warmup = min(args.warmup, max(0, args.iters - 1))
    overrides = parse_overrides(args.set)
    if args.autocast:
        overrides["autocast"] = args.autocast
    cfg = get_preset(args.preset, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = make_synthetic(Path(tmp), res=args.res, n_frames=args.frames)
        data = NerfData(paths["dataset"], paths["frames"], paths["features"], device=device)
        setup_s = time.perf_counter() - t0
    head = new_head(cfg, data.features.shape[-1], data.n_frames, device)
    torso = new_torso(cfg, data.n_frames).to(device)
    opt = adamw(head.param_groups(cfg.lr, cfg.lr_net))
    amp = Autocast(cfg.autocast, device)
    sched = decay_schedule(opt, Progress(args.iters, None), cfg.lr_decay)
    gen = torch.Generator().manual_seed(0)
    psnrs, t_start = [], None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(args.iters):
        if i == args.warmup:
            _sync(device)
            t_start = time.perf_counter()
        if i >= min(cfg.occ_warmup, args.iters // 4) and i % cfg.occ_every == 0:
            update_occupancy(head, data.features, data.train_idx, data.blink, data.box, gen)
        batch = data.random_rays(
            cfg.rays,
            cfg.frames_per_step,
            cfg.head_ray_fraction,
            gen=gen,
            mouth_fraction=cfg.mouth_ray_fraction,
        )
        opt.zero_grad(set_to_none=True)
        with amp:
            loss, parts = head_loss(head, data, batch, cfg, smooth=i >= cfg.smooth_after, gen=gen)
        amp.step(loss, opt)
        sched.step()
        psnrs.append(parts["psnr"])
        if (i + 1) % max(1, args.iters // 10) == 0:
            log.info("step %d psnr %.2f samples %.2f", i + 1, parts["psnr"], parts["samples"])
    _sync(device)
    timed = args.iters - args.warmup
    train_s = time.perf_counter() - t_start if t_start is not None else float("nan")
    torso.eval()
    head.eval()
    with torch.no_grad():
        codes = head.audio_codes(data.features, torch.arange(data.n_frames, device=device))
        _sync(device)
        t1 = time.perf_counter()
        for k in range(args.render_frames):
            f = k % data.n_frames
            render_frame(
                head,
                torso,
                data.c2w[f],
                data.intrinsics,
                data.res,
                data.box,
                codes[f],
                float(data.blink[f]),
                data.bg,
                data.head_region,
                cfg.chunk,
            )
        _sync(device)
        render_s = time.perf_counter() - t1
    return {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "preset": args.preset,
        "res": args.res,
        "rays_per_step": cfg.rays,
        "encoder": cfg.encoder,
        "sampler": cfg.sampler,
        "torso_model": cfg.torso_model,
        "autocast": cfg.autocast if device.type == "cuda" else "none (cpu)",
        "params_head": sum(p.numel() for p in head.parameters()),
        "params_torso": sum(p.numel() for p in torso.parameters()),
        "train_s_per_step": train_s / timed if timed > 0 else None,
        "render_s_per_frame": render_s / args.render_frames if args.render_frames else None,
        "iterations": args.iters,
        "iterations_per_s": timed / train_s if timed > 0 else None,
        "train_psnr_last": sum(psnrs[-20:]) / len(psnrs[-20:]) if psnrs else None,
        "render_frames": args.render_frames,
        "render_frames_per_s": args.render_frames / render_s if render_s > 0 else None,
        "peak_gpu_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda"
        else None,
        "setup_s": setup_s,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.nerf.gpu_bench", description=__doc__)
    p.add_argument("--preset", default="paper")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--iters", type=int, default=None, help="default: 3000 (GPU), 1 (CPU)")
    p.add_argument("--warmup", type=int, default=None, help="default: 20 (GPU), 0 (CPU)")
    p.add_argument("--res", type=int, default=512)
    p.add_argument("--frames", type=int, default=None, help="default: 100 (GPU), 12 (CPU)")
    p.add_argument("--render-frames", type=int, default=None, help="default: 20 (GPU), 1 (CPU)")
    p.add_argument("--autocast", choices=["none", "fp16", "bf16"], default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the result here")
    return p


def run(args: argparse.Namespace) -> None:
    from twinflow.atomic import write_json

    result = bench(args)
    print(json.dumps(result))
    if args.json:
        write_json(args.json, result)


def main(argv: list[str] | None = None) -> int:
    from twinflow.cli import stage_main

    return stage_main(build_parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
