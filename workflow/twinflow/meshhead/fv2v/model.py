"""The face-vid2vid networks built from a :class:`~twinflow.meshhead.presets.WarpConfig`.

:class:`FaceVid2Vid` holds the three networks inference needs, under the reference checkpoint's
names (``kp_detector``, ``he_estimator``, ``generator``); :func:`build_discriminator` makes the
fourth, which only training needs. :meth:`FaceVid2Vid.reenact` is the reference's self-reenactment
(``GeneratorFullModel``): canonical keypoints and pose/expression of the source, pose/expression
of the driving frame, generator.
"""

from __future__ import annotations

import torch
from torch import nn

from twinflow.meshhead.fv2v.discriminator import MultiScaleDiscriminator
from twinflow.meshhead.fv2v.generator import GENERATORS
from twinflow.meshhead.fv2v.keypoints import N_BINS, HEEstimator, KPDetector
from twinflow.meshhead.fv2v.pose import keypoint_transformation
from twinflow.meshhead.presets import WarpConfig

NETWORKS = ("kp_detector", "he_estimator", "generator")


def kp_reshape_channel(cfg: WarpConfig) -> int:
    """Channels of the keypoint detector's 2-D bottleneck (the reference's ``reshape_channel``:
    its deepest width times ``kp_reshape_depth``; 16384 = 1024 x 16 in vox-256)."""
    deepest = min(cfg.kp_max_features, cfg.kp_block_expansion * 2**cfg.kp_num_blocks)
    return deepest * cfg.kp_reshape_depth


def build_kp_detector(cfg: WarpConfig) -> KPDetector:
    return KPDetector(
        block_expansion=cfg.kp_block_expansion,
        feature_channel=cfg.feature_channel,
        num_kp=cfg.num_kp,
        image_channel=3,
        max_features=cfg.kp_max_features,
        reshape_channel=kp_reshape_channel(cfg),
        reshape_depth=cfg.kp_reshape_depth,
        num_blocks=cfg.kp_num_blocks,
        temperature=cfg.kp_temperature,
        estimate_jacobian=cfg.estimate_jacobian,
        scale_factor=cfg.kp_scale_factor,
    )


def build_he_estimator(cfg: WarpConfig) -> HEEstimator:
    return HEEstimator(
        block_expansion=cfg.he_block_expansion,
        feature_channel=cfg.feature_channel,
        num_kp=cfg.num_kp,
        image_channel=3,
        max_features=0,  # unused by the reference's estimator
        num_bins=N_BINS,
        widths=tuple(cfg.he_widths),
    )


def build_generator(cfg: WarpConfig) -> nn.Module:
    kwargs = dict(
        image_channel=3,
        feature_channel=cfg.feature_channel,
        num_kp=cfg.num_kp,
        block_expansion=cfg.block_expansion,
        max_features=cfg.max_features,
        num_down_blocks=cfg.num_down_blocks,
        reshape_channel=cfg.feature_channel,
        reshape_depth=cfg.reshape_depth,
        num_resblocks=cfg.num_resblocks,
        estimate_occlusion_map=cfg.estimate_occlusion_map,
        dense_motion_params=dict(
            block_expansion=cfg.dm_block_expansion,
            max_features=cfg.dm_max_features,
            num_blocks=cfg.dm_num_blocks,
            reshape_depth=cfg.reshape_depth,
            compress=cfg.dm_compress,
        ),
        estimate_jacobian=cfg.estimate_jacobian,
    )
    if cfg.generator == "spade":
        kwargs.update(spade_out_channels=cfg.spade_out_channels, spade_hidden=cfg.spade_hidden)
    return GENERATORS[cfg.generator](**kwargs)


def build_discriminator(cfg: WarpConfig) -> MultiScaleDiscriminator:
    return MultiScaleDiscriminator(
        scales=cfg.disc_scales,
        block_expansion=cfg.disc_block_expansion,
        max_features=cfg.disc_max_features,
        num_blocks=cfg.disc_num_blocks,
        sn=cfg.disc_sn,
    )


def build_networks(cfg: WarpConfig) -> dict[str, nn.Module]:
    """``{"kp_detector", "he_estimator", "generator"}`` of ``cfg``."""
    return {
        "kp_detector": build_kp_detector(cfg),
        "he_estimator": build_he_estimator(cfg),
        "generator": build_generator(cfg),
    }


class FaceVid2Vid(nn.Module):
    """``kp_detector``, ``he_estimator`` and ``generator`` of one configuration."""

    def __init__(self, cfg: WarpConfig):
        super().__init__()
        self.cfg = cfg
        for name, net in build_networks(cfg).items():
            self.add_module(name, net)

    def reenact(self, source: torch.Tensor, driving: torch.Tensor) -> dict:
        """Self-reenactment ``(B, 3, S, S)`` x 2 -> the generator's outputs plus ``kp_canonical``,
        ``he_source``, ``he_driving``, ``kp_source``, ``kp_driving``."""
        kp_canonical = self.kp_detector(source)
        he_source = self.he_estimator(source)
        he_driving = self.he_estimator(driving)
        kp_source = keypoint_transformation(kp_canonical, he_source)
        kp_driving = keypoint_transformation(kp_canonical, he_driving)
        out = self.generator(source, kp_driving=kp_driving, kp_source=kp_source)
        out.update(
            kp_canonical=kp_canonical,
            he_source=he_source,
            he_driving=he_driving,
            kp_source=kp_source,
            kp_driving=kp_driving,
        )
        return out


def parameter_counts(module: nn.Module) -> dict[str, int]:
    """Parameters per direct child (and ``total``)."""
    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in module.named_children()}
    counts["total"] = sum(counts.values())
    return counts
