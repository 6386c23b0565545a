"""The anchor networks: a ControlNet-guided UNet with reference tokens, and its image codec.

One :class:`Denoiser` serves the body and the head: ``unet`` (diffusers
``UNet2DConditionModel``; for the head an inpainting UNet whose input is
``[noisy, mask, masked image]`` like SD-inpainting's 9 channels, 3 + 1 + 3 = 7 in pixel space),
``controlnet`` (diffusers ``ControlNetModel``, its control image is the mesh render), ``ref``
(the reference image -> cross-attention tokens: :class:`ConvRefEncoder` or Make-Your-Anchor's
:class:`twinflow.anchor.appearance.ClipImageTokens`) and ``null`` (the unconditional tokens:
zeros, or the base model's empty-prompt embedding, :func:`attach_uncond`). Images are
``[-1, 1]`` tensors; control images ``[0, 1]`` (diffusers' convention).

Checkpoints (``body.pt``, ``head.pt``) are twinflow checkpoints
(:mod:`twinflow.train.checkpoint`): ``modules`` holds the state dicts of ``unet``,
``controlnet`` and ``ref`` (for a CLIP reference encoder only its trainable projection), ``meta``
the diffusers configs (``unet_config``, ``controlnet_config``, ``scheduler_config``) and the
preset, ``extra["reference"]`` the reference image used at inference. Loading rebuilds the
networks with ``from_config`` and needs no SD weights, except the VAE in latent space.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from twinflow.anchor.appearance import ClipImageTokens, empty_prompt_tokens
from twinflow.anchor.presets import AnchorConfig, get_preset
from twinflow.errors import TwinflowError
from twinflow.models import REGISTRY, resolve

log = logging.getLogger("twinflow.anchor.models")


# --- codecs ------------------------------------------------------------------------------------


class PixelCodec(nn.Module):
    """Pixel space: the denoiser works on the image itself."""

    scale = 1

    def encode(self, images: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
        return images

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.clamp(-1, 1)


class VaeCodec(nn.Module):
    """Latent space of a frozen SD ``AutoencoderKL`` (latents scaled by its ``scaling_factor``)."""

    scale = 8

    def __init__(self, vae):
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        self.factor = float(getattr(vae.config, "scaling_factor", 0.18215))

    @torch.no_grad()
    def encode(
        self, images: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Scaled latents: the posterior mean, or a sample (drawn with ``generator``)."""
        dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        z = dist.sample(generator=generator) if sample else dist.mean
        return z.float() * self.factor

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode((z / self.factor).to(self.vae.dtype)).sample.float().clamp(-1, 1)


# --- reference encoders ------------------------------------------------------------------------


