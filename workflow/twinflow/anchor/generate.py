"""Generate body frames or inpainted heads of one clip with a trained denoiser.

The inflated model (:func:`twinflow.anchor.attention.inflate`), window sampling and classifier-free
guidance on the reference tokens (:mod:`twinflow.anchor.sampling`), for any number of frames.
Images in and out are ``uint8`` ``(T, H, W, 3)`` arrays; masks ``(T, H, W)`` (nonzero = regenerate).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from twinflow.anchor.attention import inflate
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
    codec, images: torch.Tensor, masks: torch.Tensor, cfg: AnchorConfig
) -> torch.Tensor:
    """``[mask, masked image]`` at the denoiser's resolution (SD-inpainting's extra channels).

    ``images`` ``(B, 3, H, W)`` in [-1, 1], ``masks`` ``(B, 1, H, W)`` in {0, 1} (1 = regenerate).
    """
    masked = images * (1 - masks)
    z = codec.encode(masked)
    small = masks if cfg.scale == 1 else F.interpolate(masks, size=z.shape[-2:], mode="nearest")
    return torch.cat([small, z], 1)


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
    steps: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    batch_frames: int | None = None,
) -> np.ndarray:
    """Frames for ``controls`` (mesh renders, ``(T, S, S, 3)``) in the look of ``reference``.

    For the head model pass ``images`` (aligned crops) and ``masks`` (the region to
    regenerate). Returns ``(T, S, S, 3) uint8``.
    """
    model.eval()
    window = inflate(model.unet, model.controlnet)
    n, size = len(controls), controls.shape[1]
    guidance = cfg.guidance if guidance is None else guidance
    steps = steps or cfg.ddim_steps
    control_t = to_tensor(controls, device).add(1).div(2)  # [0, 1]
    ref = to_tensor(reference[None], device)
    tokens = model.tokens(ref)
    null = torch.zeros_like(tokens)
    extra = None
    if model.inpaint:
        if images is None or masks is None:
            raise ValueError("the head model needs images and masks")
        img_t = to_tensor(images, device)
        mask_t = torch.from_numpy((np.asarray(masks) > 0).astype(np.float32)).to(device)[:, None]
        extra = torch.cat(
            [
                inpaint_inputs(codec, img_t[i : i + 16], mask_t[i : i + 16], cfg)
                for i in range(0, n, 16)
            ]
        )

    def eps_fn(x, t, frames: slice, with_ref):
        f = x.shape[0]
        ctrl = control_t[frames]
        inp = extra[frames] if extra is not None else None
        tt = torch.full((f,), int(t), device=x.device, dtype=torch.long)
        if with_ref is None:  # unconditional half first, then conditional
            x2 = torch.cat([x, x])
            tok = torch.cat([null.expand(f, -1, -1), tokens.expand(f, -1, -1)])
            return model(
                x2,
                torch.cat([tt, tt]),
                torch.cat([ctrl, ctrl]),
                tok,
                inpaint=torch.cat([inp, inp]) if inp is not None else None,
            )
        tok = (tokens if with_ref else null).expand(f, -1, -1)
        return model(x, tt, ctrl, tok, inpaint=inp)

    scheduler = ddim_scheduler(scheduler_config)
    shape = (cfg.channels, size // cfg.scale, size // cfg.scale)
    latents = sample_video(
        eps_fn,
        n,
        shape,
        scheduler,
        steps=steps,
        window=cfg.window,
        overlap=cfg.overlap,
        guidance=guidance,
        frame_window=window,
        generator=torch.Generator().manual_seed(seed),
        device=device,
        eta=cfg.ddim_eta,
    )
    out = torch.cat([codec.decode(latents[i : i + 8]) for i in range(0, n, 8)])
    frames = to_uint8(out)
    if model.inpaint:
        # keep the known pixels exactly; only the masked region is new
        keep = (np.asarray(masks) == 0)[..., None]
        frames = np.where(keep, images, frames)
    return frames
