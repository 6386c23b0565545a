"""Stages ``train --stage head | lips | torso``: ER-NeRF's three training stages.

``python -m twinflow.nerf.train --stage head --twin ID --dataset dataset.npz --frames frames.mkv
--features audio_features.npz --preset tiny [--set field=value ...] [--steps N]
[--max-minutes M] [--init lips_or_head.pt] --out head.pt``

``head``   the audio-driven head field from scratch: random rays (``head_ray_fraction`` on the
           head), composited over the frame with its head replaced by the background plate;
           loss: MSE (weighted by the rendered uncertainty with ``unc_loss``,
           :func:`twinflow.nerf.losses.uncertainty_weighted_mse`) + ``lambda_mask`` x
           BCE(opacity, head mask) + ``lambda_entropy`` x opacity entropy + ER-NeRF's ambient
           loss: ``lambda_amb`` x audio attention outside the face + ``lambda_amb_eye`` x eye
           attention where the audio acts on the face (:func:`twinflow.nerf.losses.ambient_loss`).
``lips``   continues from ``--init head.pt``: every other step a ``patch x patch`` grid of rays
           over the mouth of each frame with ``MSE + lambda_patch x patch loss``
           (:mod:`twinflow.nerf.losses`), the other steps as ``head``; learning rate decays to
           ``lips_lr_decay``.
``torso``  freezes the head of ``--init lips.pt`` and trains the 2-D torso model on whole-image
           rays: ``head + (1 - head opacity) x (torso over background plate)`` against the frame.
           Its weight average is always ``torch_ema``'s (``ema_warmup``, :func:`train_torso`).

Training runs in :func:`twinflow.train.run_training`: resumable (``<out>.resume.pt``), atomic
final checkpoint. The checkpoint ``meta`` records the audio feature kind and size, so a model
never runs on other features (:func:`twinflow.train.load_checkpoint` with ``expect``).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from twinflow.errors import TwinflowError
from twinflow.nerf.data import NerfData, RayBatch
from twinflow.nerf.dataset import FACE, HEAD
from twinflow.nerf.losses import (
    ambient_loss,
    binary_entropy,
    patch_loss_for,
    uncertainty_weighted_mse,
)
from twinflow.nerf.model import (
    head_conditions,
    load_head,
    new_head,
    preset_meta,
    render_head_rays,
    torso_rays,
    update_occupancy,
)
from twinflow.nerf.network import ErnerfTorso, new_torso
from twinflow.nerf.presets import NerfConfig, get_preset
from twinflow.nerf.rays import pixel_rays
from twinflow.train import LoopConfig, load_checkpoint, run_training, seed_everything

log = logging.getLogger("twinflow.nerf.train")
STAGES = ("head", "lips", "torso")


def adamw(groups: list[dict]) -> torch.optim.Optimizer:
    for g in groups:
        g.setdefault("weight_decay", 0.0)
    return torch.optim.AdamW(groups, betas=(0.0, 0.99), eps=1e-8)


class Autocast:
    """Mixed precision of a training step on CUDA (``autocast``: ``fp16`` with a gradient
    scaler, as ER-NeRF's ``-O``, or ``bf16``); does nothing on other devices or with ``none``.
    Use ``with amp: loss = ...`` then ``amp.step(loss, optimizer)``."""

    def __init__(self, mode: str, device: torch.device):
        on = mode != "none" and torch.device(device).type == "cuda"
        dtype = torch.float16 if mode == "fp16" else torch.bfloat16
        self.ctx = torch.autocast("cuda", dtype=dtype, enabled=on)
        self.scaler = torch.amp.GradScaler("cuda", enabled=on and mode == "fp16")

    def __enter__(self):
        return self.ctx.__enter__()

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc)

    def step(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)
        self.scaler.update()


class Progress:
    """Training progress 0..1: the larger of steps done / steps and, with a wall-clock budget,
    time spent / budget (so that the learning rate decays fully when ``max_minutes`` ends a run
    before its step count)."""

    def __init__(self, steps: int, max_minutes: float | None):
        self.steps, self.budget = max(steps, 1), (60 * max_minutes if max_minutes else None)
        self.t0: float | None = None

    def __call__(self, i: int) -> float:
        frac = min(i, self.steps) / self.steps
        if self.budget:
            if self.t0 is None:
                self.t0 = time.perf_counter()
            frac = max(frac, min(1.0, (time.perf_counter() - self.t0) / self.budget))
        return frac


def lips_lr_schedule(opt, progress: Progress, cfg: NerfConfig, steps: int, done: int):
    """The lips stage's rate (``lips_schedule``): ``twinflow``: from the head stage's final factor
    ``lr_decay``, ``lips_lr_decay`` more; ``ernerf``: ``lips_lr_decay ** ((done + t) / (done +
    steps))`` with ``t`` the stage's steps (``progress`` x ``steps``), ``done`` the steps before
    it (ER-NeRF's LambdaLR ``0.05 ** (iter / iters)`` continuing the head stage's ``iter``)."""
    if cfg.lips_schedule == "ernerf":
        total = max(done + steps, 1)
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: cfg.lips_lr_decay ** ((done + progress(i) * steps) / total)
        )
    return decay_schedule(opt, progress, cfg.lips_lr_decay, start=cfg.lr_decay)


def decay_schedule(
    opt: torch.optim.Optimizer, progress: Progress, factor: float, start: float = 1.0
):
    """Learning rates ``start x factor^progress`` of the base rates (exponential decay)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: start * factor ** progress(i))


