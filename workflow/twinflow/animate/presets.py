"""MRAA settings: ``tiny`` (CPU, tests and demo) and the reference's published configs.

``vox256``, ``ted384``, ``ted-youtube384``, ``taichi256`` and ``mgif256`` are the files
``config/<name>.yaml`` of snap-research/articulated-animation (commit 03f1968): the same
networks (regions, widths, depths, scale factors, the region head's ``pad``, the background
motion type), the same training schedule (``epochs`` over the training videos repeated
``num_repeats`` times, learning rate /10 after ``epoch_milestones``; the AVD network likewise)
and the same augmentations. Their weights convert with ``python -m twinflow.convert mraa``.

Differences, all deliberate and named:

* ``recon_loss``: the default ``"pyramid"`` loss needs no pretrained network (none can ship with
  twinflow); ``recon_loss="vgg19"`` is the reference's multi-scale VGG-19 perceptual loss with a
  user-supplied VGG-19 (``models/registry.yaml`` entry ``vgg19``). See
  :mod:`twinflow.animate.losses`.
* ``steps``: ``None`` (the paper presets) trains for the reference's epochs; a number of
  optimisation steps instead (``tiny``, or ``config.yaml: animate: steps``) drops the learning
  rate at the same fractions of it (``epoch_milestones / epochs``). A twin has a few videos where
  the reference has thousands, so the epoch schedule of a twin is short: see the README.
* ``occlusion_bias``, ``background_bias``: initial biases (0 in the reference presets).
* ``align_corners``: the reference's sampling convention (False) in its presets; ``tiny`` uses
  True (at 64 px the reference's half-pixel offset zooms animations by 3 %; see the field).

Pick one with :func:`get_preset` (``twinflow.presets.resolve_preset`` underneath), which also
applies ``config.yaml: animate: overrides``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from twinflow.presets import resolve_preset


@dataclass(frozen=True)
class AnimateConfig:
    """One MRAA model and its training schedule (reference names in brackets).

    Frames and regions:
        size: frame side in pixels; the dataset is resized to ``size x size``.
        align_corners: the sampling convention of every ``grid_sample`` and bilinear resize.
            False is the reference's (its presets; its weights need it): the coordinate grid
            puts -1 and 1 at the outer pixels' centres but sampling reads them as the outer
            edges, so the identity motion reads each pixel ``n / (n_flow - 1) * scale`` further
            from the centre: a zoom of 1.6 % for vox256's 64 px flow, 3.2 % for ``tiny``'s 32 px.
            Training learns a background motion that undoes it, but animation uses none (as the
            reference), so at 64 px the regions then carry the motion badly: on the demo twin,
            L1 of held-out frames with the background fixed to the identity 0.074 (False)
            against 0.029 (True), full reconstruction 0.028 either way. ``tiny`` therefore uses
            True (corners at pixel centres: the identity motion reads every pixel in place).
        num_regions: K, the number of motion regions [num_regions].
        revert_axis_swap: flip a region's principal axes when source and driving disagree in sign
            (an SVD gives each axis up to its sign) [revert_axis_swap].

    Region predictor (hourglass -> K heatmaps -> shift and affine by PCA):
        region_block_expansion, region_max_features, region_num_blocks: hourglass width
            (channels double per level from ``block_expansion`` up to ``max_features``) and depth.
        region_scale_factor: the frame is downscaled by this factor (1/n) before the hourglass.
        region_pad: zero padding of the 7x7 heatmap head [pad]: 3 keeps the hourglass' size, 0
            (ted, taichi, mgif) makes the heatmaps 6 pixels smaller.
        temperature: softmax temperature of the heatmaps.

    Background motion predictor [bg_predictor_params]:
        bg_type: ``"zero"`` (identity: a static camera), ``"shift"`` (a translation),
            ``"affine"`` (2x3) or ``"perspective"`` (a homography with the last entry 1),
            predicted from source and driving. ``"none"`` is read as ``"zero"``.
        bg_block_expansion, bg_max_features, bg_num_blocks: its encoder.

    Pixel-wise flow predictor (hourglass over K+1 warped sources and heatmap differences):
        flow_block_expansion, flow_max_features, flow_num_blocks, flow_scale_factor: as above.
        use_covar_heatmap: region Gaussians use the predicted covariances, else the variance
            ``region_var`` [region_var].
        estimate_occlusion: predict an occlusion map for the generator.
        occlusion_bias, background_bias: initial bias of the occlusion logit and of the
            background motion's weight in the flow softmax. 0 and 0 is the reference's init (its
            presets). ``tiny`` starts near "the source, unmoved" (3 and 4: occlusion 0.95, the
            background's identity motion about 0.87 of the flow), which in 200-step CPU runs on
            talking heads gave a held-out L1 of 0.031 against 0.033 with 2 and 1 (copying the
            source: 0.053).

    Generator (encoder -> warp with the dense flow -> occlusion mask -> bottleneck -> decoder):
        gen_block_expansion, gen_max_features, gen_num_down_blocks, gen_num_bottleneck_blocks.
        gen_skips: U-Net skips, each warped and occlusion-masked.

    AVD (animation via disentanglement) network:
        avd_hidden: widths of the MLP layers of each encoder (the decoder mirrors them); the
            reference's are fixed at 256, 512, 1024.
        avd_id_bottleneck, avd_pose_bottleneck: shape and pose code sizes.

    Main training [train_params]:
        steps: optimisation steps, or None for the reference's schedule: ``epochs`` passes over
            the training videos, each repeated ``num_repeats`` times, in batches of
            ``batch_size`` (incomplete batches dropped).
        epoch_milestones: the learning rate drops tenfold after these epochs (with ``steps``:
            after these fractions ``epoch_milestones / epochs`` of the steps).
        batch_size, lr: Adam (betas 0.5, 0.999 as the reference).
        recon_loss: ``"pyramid"`` (multi-scale L1 + multi-scale gradient L1; no pretrained
            network) or ``"vgg19"`` (the reference's multi-scale perceptual loss).
        pyramid_scales: image pyramid of the reconstruction loss [scales].
        l1_weight, grad_weight: weights of the pyramid L1 and gradient terms (per scale).
        perceptual_weights: weights of the 5 VGG-19 layers (``recon_loss="vgg19"``).
        equivariance_shift, equivariance_affine: weights of the equivariance losses.
        sigma_affine, sigma_tps, points_tps: the random transform of the equivariance loss.

    Augmentation of each training pair [augmentation_params], in the reference's order:
        time_flip, hflip: with probability 0.5 source and driving swap places; otherwise, with
            probability 0.5, both are mirrored (the reference's ``RandomFlip``: a pair is never
            both swapped and mirrored).
        resize_ratio: ``(low, high)`` or empty: both frames scaled by one random factor in that
            range, then cropped or edge-padded back to ``size`` (mgif's resize + crop).
        brightness, contrast, saturation, hue: colour jitter strengths; one set of random
            factors per pair, applied in a random order (the reference's ``ColorJitter``).

    AVD training [train_avd_params] (after the main model, which stays frozen):
        avd_steps (None: ``avd_epochs`` x ``avd_num_repeats`` as above), avd_epoch_milestones,
        avd_batch_size, avd_lr, avd_random_scale (the pose input's regions are scaled by a
        random factor in [1-s, 1+s] per axis to emulate other body shapes), avd_lambda_shift,
        avd_lambda_affine.

    Evaluation:
        eval_frames: at most this many test frames per test video are reconstructed.
    """

    name: str
    size: int
    num_regions: int
    num_channels: int = 3
    align_corners: bool = False
    revert_axis_swap: bool = True
    # region predictor
    region_block_expansion: int = 32
    region_max_features: int = 1024
    region_num_blocks: int = 5
    region_scale_factor: float = 0.25
    region_pad: int = 3
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
    region_var: float = 0.01
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
    steps: int | None = None
    epochs: int = 100
    num_repeats: int = 75
    epoch_milestones: tuple[int, ...] = (60, 90)
    batch_size: int = 14
    lr: float = 2e-4
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
    # augmentation
    time_flip: bool = True
    hflip: bool = True
    resize_ratio: tuple[float, ...] = ()
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.1
    # AVD training
    avd_steps: int | None = None
    avd_epochs: int = 30
    avd_num_repeats: int = 2000
    avd_epoch_milestones: tuple[int, ...] = (20, 25)
    avd_batch_size: int = 256
    avd_lr: float = 1e-3
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
        align_corners=True,
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
        batch_size=8,
        lr=2e-4,
        pyramid_scales=(1.0, 0.5, 0.25),
        avd_steps=1000,
        avd_batch_size=64,
        eval_frames=200,
    ),
    # config/vox256.yaml (the region head keeps the default pad 3).
    "vox256": AnimateConfig(
        name="vox256", size=256, num_regions=10, num_repeats=75, batch_size=14, avd_num_repeats=2000
    ),
    # config/ted384.yaml: 10 regions (the paper's TED table uses 20: ted-youtube384).
    "ted384": AnimateConfig(
        name="ted384",
        size=384,
        num_regions=10,
        region_pad=0,
        num_repeats=150,
        batch_size=6,
        avd_num_repeats=150,
    ),
    # config/ted-youtube384.yaml: 20 regions.
    "ted-youtube384": AnimateConfig(
        name="ted-youtube384",
        size=384,
        num_regions=20,
        region_pad=0,
        num_repeats=150,
        batch_size=20,
        avd_num_repeats=500,
    ),
    # config/taichi256.yaml.
    "taichi256": AnimateConfig(
        name="taichi256",
        size=256,
        num_regions=10,
        region_pad=0,
        num_repeats=150,
        batch_size=14,
        avd_num_repeats=150,
    ),
    # config/mgif256.yaml: no background motion, hue-only jitter, random resize and crop; its AVD
    # milestones (60, 90) lie beyond its 30 AVD epochs, so the AVD learning rate never drops.
    "mgif256": AnimateConfig(
        name="mgif256",
        size=256,
        num_regions=10,
        region_pad=0,
        bg_type="zero",
        num_repeats=50,
        batch_size=14,
        resize_ratio=(0.9, 1.1),
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
        hue=0.5,
        avd_num_repeats=50,
        avd_epoch_milestones=(60, 90),
    ),
}

# Animation modes (twinflow.animate.modes); here so that parse-time code need not import torch.
MODES = ("standard", "relative", "avd")

# config.yaml's global ``preset: tiny|paper`` picks one of these unless ``animate: preset`` names one.
DEFAULT_FOR_GLOBAL = {"tiny": "tiny", "paper": "vox256"}


BG_TYPES = ("zero", "shift", "affine", "perspective")


def inverse_scale(scale: float) -> int:
    """``1 / scale`` as an integer stride; ValueError unless it is one (the reference reads every
    ``int(1 / scale)``-th pixel, so other scales would silently keep the wrong size)."""
    step = 1.0 / float(scale)
    if scale <= 0 or scale > 1 or not math.isclose(step, round(step), rel_tol=1e-6):
        raise ValueError(f"scale {scale} is not 1/n for a whole number n")
    return round(step)


def check_config(cfg: AnimateConfig) -> AnimateConfig:
    """``cfg`` with ``bg_type="none"`` read as ``"zero"``; ValueError on a value no network can
    be built from."""
    if cfg.bg_type == "none":
        cfg = dataclasses.replace(cfg, bg_type="zero")
    if cfg.bg_type not in BG_TYPES:
        raise ValueError(f"bg_type must be one of {', '.join(BG_TYPES)}, not {cfg.bg_type!r}")
    if cfg.recon_loss not in ("pyramid", "vgg19"):
        raise ValueError(f"recon_loss must be 'pyramid' or 'vgg19', not {cfg.recon_loss!r}")
    for field in ("region_scale_factor", "flow_scale_factor"):
        inverse_scale(getattr(cfg, field))
    for scale in cfg.pyramid_scales:
        inverse_scale(scale)
    if cfg.resize_ratio and len(cfg.resize_ratio) != 2:
        raise ValueError(f"resize_ratio must be empty or (low, high), not {cfg.resize_ratio!r}")
    return cfg


def get_preset(name: str, overrides: dict[str, Any] | None = None) -> AnimateConfig:
    """The preset ``name`` (a key of :data:`PRESETS`, or ``paper`` = ``vox256``) with
    ``overrides`` applied; unknown names or fields and impossible values raise ValueError."""
    name = DEFAULT_FOR_GLOBAL.get(name, name) if name not in PRESETS else name
    return check_config(resolve_preset(PRESETS, name, overrides))