class ConvRefEncoder(nn.Module):
    """A small convolutional image encoder trained with the model: reference image -> N tokens."""

    def __init__(self, size: int, tokens: int, width: int, dim: int):
        super().__init__()
        self.size = size
        grid = round(tokens**0.5)
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w // 4, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(w // 4, w // 2, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(w // 2, w, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(w, w, 3, padding=1),
            nn.AdaptiveAvgPool2d(grid),
        )
        self.proj = nn.Linear(w, dim)
        self.pos = nn.Parameter(torch.randn(1, grid * grid, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-1] != self.size:
            image = F.interpolate(image, size=(self.size, self.size), mode="area")
        feats = self.net(image).flatten(2).transpose(1, 2)  # (B, N, width)
        return self.norm(self.proj(feats) + self.pos)


# --- the denoiser ------------------------------------------------------------------------------


class Denoiser(nn.Module):
    """UNet + ControlNet + reference encoder; ``inpaint=True`` for the head model."""

    def __init__(self, unet, controlnet, ref: nn.Module, *, inpaint: bool):
        super().__init__()
        self.unet = unet
        self.controlnet = controlnet
        self.ref = ref
        self.inpaint = inpaint
        # unconditional tokens (1, N, D); None = zeros. Not saved: rebuilt from the base folder.
        self.register_buffer("null", None, persistent=False)

    def tokens(self, reference: torch.Tensor) -> torch.Tensor:
        """Reference image(s) ``(B, 3, H, W)`` in [-1, 1] -> tokens ``(B, N, D)``."""
        return self.ref(reference)

    def null_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """The unconditional tokens in the shape of ``tokens`` ``(B, N, D)``."""
        if self.null is None:
            return torch.zeros_like(tokens)
        if self.null.shape[1:] != tokens.shape[1:]:
            raise TwinflowError(
                f"unconditional tokens {tuple(self.null.shape[1:])} do not match the reference "
                f"tokens {tuple(tokens.shape[1:])}"
            )
        return self.null.to(tokens).expand(tokens.shape[0], -1, -1)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        control: torch.Tensor,
        tokens: torch.Tensor,
        inpaint: torch.Tensor | None = None,
        control_scale: float = 1.0,
        residual_into_mid: bool = False,
    ) -> torch.Tensor:
        """Predicted noise. ``inpaint`` is ``[mask, masked image]`` at the sample's size (head).

        ``residual_into_mid``: the ControlNet's last down-block residual is also added to the
        UNet's mid-block input, as in the reference's inflated UNet (its in-place ``+=`` on the
        skip connections reaches the mid block's input, which is the same tensor).
        """
        down, mid = self.controlnet(
            sample,
            timestep,
            encoder_hidden_states=tokens,
            controlnet_cond=control,
            conditioning_scale=control_scale,
            return_dict=False,
        )
        unet_in = torch.cat([sample, inpaint], 1) if self.inpaint else sample
        hook = None
        if residual_into_mid:
            last = down[-1]

            def add_residual(module, args, kwargs):
                return (args[0] + last, *args[1:]), kwargs

            hook = self.unet.mid_block.register_forward_pre_hook(add_residual, with_kwargs=True)
        try:
            return self.unet(
                unet_in,
                timestep,
                encoder_hidden_states=tokens,
                down_block_additional_residuals=down,
                mid_block_additional_residual=mid,
            ).sample
        finally:
            if hook is not None:
                hook.remove()


def unet_kwargs(cfg: AnchorConfig, in_channels: int, size: int) -> dict[str, Any]:
    return {
        "sample_size": size // cfg.scale,
        "in_channels": in_channels,
        "out_channels": cfg.channels,
        "block_out_channels": tuple(cfg.block_out_channels),
        "down_block_types": tuple(cfg.down_block_types),
        "up_block_types": tuple(cfg.up_block_types),
        "layers_per_block": cfg.layers_per_block,
        "attention_head_dim": cfg.attention_heads,  # diffusers: this is the number of heads
        "norm_num_groups": cfg.norm_num_groups,
        "cross_attention_dim": cfg.cross_attention_dim,
    }


def controlnet_kwargs(cfg: AnchorConfig) -> dict[str, Any]:
    return {
        "in_channels": cfg.channels,
        "block_out_channels": tuple(cfg.block_out_channels),
        "down_block_types": tuple(cfg.down_block_types),
        "layers_per_block": cfg.layers_per_block,
        "attention_head_dim": cfg.attention_heads,
        "norm_num_groups": cfg.norm_num_groups,
        "cross_attention_dim": cfg.cross_attention_dim,
        "conditioning_embedding_out_channels": tuple(cfg.cond_embed_channels),
    }


def scheduler_config(
    cfg: AnchorConfig, registry: str | Path = REGISTRY, kind: str = "body"
) -> dict[str, Any]:
    """DDPM training schedule: the SD folder's ``scheduler/`` when the preset has one."""
    from diffusers import DDPMScheduler

    if cfg.base_model:
        folder = base_folder(cfg, kind, registry)
        sched = DDPMScheduler.from_pretrained(str(folder), subfolder="scheduler")
    else:
        sched = DDPMScheduler(
            num_train_timesteps=cfg.train_timesteps,
            beta_schedule=cfg.beta_schedule,
            beta_start=cfg.beta_start,
            beta_end=cfg.beta_end,
            prediction_type="epsilon",
            # pixel space: clip the x0 estimate to the image range while sampling (DDPM's
            # default; without it the first DDIM steps from pure noise overshoot)
            clip_sample=cfg.space == "pixel",
        )
    return dict(sched.config)


