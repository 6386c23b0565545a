"""MRAA settings: ``tiny`` (CPU, tests and demo), ``vox256`` and ``ted384`` (the paper's).

The paper's values come from the authors' published configs (``config/vox256.yaml`` and
``config/ted384.yaml`` of snap-research/articulated-animation). Differences, all deliberate:

* ``ted384`` uses 20 regions as in the paper's TED experiments and the published
  ``ted-youtube384.yaml``; the published ``ted384.yaml`` file itself lists 10.
* The paper schedules training in epochs over thousands of short clips (100 epochs, each a pass
  over every identity repeated ``num_repeats`` times, learning rate /10 after epochs 60 and 90).
  A twin has a few long videos, so twinflow counts optimisation ``steps`` instead and drops the
  learning rate at the same fractions of them (``lr_milestones``). ``steps`` for the paper presets
  is a GPU budget, not a number from the paper; ``epochs``/``num_repeats`` record the paper's.
* The default reconstruction loss is not VGG-19 perceptual (no pretrained network can ship with
  twinflow): see :mod:`twinflow.animate.losses`. ``recon_loss="vgg19"`` restores the paper's loss
  with a user-supplied VGG-19 state dict (``models/registry.yaml`` entry ``vgg19``).

Pick one with :func:`get_preset` (``twinflow.presets.resolve_preset`` underneath), which also
applies ``config.yaml: animate: overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twinflow.presets import resolve_preset


@dataclass(frozen=True)
class AnimateConfig:
    """One MRAA model and its training schedule.

    Frames and regions:
        size: frame side in pixels; the dataset is resized to ``size x size``.
        num_regions: K, the number of motion regions.
        revert_axis_swap: flip a region's principal axes when source and driving disagree in sign
            (PCA gives each axis up to its sign).

    Region predictor (hourglass -> K heatmaps -> shift and affine by PCA):
        region_block_expansion, region_max_features, region_num_blocks: hourglass width
            (channels double per level from ``block_expansion`` up to ``max_features``) and depth.
        region_scale_factor: the frame is downscaled by this factor before the hourglass.
        temperature: softmax temperature of the heatmaps.

    Background motion predictor:
        bg_type: ``"affine"`` (a 2x3 transform predicted from source and driving) or ``"none"``
            (identity: a static camera).
        bg_block_expansion, bg_max_features, bg_num_blocks: its encoder.

    Pixel-wise flow predictor (hourglass over K+1 warped sources and heatmap differences):
        flow_block_expansion, flow_max_features, flow_num_blocks, flow_scale_factor: as above.
        use_covar_heatmap: region Gaussians use the predicted covariances (else a fixed variance).
        estimate_occlusion: predict an occlusion map for the generator.
        occlusion_bias: initial bias of the occlusion logit. background_bias: initial bias of the
            background motion's weight in the flow softmax. 0 and 0 is the authors' init (paper
            presets). ``tiny`` starts near "the source, unmoved" (3 and 4: occlusion 0.95, the
            background's identity motion about 0.87 of the flow), which in 200-step CPU runs on
            talking heads gave a held-out L1 of 0.031 against 0.033 with 2 and 1 (copying the source:
            0.053), and the regions still carried the motion (L1 with the background motion fixed
            to the identity: 0.031 against 0.035).

    Generator (encoder -> warp with the dense flow -> occlusion mask -> bottleneck -> decoder):
        gen_block_expansion, gen_max_features, gen_num_down_blocks, gen_num_bottleneck_blocks.
        gen_skips: U-Net skips, each warped and occlusion-masked.

    AVD (animation via disentanglement) network:
        avd_hidden: widths of the MLP layers of each encoder (the decoder mirrors them).
        avd_id_bottleneck, avd_pose_bottleneck: shape and pose code sizes.

    Main training:
        steps: optimisation steps. epochs, num_repeats: the paper's schedule (for reference).
        batch_size, lr (Adam, betas 0.5/0.999 as the authors), lr_milestones: fractions of
            ``steps`` after which the learning rate drops tenfold.
        recon_loss: ``"pyramid"`` (multi-scale L1 + multi-scale gradient L1; no pretrained
            network) or ``"vgg19"`` (the paper's multi-scale perceptual loss, needs the weights).
        pyramid_scales: image pyramid for the reconstruction loss.
        l1_weight, grad_weight: weights of the pyramid L1 and gradient terms (per scale).
        perceptual_weights: weights of the 5 VGG-19 layers (``recon_loss="vgg19"``).
        equivariance_shift, equivariance_affine: weights of the equivariance losses.
        sigma_affine, sigma_tps, points_tps: the random transform of the equivariance loss.
        hflip, time_flip: augmentation probabilities (0.5 when True); jitter: colour jitter
            strength (brightness, contrast, saturation).

    AVD training (after the main model, which stays frozen):
        avd_steps, avd_batch_size, avd_lr, avd_lr_milestones, avd_random_scale (the pose input's
        regions are scaled by a random factor in [1-s, 1+s] per axis to emulate other body
        shapes), avd_lambda_shift, avd_lambda_affine.

    Evaluation:
        eval_frames: at most this many test frames per test video are reconstructed.
    """

    name: str
    size: int
    num_regions: int
    num_channels: int = 3
    revert_axis_swap: bool = True
    # region predictor
    region_block_expansion: int = 32
    region_max_features: int = 1024
    region_num_blocks: int = 5
    region_scale_factor: float = 0.25
    temperature: float = 0.1
    # background
    bg_type: str = "affine"
    bg_block_expansion: int = 32
    bg_max_features: int = 1024
    bg_num_blocks: int = 5
    # pixel-wise flow
    flow_block_expansion: int = 64
    flow_max_features: int = 1024
    flow_num_blocks: int = 5
    flow_scale_factor: float = 0.25
    use_covar_heatmap: bool = True
    estimate_occlusion: bool = True
    occlusion_bias: float = 0.0
    background_bias: float = 0.0
    # generator
    gen_block_expansion: int = 64
    gen_max_features: int = 512
    gen_num_down_blocks: int = 2
    gen_num_bottleneck_blocks: int = 6
    gen_skips: bool = True
    # AVD network
    avd_hidden: tuple[int, ...] = (256, 512, 1024)
    avd_id_bottleneck: int = 64
    avd_pose_bottleneck: int = 64
    # main training
    steps: int = 100_000
    epochs: int = 100
    num_repeats: int = 75
    batch_size: int = 14
    lr: float = 2e-4
    lr_milestones: tuple[float, ...] = (0.6, 0.9)
    recon_loss: str = "pyramid"
    pyramid_scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
    l1_weight: float = 10.0
    grad_weight: float = 10.0
    perceptual_weights: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0)
    equivariance_shift: float = 10.0
    equivariance_affine: float = 10.0
    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5
    hflip: bool = True
    time_flip: bool = True
    jitter: float = 0.1
    # AVD training
    avd_steps: int = 20_000
    avd_batch_size: int = 256
    avd_lr: float = 1e-3
    avd_lr_milestones: tuple[float, ...] = (20 / 30, 25 / 30)
    avd_random_scale: float = 0.25
    avd_lambda_shift: float = 1.0
    avd_lambda_affine: float = 1.0
    # evaluation
    eval_frames: int = 1000


PRESETS: dict[str, AnimateConfig] = {
    # 64 px, 8 regions, narrow networks: trains on 2 CPU cores in minutes. Heatmaps and flow work
    # at 32 px (scale 0.5) since 0.25 of 64 px is too coarse for a face.
    "tiny": AnimateConfig(
        name="tiny",
        size=64,
        num_regions=8,
        region_block_expansion=16,
        region_max_features=128,
        region_num_blocks=3,
        region_scale_factor=0.5,
        bg_block_expansion=8,
        bg_max_features=64,
        bg_num_blocks=3,
        flow_block_expansion=16,
        flow_max_features=128,
        flow_num_blocks=3,
        flow_scale_factor=0.5,
        occlusion_bias=3.0,
        background_bias=4.0,
        gen_block_expansion=16,
        gen_max_features=64,
        gen_num_down_blocks=2,
        gen_num_bottleneck_blocks=2,
        avd_hidden=(64, 128, 128),
        avd_id_bottleneck=16,
        avd_pose_bottleneck=16,
        steps=2000,
        epochs=0,
        num_repeats=0,
        batch_size=8,
        lr=2e-4,
        pyramid_scales=(1.0, 0.5, 0.25),
        avd_steps=1000,
        avd_batch_size=64,
        eval_frames=200,
    ),
    # The paper's VoxCeleb setting (config/vox256.yaml).
    "vox256": AnimateConfig(
        name="vox256",
        size=256,
        num_regions=10,
        batch_size=14,
        num_repeats=75,
        steps=200_000,
        avd_steps=60_000,
    ),
    # The paper's TED-talks setting (config/ted384.yaml; 20 regions as in ted-youtube384.yaml).
    "ted384": AnimateConfig(
        name="ted384",
        size=384,
        num_regions=20,
        batch_size=6,
        num_repeats=150,
        steps=300_000,
        avd_steps=20_000,
    ),
}

# Animation modes (twinflow.animate.modes); here so that parse-time code need not import torch.
MODES = ("standard", "relative", "avd")

# config.yaml's global ``preset: tiny|paper`` picks one of these unless ``animate: preset`` names one.
DEFAULT_FOR_GLOBAL = {"tiny": "tiny", "paper": "vox256"}


def get_preset(name: str, overrides: dict[str, Any] | None = None) -> AnimateConfig:
    """The preset ``name`` (``tiny``, ``vox256``, ``ted384``, or ``paper`` = ``vox256``) with
    ``overrides`` applied; unknown names or fields raise ValueError."""
    name = DEFAULT_FOR_GLOBAL.get(name, name) if name not in PRESETS else name
    cfg = resolve_preset(PRESETS, name, overrides)
    if cfg.bg_type not in ("affine", "none"):
        raise ValueError(f"bg_type must be 'affine' or 'none', not {cfg.bg_type!r}")
    if cfg.recon_loss not in ("pyramid", "vgg19"):
        raise ValueError(f"recon_loss must be 'pyramid' or 'vgg19', not {cfg.recon_loss!r}")
    return cfg