def head_loss(
    head,
    data: NerfData,
    batch: RayBatch,
    cfg: NerfConfig,
    *,
    smooth: bool,
    patch_loss=None,
    gen: torch.Generator | None = None,
    progress: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of the head (and lips) stage on one ray batch; ``progress`` in [0, 1] of the stage
    ramps the uncertainty weighting in (ER-NeRF's ``step_factor``)."""
    o, d = pixel_rays(data.c2w[batch.frames], data.intrinsics, batch.uv)
    cond = head_conditions(
        head, data.features, batch.frames, data.blink, smooth=smooth, codes_for=batch.frames,
        augment=(data.mean_window, gen),
    )  # fmt: skip
    out = render_head_rays(head, o, d, cond, data.box, perturb=True)
    pred = out["rgb"] + (1 - out["acc"][:, None]) * batch.bg
    mse = F.mse_loss(pred, batch.rgb)
    head_mask = (batch.labels >= HEAD).float()
    face = batch.labels == FACE
    parts = {"mse": mse.item()}
    if "uncertainty" in out and patch_loss is None:  # ER-NeRF: not while fine-tuning the lips
        loss = uncertainty_weighted_mse(pred, batch.rgb, out["uncertainty"], face, progress)
        parts["unc"] = float(out["uncertainty"][face].detach().mean()) if face.any() else 0.0
    else:
        loss = mse
    if cfg.lambda_mask > 0:
        bce = F.binary_cross_entropy(out["acc"].clamp(1e-5, 1 - 1e-5), head_mask)
        loss = loss + cfg.lambda_mask * bce
        parts["mask"] = bce.item()
    if cfg.lambda_entropy > 0:
        loss = loss + cfg.lambda_entropy * binary_entropy(out["acc"])
    if cfg.lambda_amb > 0 or cfg.lambda_amb_eye > 0:
        # ER-NeRF's marcher sums the eye attention over up to max_steps samples, unweighted
        eye = out["amb_eye"] / cfg.max_steps if cfg.sampler == "ernerf" else out["amb_eye"]
        amb = ambient_loss(out["amb_aud"], eye, face, cfg.lambda_amb, cfg.lambda_amb_eye)
        loss = loss + amb
    if patch_loss is not None and batch.patch:
        p = batch.patch
        img = lambda x: x.view(-1, p, p, 3).permute(0, 3, 1, 2)  # noqa: E731
        pl = patch_loss(img(pred).clamp(0, 1), img(batch.rgb))
        loss = loss + cfg.lambda_patch * pl
        parts["patch"] = pl.item()
    parts["psnr"] = float(-10 * torch.log10(mse.detach().clamp(min=1e-10)))
    parts["samples"] = float(out["samples"])
    return loss, parts


def train_head(args, cfg: NerfConfig, data: NerfData, device, meta: dict[str, Any]) -> None:
    stage = args.stage
    n_codes = data.n_frames
    init = load_checkpoint(args.init, expect=_expect(data)) if stage == "lips" else None
    if init is not None:  # an imported ER-NeRF model keeps its rows of codes (10,000)
        n_codes = max(n_codes, int(init["meta"].get("n_codes", n_codes)))
        meta["n_codes"] = n_codes
    seed_everything(args.seed)  # the weights' init (the loop reseeds before training)
    head = new_head(cfg, data.features.shape[-1], n_codes, device)
    steps = (
        args.steps
        if args.steps is not None
        else (cfg.head_steps if stage == "head" else cfg.lips_steps)
    )
    done, ema_start = 0, None
    if init is not None:
        head.load_state_dict(init["modules"]["head"])
        done = int(init["steps"])
        meta["init"] = {"path": str(args.init), "steps": done}
        if cfg.ema_warmup and "head" in init.get("last", {}):
            # ER-NeRF's resumed trainer: the last (not averaged) weights, the average goes on
            with torch.no_grad():
                params = dict(head.named_parameters(remove_duplicate=False))
                for name, value in init["last"]["head"].items():
                    params[name].copy_(value)
            ema_start = {"head": init["ema"]["head"]}
    opt = adamw(head.param_groups(cfg.lr, cfg.lr_net))
    progress = Progress(steps, args.max_minutes)
    if stage == "head":
        sched = decay_schedule(opt, progress, cfg.lr_decay)
    else:
        sched = lips_lr_schedule(opt, progress, cfg, steps, done)
    patch_loss = None
    if stage == "lips":
        patch_loss, used = patch_loss_for(cfg.perceptual, args.registry)
        meta["patch_loss"] = used
        (log.warning if used.startswith("structural (") else log.info)("lips patch loss: %s", used)
    if patch_loss is not None and isinstance(patch_loss, torch.nn.Module):
        patch_loss = patch_loss.to(device)
    gen = torch.Generator(device="cpu")
    n_patch_frames = max(1, cfg.rays // (cfg.patch * cfg.patch * 2))
    amp = Autocast(cfg.autocast, device)
    if stage == "head" and cfg.sampler == "ernerf":  # ER-NeRF's mark_untrained_grid
        c2w = data.c2w[data.train_idx].clone()
        c2w[:, :3, 3] = c2w[:, :3, 3] / head.coord_scale(data.box)
        unseen = head.occupancy.mark_unseen(c2w, data.intrinsics)
        log.info("occupancy grid: %d cells no training camera sees", unseen)

    def step(i: int) -> dict[str, float]:
        gen.manual_seed(cfg_seed(args) * 1_000_003 + i)
        smooth = stage == "lips" or i >= cfg.smooth_after or progress(i) >= 0.5
        if i >= cfg.occ_warmup and i % cfg.occ_every == 0:
            occ = update_occupancy(head, data.features, data.train_idx, data.blink, data.box, gen)
            if i % (cfg.occ_every * 16) == 0:
                log.info("step %d: occupancy grid %.1f%% occupied", i, 100 * occ)
        if stage == "lips" and i % 2 == 0:
            batch = data.mouth_patches(n_patch_frames, cfg.patch, gen=gen)
        else:
            batch = data.random_rays(
                cfg.rays,
                cfg.frames_per_step,
                cfg.head_ray_fraction,
                gen=gen,
                mouth_fraction=cfg.mouth_ray_fraction,
            )
        opt.zero_grad(set_to_none=True)
        with amp:
            loss, parts = head_loss(
                head, data, batch, cfg, smooth=smooth, patch_loss=patch_loss, gen=gen,
                progress=progress(i),
            )  # fmt: skip
        amp.step(loss, opt)
        sched.step()
        return parts

    _run(
        {"head": head}, {"head": opt}, {"head": sched}, step, steps, args, cfg, meta,
        ema_offset=done, ema_start=ema_start,
    )  # fmt: skip


def train_torso(args, cfg: NerfConfig, data: NerfData, device, meta: dict[str, Any]) -> None:
    """The torso stage. The torso starts from scratch and its stage may be no longer than the
    memory of the weight average (``1 / (1 - ema_decay)`` steps), so the average is always
    ``torch_ema``'s (``ema_warmup``: the ``n``-th update keeps ``min(ema_decay, (1 + n) /
    (10 + n))``), which forgets the untrained start as the stage goes on. twinflow's average
    (``ema_decay`` from the first update) kept ``0.99^149`` = 22% of the first step's weights
    after the workflow's 150 ``tiny`` steps, and a torso so averaged with its untrained start
    renders with shifted colours (a light-blue shirt cyan-green) and blurred detail. The
    checkpoint's recorded preset says so."""
    cfg = replace(cfg, ema_warmup=True)
    meta["preset"] = preset_meta(cfg)
    init = load_checkpoint(args.init, expect=_expect(data), map_location=device)
    head = load_head(init, device)
    head.requires_grad_(False)
    meta["init"] = {"path": str(args.init), "steps": int(init["steps"])}
    seed_everything(args.seed)
    torso = new_torso(cfg, data.n_frames).to(device)
    steps = args.steps if args.steps is not None else cfg.torso_steps
    opt = adamw(torso.param_groups(cfg.lr, cfg.lr_net))
    sched = decay_schedule(opt, Progress(steps, args.max_minutes), cfg.lr_decay)
    gen = torch.Generator(device="cpu")
    region = data.head_region.flatten()
    if isinstance(torso, ErnerfTorso):
        step = ernerf_torso_step(torso, opt, sched, data, cfg, args, gen)
        _run({"torso": torso}, {"torso": opt}, {"torso": sched}, step, steps, args, cfg, meta)
        return

    def step(i: int) -> dict[str, float]:
        gen.manual_seed(cfg_seed(args) * 1_000_003 + i)
        batch = data.random_rays(cfg.rays, cfg.frames_per_step, 0.5, gen=gen, stage="torso")
        c2w = data.c2w[batch.frames]
        pix = batch.uv[:, 1].long() * data.res + batch.uv[:, 0].long()
        head_rgb = torch.zeros_like(batch.rgb)
        acc = torch.zeros(len(batch.uv), device=device)
        sel = region[pix]
        if sel.any():
            with torch.no_grad():
                o, d = pixel_rays(c2w[sel], data.intrinsics, batch.uv[sel])
                cond = head_conditions(
                    head,
                    data.features,
                    batch.frames[sel],
                    data.blink,
                    smooth=True,
                    codes_for=batch.frames[sel],
                )
                out = render_head_rays(head, o, d, cond, data.box, perturb=False)
            head_rgb[sel], acc[sel] = out["rgb"], out["acc"]
        code = torso.frame_codes(batch.frames, len(batch.frames))
        trgb, ta, dxy = torso_rays(torso, batch.uv, c2w, data.intrinsics, data.res, code)
        base = ta[:, None] * trgb + (1 - ta[:, None]) * batch.bg
        pred = head_rgb + (1 - acc[:, None]) * base
        opt.zero_grad(set_to_none=True)
        mse = F.mse_loss(pred, batch.rgb)
        loss = mse + cfg.lambda_entropy * binary_entropy(ta)
        parts = {"mse": mse.item()}
        if cfg.lambda_mask > 0:
            known = batch.labels < 2  # background or torso; head pixels: torso hidden or not
            target = (batch.labels == 1).float()
            bce = F.binary_cross_entropy(ta.clamp(1e-5, 1 - 1e-5), target, reduction="none")
            bce = (bce * known).sum() / known.sum().clamp(min=1)
            loss = loss + cfg.lambda_mask * bce
            parts["mask"] = bce.item()
        loss = loss + 1e-3 * (dxy**2).mean()
        loss.backward()
        opt.step()
        sched.step()
        parts["psnr"] = float(-10 * torch.log10(mse.detach().clamp(min=1e-10)))
        return parts

    _run({"torso": torso}, {"torso": opt}, {"torso": sched}, step, steps, args, cfg, meta)


def ernerf_torso_step(torso: ErnerfTorso, opt, sched, data: NerfData, cfg: NerfConfig, args, gen):
    """ER-NeRF's torso stage (``--torso``): the torso over the background against the frame with
    its head replaced by the background (ER-NeRF's ``torso_imgs`` over ``bc.jpg``), plus
    ``1e-4`` x the alpha entropy and ``(1 - w)^2`` of the anchors' homogeneous coordinate; the
    head is not rendered. The 128x128 alpha grid is re-measured every ``occ_every`` steps with
    a random training frame's camera and code (ER-NeRF: every 16)."""

    def step(i: int) -> dict[str, float]:
        gen.manual_seed(cfg_seed(args) * 1_000_003 + i)
        if i % cfg.occ_every == 0:
            f = data.train_idx[
                torch.randint(len(data.train_idx), (1,), generator=gen).to(data.device)
            ]
            pose = torso.pose_code(data.c2w[f], data.intrinsics, data.res)
            torso.update_density(pose, torso.codes[f], generator=gen)
        batch = data.random_rays(cfg.rays, cfg.frames_per_step, 0.5, gen=gen, stage="torso")
        pix = batch.uv[:, 1].long() * data.res + batch.uv[:, 0].long()
        target = data.head_bg(batch.rgb, batch.labels, pix)
        code = torso.frame_codes(batch.frames, len(batch.frames))
        rgb, alpha, _ = torso_rays(
            torso, batch.uv, data.c2w[batch.frames], data.intrinsics, data.res, code
        )
        pred = alpha[:, None] * rgb + (1 - alpha[:, None]) * batch.bg
        mse = F.mse_loss(pred, target)
        loss = mse + ((1 - torso.anchor_points[:, 3]) ** 2).mean()
        loss = loss + cfg.lambda_entropy * binary_entropy(alpha)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return {"mse": mse.item(), "psnr": float(-10 * torch.log10(mse.detach().clamp(min=1e-10)))}

    return step


def cfg_seed(args) -> int:
    return int(args.seed)


def _expect(data: NerfData) -> dict[str, Any]:
    return {"audio_features": data.feature_info["kind"], "audio_dim": int(data.features.shape[-1])}


def _run(
    modules, optims, scheds, step, steps, args, cfg: NerfConfig, meta, ema_offset=0, ema_start=None
) -> None:
    loop = LoopConfig(
        steps=steps,
        save_every=args.save_every or cfg.save_every,
        log_every=cfg.log_every,
        seed=args.seed,
        max_minutes=args.max_minutes,
        desc=f"nerf {args.stage}",
        ema_decay=cfg.ema_decay,
        ema_every=cfg.ema_every,
        ema_warmup=cfg.ema_warmup,
        ema_offset=ema_offset,
    )
    result = run_training(
        modules, optims, step, loop, args.out, meta, schedulers=scheds, ema_start=ema_start
    )
    if result.resumed_from:
        log.info("resumed from step %d", result.resumed_from)
    last = result.history[-1] if result.history else {}
    log.info(
        "%s: %d steps (%d this run) in %.1f s%s; last %s",
        args.stage, result.steps_done, result.steps_done - result.resumed_from, result.seconds,
        " (stopped early: max_minutes)" if result.stopped_early else "",
        {k: round(v, 4) for k, v in last.items()},
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.nerf.train", description=__doc__)
    p.add_argument("--stage", required=True, choices=STAGES)
    p.add_argument("--twin", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--frames", required=True)
    p.add_argument("--features", required=True)
    p.add_argument(
        "--preset", default="tiny", help="tiny, paper, or init: the --init checkpoint's model"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a preset field"
    )
    p.add_argument("--steps", type=int, default=None, help="default: the preset's for the stage")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--save-every", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default=None, help="lips: head.pt; torso: lips.pt")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--registry", default="models/registry.yaml")
    p.add_argument("--out", required=True)
    return p


def run(args: argparse.Namespace) -> None:
    from twinflow.device import pick_device
    from twinflow.nerf.model import config_from_meta
    from twinflow.presets import parse_overrides, resolve_preset

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stage in ("lips", "torso") and not args.init:
        raise TwinflowError(f"stage '{args.stage}' needs --init (the previous stage's checkpoint)")
    try:
        if args.preset == "init":  # the --init checkpoint's model, e.g. an imported ER-NeRF one
            if not args.init:
                raise ValueError("--preset init needs --init")
            from twinflow.nerf.presets import check_config

            saved = config_from_meta(load_checkpoint(args.init)["meta"])
            cfg = resolve_preset({"init": saved}, "init", parse_overrides(args.set))
            check_config(cfg)
        else:
            cfg = get_preset(args.preset, parse_overrides(args.set))
    except ValueError as err:
        raise TwinflowError(str(err)) from err
    device = pick_device(args.device)
    t0 = time.perf_counter()
    data = NerfData(args.dataset, args.frames, args.features, device=device)
    log.info(
        "data: %d frames at %d px, features %s (%s) on %s, loaded in %.1f s",
        data.n_frames,
        data.res,
        tuple(data.features.shape),
        data.feature_info["kind"],
        device,
        time.perf_counter() - t0,
    )
    meta = {
        "pipeline": "nerf",
        "stage": args.stage,
        "twin": args.twin,
        "preset_name": args.preset,
        "preset": preset_meta(cfg),
        "audio_features": data.feature_info["kind"],
        "audio_dim": int(data.features.shape[-1]),
        "n_codes": data.n_frames,
        "res": data.res,
    }
    if args.stage == "torso":
        train_torso(args, cfg, data, device, meta)
    else:
        train_head(args, cfg, data, device, meta)


def main(argv: list[str] | None = None) -> int:
    from twinflow.cli import stage_main

    return stage_main(build_parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
