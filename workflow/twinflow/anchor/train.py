"""Per-twin training of the body and head denoisers (both UNet and ControlNet are trained).

A sample is a frame, its conditioning render and a random reference frame from the same clip
(never from the held-out block). The loss is the MSE between the true and predicted noise at a
random DDPM timestep (epsilon prediction). Condition dropout for classifier-free guidance: with
probability ``drop_ref`` the reference tokens are replaced by the unconditional ones (zeros or the
empty prompt's, ``uncond``), ``drop_control`` the control image is black, ``drop_both`` both (the
``paper`` preset, like the reference, drops nothing). The head model is trained the same way on aligned head crops as an
inpainting model: its input adds the face mask and the crop with the face blanked out, that crop
taken from the body-size frame (at inference it comes from a generated body frame), while the
target is the crop of the full-size frame.

Training runs through :func:`twinflow.train.run_training`: a resumable state is saved every
``save_every`` steps next to the output (``<out>.resume.pt``), a rerun after a kill continues from
it, and the final checkpoint (see :mod:`twinflow.anchor.models`) is written atomically.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from twinflow.anchor import runtime
from twinflow.anchor.data import ClipSet, load_clips
from twinflow.anchor.generate import inpaint_inputs, to_tensor
from twinflow.anchor.models import Denoiser, build_codec, build_denoiser
from twinflow.anchor.presets import AnchorConfig, get_preset
from twinflow.errors import InputError
from twinflow.models import REGISTRY
from twinflow.presets import parse_overrides
from twinflow.train import LoopConfig, TrainResult, run_training, seed_everything

log = logging.getLogger("twinflow.anchor.train")


def _views(data: ClipSet, kind: str):
    """``(targets, controls, masks, inpainting context)`` of the body or head model."""
    a = data.arrays
    if kind == "body":
        return a["frames"], a["condition"], None, None
    return a["head"], a["head_condition"], a["head_mask"], a["head_context"]


def epoch_steps(cfg: AnchorConfig, frames: int, batch: int) -> int | None:
    """Optimisation steps of ``cfg.epochs`` passes over ``frames`` training frames in batches
    of ``batch`` (the reference's ``--num_train_epochs``, the last batch of an epoch partial);
    None when the preset counts steps instead."""
    if not cfg.epochs:
        return None
    return cfg.epochs * -(-frames // batch)


def denoising_loss(
    model: Denoiser,
    codec,
    cfg: AnchorConfig,
    alphas: torch.Tensor,
    x0: torch.Tensor,
    control: torch.Tensor,
    reference: torch.Tensor,
    *,
    known: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training loss of one batch: MSE between the noise added at random DDPM timesteps and
    the predicted noise (epsilon prediction), with the preset's condition dropout.

    ``x0`` ``(B, C, h, w)``: clean images (pixel space) or their VAE latents; ``control``
    ``(B, 3, H, W)`` in [0, 1]; ``reference`` ``(B, 3, R, R)`` in [-1, 1]; ``alphas``: the
    scheduler's ``alphas_cumprod`` ``(T,)``. Head model: ``known`` ``(B, 3, H, W)`` in [-1, 1] (the
    crop whose masked part is regenerated) and ``mask`` ``(B, 1, H, W)`` (1 = regenerate).
    """
    batch = x0.shape[0]
    noise = torch.randn_like(x0)
    t = torch.randint(0, len(alphas), (batch,), device=x0.device)
    a = alphas[t].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    tokens = model.tokens(reference)
    r = torch.rand(batch, device=x0.device)
    drop_ref = (r < cfg.drop_ref) | (r >= 1 - cfg.drop_both)
    drop_ctrl = ((r >= cfg.drop_ref) & (r < cfg.drop_ref + cfg.drop_control)) | (
        r >= 1 - cfg.drop_both
    )
    tokens = torch.where(drop_ref.view(-1, 1, 1), model.null_tokens(tokens), tokens)
    control = control * (~drop_ctrl).float().view(-1, 1, 1, 1)
    inpaint = None if known is None else inpaint_inputs(codec, known, mask, cfg)
    eps = model(xt, t, control, tokens, inpaint=inpaint)
    return F.mse_loss(eps.float(), noise)


def train_model(
    kind: str,
    data: ClipSet,
    cfg: AnchorConfig,
    out: str | Path,
    *,
    steps: int | None = None,
    max_minutes: float | None = None,
    save_every: int = 100,
    log_every: int = 25,
    seed: int = 0,
    registry: str | Path = REGISTRY,
    device: torch.device | str = "cpu",
    init: str | Path | None = None,
) -> TrainResult:
    """Train the ``kind`` (``"body"`` or ``"head"``) denoiser on ``data``; write ``out``.

    ``init``: a twinflow anchor checkpoint to start from (stage-1 weights, see
    :func:`twinflow.anchor.models.build_denoiser`); else SD's weights (``paper``) or random."""
    device = torch.device(device)
    images, controls, masks, context = _views(data, kind)
    if len(data.train) == 0:
        raise InputError("no training frames (all frames are held out)")
    train_idx, pools = data.train, data.same_clip_train()
    if kind == "head":  # a frame without a face has no head crop to learn from
        train_idx, pools = data.train_with_face, data.same_clip_train(with_face=True)
        log.info(
            "head model: %d of %d training frames show the face", len(train_idx), len(data.train)
        )
        if len(train_idx) == 0:
            log.warning(
                "no training frame shows the face: the head model is not trained (0 steps) and "
                "the head pass keeps the body model's head on every frame"
            )
    clip_of = data.clip
    ref_index = data.reference_index()

    seed_everything(seed)  # same initial weights for a given seed, resumed or not
    model, meta = build_denoiser(cfg, kind, registry, init=init)
    model.to(device)
    codec = build_codec(cfg, registry, kind).to(device)
    sched_cfg = meta["scheduler_config"]
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(sched_cfg)
    alphas = scheduler.alphas_cumprod.to(device)

    # Images stay uint8 in memory (a paper-size twin has thousands of 512 px frames) and are
    # converted per batch; in latent space every image is encoded once (VAE means).
    def images_at(idx) -> torch.Tensor:
        return to_tensor(images[idx], device)

    if cfg.space == "latent":
        with torch.no_grad():
            x0_all = torch.cat(
                [
                    codec.encode(images_at(np.arange(i, min(i + 8, len(images))))).cpu()
                    for i in range(0, len(images), 8)
                ]
            )
    else:
        x0_all = None
    mask_all = (
        torch.from_numpy((masks > 0).astype(np.float32))[:, None] if masks is not None else None
    )
    batch = cfg.batch_size if kind == "body" else cfg.head_batch_size
    lr = cfg.lr if kind == "body" else cfg.head_lr
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    log.info(
        "%s model: %.2fM trainable parameters, %d training frames in %d clips, batch %d",
        kind,
        sum(p.numel() for p in params) / 1e6,
        len(train_idx),
        len(pools),
        batch,
    )

    def step(i: int) -> dict[str, float]:
        idx = np.random.choice(train_idx, batch)
        ref_idx = np.array([np.random.choice(pools[clip_of[j]]) for j in idx])
        x0 = images_at(idx) if x0_all is None else x0_all[idx].to(device)
        ctrl = to_tensor(controls[idx], device).add(1).div(2)
        known = mask = None
        if kind == "head":
            # the known pixels come from the body-size frame, as at inference
            known, mask = to_tensor(context[idx], device), mask_all[idx].to(device)
        loss = denoising_loss(
            model, codec, cfg, alphas, x0, ctrl, images_at(ref_idx), known=known, mask=mask
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        return {"loss": loss.item()}

    modules = {"unet": model.unet, "controlnet": model.controlnet, "ref": model.ref}
    total = steps or epoch_steps(cfg, len(train_idx), batch)
    total = total or (cfg.steps if kind == "body" else cfg.head_steps)
    total = total if len(train_idx) else 0
    limit = max_minutes or (cfg.max_minutes if kind == "body" else cfg.head_max_minutes)
    loop = LoopConfig(
        steps=total,
        save_every=save_every,
        log_every=log_every,
        seed=seed,
        max_minutes=limit,
        desc=f"anchor {kind}",
    )
    reference = images[ref_index]
    extra = {
        "reference": reference,
        "reference_frame": int(data.arrays["frame_index"][ref_index]),
        "clips": [info.get("clip") for info in data.infos],
        "face_frames": int(len(train_idx)),
    }
    result = run_training(modules, {"opt": opt}, step, loop, out, meta, extra_state=extra)
    if result.resumed_from:
        log.info("resumed from step %d", result.resumed_from)
    log.info(
        "%s: %d steps (%d this run) in %.1f s%s",
        kind,
        result.steps_done,
        result.steps_done - result.resumed_from,
        result.seconds,
        ", stopped at the time limit" if result.stopped_early else "",
    )
    return result


def build_parser(kind: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"twinflow.anchor.train_{kind}", description=f"Train the anchor {kind} model."
    )
    p.add_argument("--twin", required=True)
    p.add_argument("--data", nargs="+", required=True, help="clip .npz files (anchor dataset)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--set", action="append", default=[], help="preset field=value")
    p.add_argument("--steps", type=int, default=None, help="default: the preset's")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--registry", default=str(REGISTRY))
    p.add_argument("--init", default=None, help="start from this anchor checkpoint (stage 1)")
    p.add_argument("--out", required=True)
    runtime.add_args(p)
    return p


def run(kind: str, args: argparse.Namespace) -> None:
    device = runtime.setup(args.device, args.threads)
    try:
        cfg = get_preset(args.preset, parse_overrides(args.set))
    except ValueError as err:
        raise InputError(str(err)) from None
    data = load_clips(args.data)
    init = args.init
    if init and not Path(init).exists():  # a registry name: verified like every model file
        from twinflow.models import resolve

        init = resolve(init, args.registry)
    train_model(
        kind,
        data,
        cfg,
        args.out,
        steps=args.steps,
        max_minutes=args.max_minutes,
        save_every=args.save_every,
        seed=args.seed,
        registry=args.registry,
        device=device,
        init=init,
    )
