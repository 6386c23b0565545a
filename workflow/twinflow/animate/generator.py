"""Generator: encode the source, warp its features with the dense flow, mask them with the
occlusion map, and decode the driving frame (Johnson-style encoder / residual bottleneck /
decoder; with ``gen_skips`` every level's warped source features are blended in, and finally the
warped source image itself: ``out = occlusion * warped + (1 - occlusion) * decoded``). The
reference's ``Generator``; the flow and occlusion map are resized to each level bilinearly
(``align_corners=False``)."""

from __future__ import annotations

import torch
from torch import nn

from twinflow.animate.blocks import ConvBlock, DownBlock, ResBlock, UpBlock, widths
from twinflow.animate.flow_predictor import PixelwiseFlow
from twinflow.animate.geometry import resize_bilinear, sample
from twinflow.animate.presets import AnimateConfig


def warp(features: torch.Tensor, flow: torch.Tensor, align_corners: bool = False) -> torch.Tensor:
    """Read ``features`` (B, C, H, W) at ``flow`` (B, h, w, 2), resized to (H, W) first."""
    h, w = features.shape[2:]
    if flow.shape[1:3] != (h, w):
        flow = resize_bilinear(flow.permute(0, 3, 1, 2), (h, w), align_corners)
        flow = flow.permute(0, 2, 3, 1)
    return sample(features, flow, align_corners=align_corners)


def _resized(occlusion: torch.Tensor, like: torch.Tensor, align_corners: bool) -> torch.Tensor:
    if occlusion.shape[2:] == like.shape[2:]:
        return occlusion
    return resize_bilinear(occlusion, tuple(like.shape[2:]), align_corners)


class Generator(nn.Module):
    """``(source image, source regions, driving regions, bg)`` -> ``prediction`` (B, 3, H, W)
    plus the flow predictor's ``flow``, ``occlusion`` and the source ``deformed`` by the flow."""

    def __init__(self, cfg: AnimateConfig):
        super().__init__()
        self.flow = PixelwiseFlow(cfg)
        n = cfg.gen_num_down_blocks
        w = widths(cfg.gen_block_expansion, cfg.gen_max_features, n)
        self.first = ConvBlock(cfg.num_channels, w[0], kernel=7)
        self.down = nn.ModuleList(DownBlock(w[i], w[i + 1]) for i in range(n))
        self.bottleneck = nn.Sequential(
            *(ResBlock(w[n]) for _ in range(cfg.gen_num_bottleneck_blocks))
        )
        self.up = nn.ModuleList(UpBlock(w[i + 1], w[i]) for i in reversed(range(n)))
        self.final = nn.Conv2d(w[0], cfg.num_channels, 7, padding=3)
        self.skips = cfg.gen_skips
        self.align_corners = cfg.align_corners

    def forward(self, image, source, driving, bg=None) -> dict[str, torch.Tensor]:
        motion = self.flow(image, source, driving, bg)
        flow, occlusion = motion["flow"], motion["occlusion"]
        ac = self.align_corners

        def blend(skip: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
            warped = warp(skip, flow, ac)
            if occlusion is None:
                return warped
            occ = _resized(occlusion, warped, ac)
            return warped * occ if previous is None else warped * occ + previous * (1 - occ)

        feats = [self.first(image)]
        for block in self.down:
            feats.append(block(feats[-1]))
        out = self.bottleneck(blend(feats[-1], None))
        for i, block in enumerate(self.up):
            if self.skips:
                out = blend(feats[-1 - i], out)
            out = block(out)
        if self.skips:
            out = blend(feats[0], out)
        out = torch.sigmoid(self.final(out))
        if self.skips:
            out = blend(image, out)
        return {
            "prediction": out,
            "flow": flow,
            "occlusion": occlusion,
            "deformed": warp(image, flow, ac),
        }
