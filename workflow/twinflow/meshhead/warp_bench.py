"""Benchmark of the head warp (face-vid2vid) at the reference's vox-256 sizes (random weights).

Run by ``python -m twinflow.meshhead.gpu_bench --model warp [--configs vox-256 vox-256-spade]
[--batch 1] [--render-batch 8] [--repeats 5] [--dtype fp32|fp16|bf16]``.

Per configuration: parameters per network; one training step as ``meshhead_train_warp`` runs it
(the reference's generator and discriminator updates; the VGG-19 / Hopenet losses use their
named fallbacks, ``l1`` / ``tracked``, since their weights are user-supplied; VGG-19 at 256 px
adds about 20 GFLOP per image to a step) and rendering (one source, frames driven by keypoints:
the generator only, as :meth:`twinflow.meshhead.warp.WarpRunner.render`). On CUDA: steps per
second, frames per second and peak memory, under autocast with ``--dtype`` (the reference trains
in fp32; fp16/bf16 show what half precision gives). On a CPU it is a smoke run of the full-size
model: one step of each, seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import torch

log = logging.getLogger("twinflow.meshhead.warp_bench")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_config(name: str, device, dtype, batch: int, render_batch: int, repeats: int) -> dict:
    from twinflow.meshhead.fv2v.config import named_config
    from twinflow.meshhead.fv2v.losses import GeneratorLoss, discriminator_loss
    from twinflow.meshhead.fv2v.model import FaceVid2Vid, build_discriminator, parameter_counts
    from twinflow.meshhead.fv2v.pose import keypoint_transformation

    cfg = dataclasses.replace(named_config(name), perceptual="l1", headpose="tracked")
    model = FaceVid2Vid(cfg).to(device)
    disc = build_discriminator(cfg).to(device)
    loss_fn = GeneratorLoss(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    dopt = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    s = cfg.size
    batch_data = {
        "source": torch.rand(batch, 3, s, s, device=device),
        "driving": torch.rand(batch, 3, s, s, device=device),
        "pose": torch.zeros(batch, 3, device=device),
    }
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def train_step() -> None:
        model.train(), disc.train()
        with autocast:
            disc.requires_grad_(False)
            losses, gen = loss_fn(batch_data, model, disc)
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).float().backward()
        opt.step()
        with autocast:
            disc.requires_grad_(True)
            d = discriminator_loss(cfg, disc, loss_fn.pyramid, batch_data["driving"],
                                   gen["prediction"])  # fmt: skip
        dopt.zero_grad(set_to_none=True)
        sum(d.values()).float().backward()
        dopt.step()

    model.eval()
    with torch.no_grad(), autocast:
        src = batch_data["source"][:1]
        kp_c = model.kp_detector(src)
        kp_s = keypoint_transformation(kp_c, model.he_estimator(src))
        frames = torch.rand(render_batch, 3, s, s, device=device)
        kp_d = keypoint_transformation(
            {k: v.expand(render_batch, *v.shape[1:]) for k, v in kp_c.items() if v is not None},
            model.he_estimator(frames),
        )
        kp_sb = {k: v.expand(render_batch, *v.shape[1:]) for k, v in kp_s.items() if v is not None}

    def render_step() -> None:
        with torch.no_grad(), autocast:
            model.generator(src.expand(render_batch, -1, -1, -1), kp_driving=kp_d, kp_source=kp_sb)

    n = repeats if device.type == "cuda" else 1
    if device.type == "cuda":
        train_step(), render_step()  # warm-up
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        train_step()
    _sync(device)
    train_s = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        render_step()
    _sync(device)
    render_s = (time.perf_counter() - t0) / n
    out = {
        "config": name,
        "generator": cfg.generator,
        "size": s,
        "parameters": {**parameter_counts(model), "discriminator": parameter_counts(disc)["total"]},
        "train_batch": batch,
        "train_step_s": train_s,
        "render_batch": render_batch,
        "render_batch_s": render_s,
    }
    if device.type == "cuda":
        out.update(
            train_steps_per_s=1 / train_s,
            render_fps=render_batch / render_s,
            peak_memory_gib=torch.cuda.max_memory_allocated(device) / 2**30,
        )
    log.info("%s", out)
    return out


def bench(configs, device, dtype, batch=1, render_batch=8, repeats=5) -> list[dict]:
    return [bench_config(c, device, dtype, batch, render_batch, repeats) for c in configs]
