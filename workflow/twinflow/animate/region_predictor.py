"""Region predictor: hourglass -> K heatmaps -> per-region shift and affine by PCA."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from twinflow.animate.blocks import AntiAliasResize, Hourglass
from twinflow.animate.geometry import heatmap_to_regions
from twinflow.animate.presets import AnimateConfig


class RegionPredictor(nn.Module):
    """Frame ``(B, 3, H, W)`` in [0, 1] -> regions: ``heatmap`` ``(B, K, h, w)`` (a spatial
    softmax with ``temperature``; ``h = H * region_scale_factor - 6 + 2 * region_pad``),
    ``shift``, ``covar`` and ``affine`` (see
    :func:`twinflow.animate.geometry.heatmap_to_regions`). The reference's ``RegionPredictor``
    with ``pca_based=True``."""

    def __init__(self, cfg: AnimateConfig):
        super().__init__()
        self.down = AntiAliasResize(cfg.num_channels, cfg.region_scale_factor)
        self.hourglass = Hourglass(
            cfg.region_block_expansion,
            cfg.num_channels,
            cfg.region_num_blocks,
            cfg.region_max_features,
        )
        self.heads = nn.Conv2d(
            self.hourglass.out_channels, cfg.num_regions, 7, padding=cfg.region_pad
        )
        self.temperature = cfg.temperature

    def forward(self, frame: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.heads(self.hourglass(self.down(frame)))
        b, k, h, w = logits.shape
        with torch.autocast(logits.device.type, enabled=False):  # the geometry in float32
            logits = logits.float().reshape(b, k, -1) / self.temperature
            heatmap = F.softmax(logits, dim=-1).reshape(b, k, h, w)
            return {**heatmap_to_regions(heatmap), "heatmap": heatmap}
