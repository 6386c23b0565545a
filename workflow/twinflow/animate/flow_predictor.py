"""Pixel-wise flow predictor: blends K region motions and the background motion into one dense
flow, and predicts an occlusion map.

Input of its hourglass, at ``flow_scale_factor`` of the frame size: for each of the K+1 motions
the source image warped by that motion alone (3 channels) and a heatmap channel (the difference
of the region's driving and source Gaussians; zero for the background), ``(K+1) * 4`` channels.
A 7x7 convolution gives K+1 weight maps (softmax over motions); the flow at each pixel is the
weighted sum of the K+1 sparse motions there. A second 7x7 convolution gives the occlusion map
(sigmoid): 1 where the warped source can be trusted, 0 where the generator must inpaint.
The reference's ``PixelwiseFlowPredictor`` (with ``use_deformed_source=True``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from twinflow.animate.blocks import AntiAliasResize, Hourglass
from twinflow.animate.geometry import axis_sign, coordinate_grid, inv2x2, region_gaussians, sample
from twinflow.animate.presets import AnimateConfig


def sparse_motions(
    source: dict[str, torch.Tensor],
    driving: dict[str, torch.Tensor],
    bg: torch.Tensor | None,
    h: int,
    w: int,
    *,
    revert_axis_swap: bool = True,
) -> torch.Tensor:
    """Backward motions ``(B, K+1, h, w, 2)``: for every driving-frame pixel ``z``, where to read
    the source. Index 0 is the background (``bg`` maps driving to source coordinates in
    homogeneous coordinates, identity when None); region ``k`` maps ``z`` to
    ``A_s,k inv(A_d,k) (z - mu_d,k) + mu_s,k``."""
    grid = coordinate_grid(h, w, device=source["shift"].device, dtype=source["shift"].dtype)
    relative = source["affine"] @ inv2x2(driving["affine"])  # B K 2 2
    if revert_axis_swap:
        relative = relative * axis_sign(relative)
    offset = grid[None, None] - driving["shift"][:, :, None, None, :]  # B K h w 2
    regions = torch.einsum("bkij,bkhwj->bkhwi", relative, offset)
    regions = regions + source["shift"][:, :, None, None, :]
    b = regions.shape[0]
    if bg is None:
        background = grid.expand(b, h, w, 2)
    else:
        homogeneous = torch.cat([grid, torch.ones_like(grid[..., :1])], dim=-1)  # h w 3
        mapped = torch.einsum("bij,hwj->bhwi", bg, homogeneous)
        background = mapped[..., :2] / mapped[..., 2:3]
    return torch.cat([background[:, None], regions], dim=1)


class PixelwiseFlow(nn.Module):
    """``(source image, source regions, driving regions, bg)`` -> ``flow`` ``(B, h, w, 2)``,
    ``occlusion`` ``(B, 1, h, w)`` or None, ``weights`` ``(B, K+1, h, w)``."""

    def __init__(self, cfg: AnimateConfig):
        super().__init__()
        k, c = cfg.num_regions, cfg.num_channels
        self.num_regions = k
        self.down = AntiAliasResize(c, cfg.flow_scale_factor)
        self.hourglass = Hourglass(
            cfg.flow_block_expansion, (k + 1) * (c + 1), cfg.flow_num_blocks, cfg.flow_max_features
        )
        self.weights = nn.Conv2d(self.hourglass.out_channels, k + 1, 7, padding=3)
        with torch.no_grad():
            self.weights.bias[0] += cfg.background_bias
        self.occlusion = None
        if cfg.estimate_occlusion:
            self.occlusion = nn.Conv2d(self.hourglass.out_channels, 1, 7, padding=3)
            with torch.no_grad():
                self.occlusion.bias.fill_(cfg.occlusion_bias)
        self.use_covar = cfg.use_covar_heatmap
        self.region_var = float(cfg.region_var)
        self.align_corners = cfg.align_corners
        self.revert_axis_swap = cfg.revert_axis_swap

    def heatmap_channels(self, source, driving, h: int, w: int) -> torch.Tensor:
        """``(B, K+1, 1, h, w)``: driving minus source region Gaussians, zeros for background."""
        cov_d = driving["covar"] if self.use_covar else self.region_var
        cov_s = source["covar"] if self.use_covar else self.region_var
        diff = region_gaussians(driving["shift"], cov_d, h, w) - region_gaussians(
            source["shift"], cov_s, h, w
        )
        return F.pad(diff, (0, 0, 0, 0, 1, 0)).unsqueeze(2)

    def forward(self, image, source, driving, bg=None) -> dict[str, torch.Tensor | None]:
        small = self.down(image)
        b, c, h, w = small.shape
        motions = sparse_motions(source, driving, bg, h, w, revert_axis_swap=self.revert_axis_swap)
        k1 = motions.shape[1]
        repeated = small.unsqueeze(1).expand(b, k1, c, h, w).reshape(b * k1, c, h, w)
        grid = motions.reshape(b * k1, h, w, 2)
        deformed = sample(repeated, grid, align_corners=self.align_corners).reshape(b, k1, c, h, w)
        features = torch.cat([self.heatmap_channels(source, driving, h, w), deformed], dim=2)
        hidden = self.hourglass(features.reshape(b, k1 * (c + 1), h, w))
        weights = F.softmax(self.weights(hidden), dim=1)
        flow = torch.einsum("bkhw,bkhwi->bhwi", weights, motions)
        occlusion = torch.sigmoid(self.occlusion(hidden)) if self.occlusion is not None else None
        return {"flow": flow, "occlusion": occlusion, "weights": weights}
