"""Anchor (Make-Your-Anchor) settings: ``tiny`` (pixel space, CPU) and ``paper`` (SD-1.5 latents).

``paper`` is the authors' public code (ICTMCG/Make-Your-Anchor, ``inference.sh``,
``inference_body.py``, ``inference_face_inpainting.py``, ``train_body.sh``, ``train_head.sh``):
Stable Diffusion 1.5's UNet and a ControlNet initialised from it in the VAE's latent space at
512 px, an SD-inpainting UNet with a ControlNet for the 256 px head; appearance tokens are the
frozen CLIP ViT-B/32 vision tower's ``last_hidden_state`` (50 x 768, no projection;
``ref_encoder="clip"``, registry ``clip-vit-base-patch32``); the unconditional branch of
classifier-free guidance is the SD text encoder's embedding of the empty prompt padded to as many
tokens (``uncond="empty_prompt"``); guidance 7.5 (body) and 3.5 (head), ControlNet condition scale
2.0 (body) and 1.0 (head); 20 DDIM steps (eta 0); one initial noise image for every frame; windows
of 16 frames every 12 frames, the last ones cut at the clip's end (``last_window="truncate"``);
full-frame attention over the window in the body UNet's self-attention only (the reference's
ControlNet attends per frame, ``inflate_controlnet=False``), group-norm statistics over the
window's frames in the ResNet blocks of both (``inflate_norm=True``), and its UNet's in-place
addition of the ControlNet residuals, which adds the last one to the mid block's input too
(``residual_into_mid=True``); the head is a per-frame image
pipeline (``inflate_head=False``) whose mask channel is 1 where pixels are kept
(``head_mask_channel="keep"``) and whose masked-image latents are VAE posterior samples, one
generator seeded per batch of 30 frames (``masked_latents="sample"``, ``head_batch=30``).
Training: learning rate 1e-5, batch 4, AdamW (weight decay 1e-2), no condition dropout (the
reference image is always given), 60 epochs per stage (``epochs``).

Differences, deliberate: twinflow renders a motion in clips (one GPU job each, cross-faded) where
the reference denoises the whole motion in one pass; its head crops come from mediapipe points
(the reference: insightface on the mesh render, whose weights cannot be had).

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
        ref_encoder: ``"conv"`` (trained with the model) or ``"clip"`` (Make-Your-Anchor's: the
            frozen CLIP vision tower's ``last_hidden_state``, no projection when its width is
            the cross-attention width, else a trained linear map; see
            :mod:`twinflow.anchor.appearance`).
        clip_model: registry name of the CLIP vision folder used when ``ref_encoder="clip"``.
        ref_size: side of the reference image fed to the conv encoder.
        ref_tokens: number of reference tokens (a square number).
        ref_width: channels of the conv encoder.

    Diffusion (DDPM for training, DDIM for sampling; epsilon prediction):
        train_timesteps, beta_schedule, beta_start, beta_end.

    Conditioning renders (mesh source, :mod:`twinflow.anchor.condition`):
        condition_color: the mesh's colour (linear RGB in [0, 1]) in the shared renderer
            (:mod:`twinflow.render.mesh`: Lambert key and fill light, a little specular).
        condition_background: the colour off the mesh (RGB in [0, 1]).
        ``paper`` approximates the renders Make-Your-Anchor's models were trained on (SHOW's
        SMPL-X renders: a light blue-grey mesh on black; its sample ``seth1`` poses have a
        median foreground colour of (151, 187, 195) of 255): (0.78, 0.97, 1.0) gives the same
        median with twinflow's shading (estimated over a sphere's visible normals); ``tiny``
        keeps the renderer's default (0.72, 0.78, 0.92), median (139, 150, 177).

    Training:
        steps, head_steps: optimisation steps of the body and head models (when ``epochs`` is
            None and the run gives none).
        epochs: passes over the training frames per model and stage (``paper``: 60, the
            reference's ``--num_train_epochs``); a run's explicit steps take precedence.
        batch_size, head_batch_size, lr, head_lr, weight_decay, grad_clip.
        drop_ref: probability that a sample's reference tokens are replaced by the
            unconditional tokens (``uncond``).
        drop_control: probability that its control image is replaced by black.
        drop_both: probability that both are dropped.
        max_minutes, head_max_minutes: default wall-clock caps (None = none).

    Inference:
        ddim_steps, guidance (body), head_guidance: CFG scale on the reference tokens
            (1 = no guidance, one model call per frame). ``paper``: 7.5 and 3.5 (the authors'
            ``inference.sh``). ``tiny``: 1.0: a per-person model this small binds the appearance
            to its weights, and guidance 1.5 / 2.5 changed held-out PSNR by < 0.02 dB at twice
            the cost.
        control_scale, head_control_scale: ControlNet condition scale (its residuals are
            multiplied by it). ``paper``: 2.0 and 1.0 (``inference.sh``).
        uncond: the unconditional tokens of guidance and condition dropout: ``"zeros"`` or
            ``"empty_prompt"`` (the base model's text encoder on ``""`` padded to the number of
            reference tokens, Make-Your-Anchor's).
        ddim_eta: DDIM's eta. 0 is deterministic DDIM (the authors' pipeline); tiny uses 1
            (DDPM-like variance, the noise shared by all frames): a briefly trained pixel-space
            model leaves visible noise with eta 0 (PSNR 14.3 vs 18.1 dB in a test).
        window, overlap: frames per inflated-attention window and frames shared by neighbours.
        last_window: ``"truncate"`` (the reference: a window starts every ``window - overlap``
            frames and is cut at the clip's end, so the last ones can be short) or ``"shift"``
            (the last window is moved back to end at the last frame: no short windows).
        inflate_controlnet: full-frame self-attention in the ControlNet too (the reference's
            ControlNet attends per frame).
        inflate_norm: the ResNet blocks' group norms (and the UNet's output norm) of UNet and
            ControlNet take their statistics over all frames of the window, as the reference's
            inflated 3D models do (:func:`twinflow.anchor.attention.inflate_norms`).
        residual_into_mid: the body ControlNet's last down-block residual is added to the UNet's
            mid-block input as well as to its skip connection: the reference's inflated UNet adds
            the residuals in place (``+=``), and its last skip tensor is the mid block's input.
        inflate_head: the head model denoises windows with full-frame attention like the body
            (the reference's head is a per-frame image pipeline).
        head_mask_channel: the head UNet's mask channel: ``"regenerate"`` (1 where the face is
            regenerated, SD-inpainting's) or ``"keep"`` (1 where pixels are kept,
            Make-Your-Anchor's masks).
        masked_latents: the head's masked-image latents (latent space): ``"mean"`` of the VAE
            posterior or a ``"sample"`` (the reference), drawn per batch of ``head_batch``
            frames with a generator seeded anew for each batch.
        head_batch: frames per head batch (the reference's ``--batch_size 30``).
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
    condition_color: tuple[float, float, float] = (0.72, 0.78, 0.92)
    condition_background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ref_encoder: str = "conv"
    clip_model: str = "clip-vit-base-patch32"
    ref_size: int = 64
    ref_tokens: int = 16
    ref_width: int = 64
    train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 0.0001
    beta_end: float = 0.02
    steps: int = 1500
    epochs: int | None = None
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
    control_scale: float = 1.0
    head_control_scale: float = 1.0
    uncond: str = "zeros"
    window: int = 16
    overlap: int = 4
    last_window: str = "shift"
    inflate_controlnet: bool = True
    inflate_norm: bool = False
    residual_into_mid: bool = False
    inflate_head: bool = True
    head_mask_channel: str = "regenerate"
    masked_latents: str = "mean"
    head_batch: int = 16
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
    condition_color=(0.78, 0.97, 1.0),
    ref_encoder="clip",
    ref_size=224,
    ref_tokens=64,
    ref_width=256,
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    beta_end=0.012,
    steps=30000,
    head_steps=20000,
    epochs=60,
    batch_size=4,
    head_batch_size=4,
    lr=1e-5,
    head_lr=1e-5,
    weight_decay=1e-2,
    drop_ref=0.0,
    drop_control=0.0,
    drop_both=0.0,
    guidance=7.5,
    head_guidance=3.5,
    control_scale=2.0,
    head_control_scale=1.0,
    uncond="empty_prompt",
    ddim_eta=0.0,
    last_window="truncate",
    inflate_controlnet=False,
    inflate_norm=True,
    residual_into_mid=True,
    inflate_head=False,
    head_mask_channel="keep",
    masked_latents="sample",
    head_batch=30,
)

PRESETS = {"tiny": TINY, "paper": PAPER}


def get_preset(name: str, overrides: dict[str, Any] | None = None) -> AnchorConfig:
    """Preset ``name`` with single fields overridden (``config.yaml: anchor: overrides``)."""
    cfg = resolve_preset(PRESETS, name, overrides)
    if cfg.space not in ("pixel", "latent"):
        raise ValueError(f"anchor: space must be pixel or latent, got {cfg.space!r}")
    if cfg.ref_encoder not in ("conv", "clip"):
        raise ValueError(f"anchor: ref_encoder must be conv or clip, got {cfg.ref_encoder!r}")
    for name, allowed in (
        ("uncond", ("zeros", "empty_prompt")),
        ("last_window", ("shift", "truncate")),
        ("head_mask_channel", ("regenerate", "keep")),
        ("masked_latents", ("mean", "sample")),
    ):
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"anchor: {name} must be one of {allowed}, got {getattr(cfg, name)!r}")
    if cfg.uncond == "empty_prompt" and not cfg.base_model:
        raise ValueError("anchor: uncond=empty_prompt needs base_model (its text encoder)")
    if cfg.head_batch < 1:
        raise ValueError(f"anchor: head_batch must be at least 1, got {cfg.head_batch}")
    if cfg.overlap >= cfg.window:
        raise ValueError(f"anchor: overlap ({cfg.overlap}) must be below window ({cfg.window})")
    levels = len(cfg.block_out_channels) - 1
    for what, size in (("body_size", cfg.body_size), ("head_size", cfg.head_size)):
        if size % (cfg.scale * 2**levels):
            raise ValueError(
                f"anchor: {what}={size} must be a multiple of {cfg.scale * 2**levels} "
                f"({'VAE /8, ' if cfg.scale > 1 else ''}{levels} UNet downsamplings)"
            )
    if cfg.ref_encoder == "conv" and round(cfg.ref_tokens**0.5) ** 2 != cfg.ref_tokens:
        raise ValueError(f"anchor: ref_tokens={cfg.ref_tokens} must be a square number")
    return cfg
