"""Generate body frames or inpainted heads of one clip with a trained denoiser.

The inflated model (:func:`twinflow.anchor.attention.inflate`), window sampling and classifier-free
guidance on the reference tokens (:mod:`twinflow.anchor.sampling`), for any number of frames:
:func:`denoise` (final latents), :func:`decode` (images in [-1, 1]) and :func:`generate` (both,
``uint8``). Images in and out are ``uint8`` ``(T, H, W, 3)`` arrays; masks ``(T, H, W)`` (nonzero =
regenerate). A head model that is not inflated (``inflate_head=False``, the reference's) denoises
each frame on its own, in batches of ``head_batch`` frames.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from twinflow.anchor.attention import inflate, inflate_norms
from twinflow.anchor.models import Denoiser
from twinflow.anchor.presets import AnchorConfig
from twinflow.anchor.sampling import ddim_scheduler, sample_video

log = logging.getLogger("twinflow.anchor.generate")


def to_tensor(images: np.ndarray, device="cpu") -> torch.Tensor:
    """``(T, H, W, 3) uint8`` -> ``(T, 3, H, W)`` float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` in [-1, 1] -> ``(T, H, W, 3) uint8``."""
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().byte()
    return x.permute(0, 2, 3, 1).cpu().numpy()


def inpaint_inputs(
    codec,
    images: torch.Tensor,
    masks: torch.Tensor,
    cfg: AnchorConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``[mask, masked image]`` at the denoiser's resolution (SD-inpainting's extra channels).

    ``images`` ``(B, 3, H, W)`` in [-1, 1], ``masks`` ``(B, 1, H, W)`` in {0, 1} (1 = regenerate).
    The mask channel is ``masks`` or, for ``head_mask_channel="keep"``, ``1 - masks``; the
    masked image's latents are the VAE posterior's mean, or a sample drawn with ``generator``
    (``masked_latents="sample"``).
    """
    masked = images * (1 - masks)
    sample = cfg.masked_latents == "sample" and cfg.space == "latent"
    z = codec.encode(masked, sample=sample, generator=generator) if sample else codec.encode(masked)
    if cfg.head_mask_channel == "keep":
        masks = 1 - masks
    small = masks if cfg.scale == 1 else F.interpolate(masks, size=z.shape[-2:], mode="nearest")
    return torch.cat([small, z], 1)


def control_tensor(controls: np.ndarray, device="cpu") -> torch.Tensor:
    """``(T, H, W, 3) uint8`` -> ``(T, 3, H, W)`` in [0, 1] (diffusers' control images)."""
    x = torch.from_numpy(np.ascontiguousarray(controls)).to(device)
    return x.permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def denoise(
    model: Denoiser,
    codec,
    cfg: AnchorConfig,
    scheduler_config: dict,
    controls: np.ndarray,
    reference: np.ndarray,
    *,
    images: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    guidance: float | None = None,
    control_scale: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    posterior_seed: int | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The final latents ``(T, C, h, w)`` for ``controls`` (``(T, S, S, 3)``) in the look of
    ``reference``; head models also take ``images`` and ``masks`` (nonzero = regenerate).

    ``seed`` draws the one initial noise image of all frames; ``posterior_seed`` (default
    ``seed``) seeds the generator of every head batch's masked-image latents
    (``masked_latents="sample"``). Guidance and condition scale default to the preset's values
    for the model's kind.
    """
    model.eval()
    head = model.inpaint
    inflated = cfg.inflate_head if head else True
    window = None
    if inflated:
        window = inflate(model.unet, model.controlnet if cfg.inflate_controlnet else None)
        if cfg.inflate_norm:
            inflate_norms(model.unet, model.controlnet, window=window)
    n, size = len(controls), controls.shape[1]
    if guidance is None:
        guidance = cfg.head_guidance if head else cfg.guidance
    if control_scale is None:
        control_scale = cfg.head_control_scale if head else cfg.control_scale
    steps = steps or cfg.ddim_steps
    into_mid = cfg.residual_into_mid and not head
    control_t = control_tensor(controls, device)
    ref = to_tensor(reference[None], device)
    tokens = model.tokens(ref)
    null = model.null_tokens(tokens)
    extra = None
    if head:
        if images is None or masks is None:
            raise ValueError("the head model needs images and masks")
        img_t = to_tensor(images, device)
        mask_t = torch.from_numpy((np.asarray(masks) > 0).astype(np.float32)).to(device)[:, None]
        seed_b = seed if posterior_seed is None else posterior_seed
        chunks = []
        for i in range(0, n, cfg.head_batch):
            g = torch.Generator(device=img_t.device).manual_seed(seed_b)
            j = slice(i, i + cfg.head_batch)
            chunks.append(inpaint_inputs(codec, img_t[j], mask_t[j], cfg, g))
        extra = torch.cat(chunks)

    def eps_fn(x, t, frames: slice, with_ref):
        f = x.shape[0]
        ctrl = control_t[frames]
        inp = extra[frames] if extra is not None else None
        tt = torch.full((f,), int(t), device=x.device, dtype=torch.long)
        if with_ref is None:  # unconditional half first, then conditional
            tok = torch.cat([null.expand(f, -1, -1), tokens.expand(f, -1, -1)])
            return model(
                torch.cat([x, x]),
                torch.cat([tt, tt]),
                torch.cat([ctrl, ctrl]),
                tok,
                inpaint=torch.cat([inp, inp]) if inp is not None else None,
                control_scale=control_scale,
                residual_into_mid=into_mid,
            )
        tok = (tokens if with_ref else null).expand(f, -1, -1)
        return model(
            x, tt, ctrl, tok, inpaint=inp, control_scale=control_scale, residual_into_mid=into_mid
        )

    scheduler = ddim_scheduler(scheduler_config)
    shape = (cfg.channels, size // cfg.scale, size // cfg.scale)
    if inflated:
        win, overlap, last = cfg.window, cfg.overlap, cfg.last_window
    else:  # frames are independent: batches without overlap
        win, overlap, last = cfg.head_batch, 0, "truncate"
    return sample_video(
        eps_fn,
        n,
        shape,
        scheduler,
        steps=steps,
        window=win,
        overlap=overlap,
        guidance=guidance,
        frame_window=window,
        generator=torch.Generator().manual_seed(seed),
        device=device,
        eta=cfg.ddim_eta,
        last=last,
    )


@torch.no_grad()
def decode(codec, latents: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Latents ``(T, C, h, w)`` -> images ``(T, 3, H, W)`` in [-1, 1]."""
    return torch.cat([codec.decode(latents[i : i + batch]) for i in range(0, len(latents), batch)])


@torch.no_grad()
def generate(
    model: Denoiser,
    codec,
    cfg: AnchorConfig,
    scheduler_config: dict,
    controls: np.ndarray,
    reference: np.ndarray,
    *,
    images: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    guidance: float | None = None,
    control_scale: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Frames for ``controls`` (mesh renders, ``(T, S, S, 3)``) in the look of ``reference``.

    For the head model pass ``images`` (aligned crops) and ``masks`` (the region to
    regenerate); its known pixels are kept exactly. Returns ``(T, S, S, 3) uint8``.
    """
    latents = denoise(
        model,
        codec,
        cfg,
        scheduler_config,
        controls,
        reference,
        images=images,
        masks=masks,
        guidance=guidance,
        control_scale=control_scale,
        steps=steps,
        seed=seed,
        device=device,
    )
    frames = to_uint8(decode(codec, latents))
    if model.inpaint:
        # keep the known pixels exactly; only the masked region is new
        keep = (np.asarray(masks) == 0)[..., None]
        frames = np.where(keep, images, frames)
    return frames