def base_folder(cfg: AnchorConfig, kind: str, registry: str | Path = REGISTRY) -> Path:
    """The SD folder whose VAE, text encoder and scheduler the ``kind`` model uses: SD-1.5 for
    the body, SD-inpainting for the head (as the reference's ``--pipe_path``)."""
    name = cfg.inpaint_model if kind == "head" and cfg.inpaint_model else cfg.base_model
    return resolve(name, registry)


def build_codec(
    cfg: AnchorConfig, registry: str | Path = REGISTRY, kind: str = "body"
) -> nn.Module:
    if cfg.space == "pixel":
        return PixelCodec()
    from diffusers import AutoencoderKL

    folder = base_folder(cfg, kind, registry)
    return VaeCodec(AutoencoderKL.from_pretrained(str(folder), subfolder="vae"))


def build_ref_encoder(
    cfg: AnchorConfig, dim: int, size: int, registry: str | Path = REGISTRY
) -> nn.Module:
    """Reference images of side ``size`` -> tokens of width ``dim``."""
    if cfg.ref_encoder == "clip":
        return ClipImageTokens(resolve(cfg.clip_model, registry), dim)
    return ConvRefEncoder(min(cfg.ref_size, size), cfg.ref_tokens, cfg.ref_width, dim)


def attach_uncond(
    model: Denoiser, cfg: AnchorConfig, kind: str, registry: str | Path = REGISTRY
) -> Denoiser:
    """Set ``model.null`` for ``uncond="empty_prompt"`` (zeros otherwise)."""
    if cfg.uncond == "empty_prompt":
        n = getattr(model.ref, "tokens", cfg.ref_tokens)
        model.null = empty_prompt_tokens(base_folder(cfg, kind, registry), n)
    return model


