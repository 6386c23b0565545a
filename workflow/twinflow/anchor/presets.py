"""Anchor (Make-Your-Anchor) settings: ``tiny`` (pixel space, CPU) and ``paper`` (SD-1.5 latents).

``paper`` follows Huang et al., CVPR 2024 and the authors' public inference code
(ICTMCG/Make-Your-Anchor): Stable Diffusion 1.5's UNet and a ControlNet initialised from it
(both fine-tuned per person) in the VAE's latent space at 512 px, an SD-inpainting UNet with a
ControlNet for the 256 px head, 20 DDIM steps, windows of 16 frames overlapping by 4, the same
initial noise for every frame, classifier-free guidance 1.5 (their ``--CFG`` default). The
reference image enters through cross-attention tokens; the authors use a CLIP image encoder
(``clip-vit-large-patch14`` in the model registry, needs ``transformers``), twinflow's default is
a small convolutional encoder trained with the model (``ref_encoder="conv"``).

Differences, deliberate: the paper trains in two stages (a multi-person pre-training, then the
person); twinflow runs the per-person stage only, for ``steps`` optimisation steps rather than the
paper's epochs. Condition dropout rates for classifier-free guidance are twinflow's choice.

``tiny`` keeps the method (UNet + ControlNet from diffusers configs, reference tokens, inflated
attention, windows, head inpainting) at 64 px in pixel space (head crops 32 px), with attention
only at the lowest resolution (8x8; 4x4 for heads): inflated self-attention over a 16-frame window
at 16x16 already costs half of a CPU forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twinflow.presets import resolve_preset


@dataclass(frozen=True)
class AnchorConfig:
    """One anchor model pair (body, head) and its schedules.

    Space and sizes:
        space: ``"pixel"`` (the denoiser works on RGB in [-1, 1]) or ``"latent"`` (the SD VAE's
            latents, scaled by its ``scaling_factor``).
        body_size: side of body frames in pixels (the output video's size).
        head_size: side of the aligned head crop in pixels.
        head_scale: the crop's side as a multiple of the distance between the eye centres and the
            mouth centre's span (see :mod:`twinflow.anchor.head_align`).

    Networks (built from these configs when ``base_model`` is None):
        base_model: registry name of an SD-1.5 diffusers folder (``unet/``, ``vae/``,
            ``scheduler/``), or None for configs built here.
        inpaint_model: registry name of an SD-inpainting folder (9-channel UNet) for the head.
        block_out_channels, down_block_types, up_block_types, layers_per_block, attention_heads,
            norm_num_groups: UNet/ControlNet structure (ControlNets mirror their UNet's encoder).
        cross_attention_dim: width of the reference tokens.
        cond_embed_channels: ControlNet conditioning embedding; one entry = no downsampling
            (pixel space), four = /8 (image -> latent size).
        ref_encoder: ``"conv"`` (trained with the model) or ``"clip"`` (frozen CLIP vision
            tower from the registry; needs ``transformers``).
        clip_model: registry name used when ``ref_encoder="clip"``.
        ref_size: side of the reference image fed to the conv encoder.
        ref_tokens: number of reference tokens (a square number).
        ref_width: channels of the conv encoder.

    Diffusion (DDPM for training, DDIM for sampling; epsilon prediction):
        train_timesteps, beta_schedule, beta_start, beta_end.

    Training:
        steps, head_steps: optimisation steps of the body and head models.
        batch_size, head_batch_size, lr, head_lr, weight_decay, grad_clip.
        drop_ref: probability that a sample's reference tokens are replaced by zeros.
        drop_control: probability that its control image is replaced by black.
        drop_both: probability that both are dropped.
        max_minutes, head_max_minutes: default wall-clock caps (None = none).

    Inference:
        ddim_steps, guidance (body), head_guidance: CFG scale on the reference tokens
            (1 = no guidance, one model call per frame). ``paper``: 1.5 (the authors' default).
            ``tiny``: 1.0: a per-person model this small binds the appearance to its weights,
            and guidance 1.5 / 2.5 changed held-out PSNR by < 0.02 dB at twice the cost.
        ddim_eta: DDIM's eta. 0 is deterministic DDIM (the authors' pipeline); tiny uses 1
            (DDPM-like variance, the noise shared by all frames): a briefly trained pixel-space
            model leaves visible noise with eta 0 (PSNR 14.3 vs 18.1 dB in a test).
        window, overlap: frames per inflated-attention window and frames shared by neighbours.
        feather: width of the head blend mask's feather, as a fraction of the head crop.
        mask_dilate: the face mask is dilated by this fraction of the crop before inpainting.
    """

    name: str
    space: str
    body_size: int
    head_size: int
    head_scale: float = 3.2
    base_model: str | None = None
    inpaint_model: str | None = None
    block_out_channels: tuple[int, ...] = (16, 32, 64, 64)
    down_block_types: tuple[str, ...] = (
        "DownBlock2D",
        "DownBlock2D",
        "DownBlock2D",
        "CrossAttnDownBlock2D",
    )
    up_block_types: tuple[str, ...] = (
        "CrossAttnUpBlock2D",
        "UpBlock2D",
        "UpBlock2D",
        "UpBlock2D",
    )
    layers_per_block: int = 1
    attention_heads: int = 4
    norm_num_groups: int = 8
    cross_attention_dim: int = 64
    cond_embed_channels: tuple[int, ...] = (16,)
    ref_encoder: str = "conv"
    clip_model: str = "clip-vit-large-patch14"
    ref_size: int = 64
    ref_tokens: int = 16
    ref_width: int = 64
    train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 0.0001
    beta_end: float = 0.02
    steps: int = 1500
    head_steps: int = 800
    batch_size: int = 4
    head_batch_size: int = 8
    lr: float = 5e-4
    head_lr: float = 5e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    drop_ref: float = 0.1
    drop_control: float = 0.05
    drop_both: float = 0.05
    max_minutes: float | None = None
    head_max_minutes: float | None = None
    ddim_steps: int = 20
    ddim_eta: float = 1.0
    guidance: float = 1.0
    head_guidance: float = 1.0
    window: int = 16
    overlap: int = 4
    feather: float = 0.12
    mask_dilate: float = 0.06
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        """Channels of what the denoiser sees: RGB in pixel space, 4 SD latents otherwise."""
        return 3 if self.space == "pixel" else 4

    @property
    def scale(self) -> int:
        """Pixels per denoiser cell: 1 in pixel space, 8 for the SD VAE."""
        return 1 if self.space == "pixel" else 8


TINY = AnchorConfig(name="tiny", space="pixel", body_size=64, head_size=32)

PAPER = AnchorConfig(
    name="paper",
    space="latent",
    body_size=512,
    head_size=256,
    base_model="stable-diffusion-v1-5",
    inpaint_model="stable-diffusion-inpainting",
    # SD-1.5's UNet (ignored when the registry folder is supplied: its own config is used).
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=(
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    up_block_types=(
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    layers_per_block=2,
    attention_heads=8,
    norm_num_groups=32,
    cross_attention_dim=768,
    cond_embed_channels=(16, 32, 96, 256),
    ref_size=224,
    ref_tokens=64,
    ref_width=256,
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    beta_end=0.012,
    steps=30000,
    head_steps=20000,
    batch_size=4,
    head_batch_size=8,
    lr=1e-5,
    head_lr=1e-5,
    weight_decay=1e-2,
    guidance=1.5,
    head_guidance=1.5,
    ddim_eta=0.0,
)

PRESETS = {"tiny": TINY, "paper": PAPER}


def get_preset(name: str, overrides: dict[str, Any] | None = None) -> AnchorConfig:
    """Preset ``name`` with single fields overridden (``config.yaml: anchor: overrides``)."""
    cfg = resolve_preset(PRESETS, name, overrides)
    if cfg.space not in ("pixel", "latent"):
        raise ValueError(f"anchor: space must be pixel or latent, got {cfg.space!r}")
    if cfg.ref_encoder not in ("conv", "clip"):
        raise ValueError(f"anchor: ref_encoder must be conv or clip, got {cfg.ref_encoder!r}")
    if cfg.overlap >= cfg.window:
        raise ValueError(f"anchor: overlap ({cfg.overlap}) must be below window ({cfg.window})")
    levels = len(cfg.block_out_channels) - 1
    for what, size in (("body_size", cfg.body_size), ("head_size", cfg.head_size)):
        if size % (cfg.scale * 2**levels):
            raise ValueError(
                f"anchor: {what}={size} must be a multiple of {cfg.scale * 2**levels} "
                f"({'VAE /8, ' if cfg.scale > 1 else ''}{levels} UNet downsamplings)"
            )
    if round(cfg.ref_tokens**0.5) ** 2 != cfg.ref_tokens:
        raise ValueError(f"anchor: ref_tokens={cfg.ref_tokens} must be a square number")
    return cfg