def build_denoiser(
    cfg: AnchorConfig,
    kind: str,
    registry: str | Path = REGISTRY,
    init: str | Path | None = None,
) -> tuple[Denoiser, dict[str, Any]]:
    """A fresh (or SD-initialised) body or head denoiser and the meta that rebuilds it.

    ``init``: a twinflow anchor checkpoint of the same kind (a stage-1 pre-training, or
    Make-Your-Anchor's pre-trained weights converted by ``twinflow.convert mya``) whose UNet,
    ControlNet (and reference encoder, when it fits) start the training, as the reference's
    fine-tuning starts from ``--unet_model_name_or_path`` / ``--controlnet_model_name_or_path``.
    """
    from diffusers import ControlNetModel, UNet2DConditionModel

    if kind not in ("body", "head"):
        raise ValueError(f"kind must be body or head, got {kind!r}")
    inpaint = kind == "head"
    size = cfg.body_size if kind == "body" else cfg.head_size
    start = None
    if init is not None:
        from twinflow.train import load_checkpoint

        start = load_checkpoint(init, expect={"pipeline": "anchor", "kind": kind})
        unet = UNet2DConditionModel.from_config(start["meta"]["unet_config"])
        controlnet = ControlNetModel.from_config(start["meta"]["controlnet_config"])
        for name, net in (("unet", unet), ("controlnet", controlnet)):
            net.load_state_dict(start["modules"][name])
        want = 2 * cfg.channels + 1 if inpaint else cfg.channels
        if unet.config.in_channels != want:
            raise TwinflowError(
                f"the initial {kind} UNet takes {unet.config.in_channels} channels, this preset "
                f"{want}",
                path=init,
            )
    elif cfg.base_model:
        base = resolve(cfg.base_model, registry)
        sd_unet = UNet2DConditionModel.from_pretrained(str(base), subfolder="unet")
        if inpaint:
            if not cfg.inpaint_model:
                raise TwinflowError("anchor preset with base_model needs inpaint_model for heads")
            folder = resolve(cfg.inpaint_model, registry)
            unet = UNet2DConditionModel.from_pretrained(str(folder), subfolder="unet")
            want = 2 * cfg.channels + 1
            if unet.config.in_channels != want:
                raise TwinflowError(
                    f"inpainting UNet has {unet.config.in_channels} input channels, "
                    f"expected {want} (latents, mask, masked-image latents)",
                    path=folder,
                )
        else:
            unet = sd_unet
        controlnet = ControlNetModel.from_unet(
            sd_unet, conditioning_embedding_out_channels=tuple(cfg.cond_embed_channels)
        )
    else:
        in_ch = 2 * cfg.channels + 1 if inpaint else cfg.channels
        unet = UNet2DConditionModel(**unet_kwargs(cfg, in_ch, size))
        controlnet = ControlNetModel(**controlnet_kwargs(cfg))
    dim = unet.config.cross_attention_dim
    ref = build_ref_encoder(cfg, dim, size, registry)
    if start is not None:
        own = ref.state_dict()
        theirs = start["modules"].get("ref", {})
        if set(own) == set(theirs) and all(own[k].shape == theirs[k].shape for k in own):
            ref.load_state_dict(theirs)
        else:
            log.info("initial %s checkpoint: its reference encoder does not fit; fresh one", kind)
    model = attach_uncond(Denoiser(unet, controlnet, ref, inpaint=inpaint), cfg, kind, registry)
    meta = {
        "pipeline": "anchor",
        "kind": kind,
        "preset": cfg.name,
        "preset_values": _preset_dict(cfg),
        "unet_config": dict(unet.config),
        "controlnet_config": dict(controlnet.config),
        "scheduler_config": scheduler_config(cfg, registry, kind),
        "size": size,
    }
    if init is not None:
        meta["init"] = str(init)
    return model, meta


def _preset_dict(cfg: AnchorConfig) -> dict[str, Any]:
    from twinflow.presets import preset_dict

    return preset_dict(cfg)


def preset_from_meta(meta: dict[str, Any]) -> AnchorConfig:
    values = dict(meta["preset_values"])
    name = values.pop("name")
    return get_preset(name, {k: v for k, v in values.items() if k != "extra"})


def load_denoiser(
    path: str | Path,
    kind: str,
    registry: str | Path = REGISTRY,
    device: torch.device | str = "cpu",
) -> tuple[Denoiser, AnchorConfig, dict[str, Any]]:
    """Rebuild a trained body/head denoiser from its checkpoint: ``(model, preset, checkpoint)``."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    from twinflow.train import load_checkpoint

    if Path(path).is_dir():
        raise TwinflowError(
            f"a folder, not a twinflow anchor {kind} checkpoint; a Make-Your-Anchor checkpoint "
            f"folder (unet/, controlnet/) is converted first: python -m twinflow.convert mya "
            f"{path} --part {kind} --out {kind}.pt",
            path=path,
        )
    ckpt = load_checkpoint(path, expect={"pipeline": "anchor", "kind": kind})
    meta = ckpt["meta"]
    cfg = preset_from_meta(meta)
    unet = UNet2DConditionModel.from_config(meta["unet_config"])
    controlnet = ControlNetModel.from_config(meta["controlnet_config"])
    ref = build_ref_encoder(cfg, unet.config.cross_attention_dim, meta["size"], registry)
    model = Denoiser(unet, controlnet, ref, inpaint=kind == "head")
    for name in ("unet", "controlnet", "ref"):
        getattr(model, name).load_state_dict(ckpt["modules"][name])
    attach_uncond(model, cfg, kind, registry)
    return model.to(device).eval(), cfg, ckpt
