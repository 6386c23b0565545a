"""Convolution building blocks: conv-BN-ReLU, residual, down/up sampling, the hourglass, and
anti-aliased downscaling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from twinflow.animate.presets import inverse_scale


class ConvBlock(nn.Module):
    """Convolution, batch norm, ReLU (same spatial size)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
        self.norm = nn.BatchNorm2d(cout, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock(ConvBlock):
    """:class:`ConvBlock` then 2x2 average pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(super().forward(x), 2)


class UpBlock(ConvBlock):
    """Nearest 2x upsampling then :class:`ConvBlock`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResBlock(nn.Module):
    """Pre-activation residual block (BN-ReLU-conv twice), channels unchanged."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.norm1(x)))
        y = self.conv2(F.relu(self.norm2(y)))
        return x + y


def widths(base: int, cap: int, levels: int) -> list[int]:
    """Channel counts ``base * 2**i`` capped at ``cap`` for ``i = 0..levels``."""
    return [min(cap, base * 2**i) for i in range(levels + 1)]


class Encoder(nn.Module):
    """``num_blocks`` :class:`DownBlock`; returns every level's features, input first."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        w = widths(block_expansion, max_features, num_blocks)
        ins = [in_features] + w[1:num_blocks]
        self.blocks = nn.ModuleList(DownBlock(ins[i], w[i + 1]) for i in range(num_blocks))
        self.out_channels = w[num_blocks]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [x]
        for block in self.blocks:
            feats.append(block(feats[-1]))
        return feats


class Decoder(nn.Module):
    """Mirror of :class:`Encoder` with skip concatenation; output has
    ``block_expansion + in_features`` channels."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        w = widths(block_expansion, max_features, num_blocks)
        ins = [in_features] + w[1:num_blocks]  # encoder inputs per level (skip widths)
        blocks = []
        cin = w[num_blocks]
        for i in reversed(range(num_blocks)):
            cout = w[i] if i > 0 else block_expansion
            blocks.append(UpBlock(cin, cout))
            cin = cout + ins[i]
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = cin

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        out = feats[-1]
        for block, skip in zip(self.blocks, reversed(feats[:-1]), strict=True):
            out = block(out)
            out = torch.cat([out, skip], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net: :class:`Encoder` then :class:`Decoder`; input sides must divide by
    ``2**num_blocks``."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_channels = self.decoder.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def gaussian_kernel(scale: float) -> torch.Tensor:
    """The reference's anti-aliasing kernel for downscaling by ``scale``: a normalised 2-D
    Gaussian with sigma ``(1/scale - 1)/2`` on ``2 * round(4 sigma) + 1`` taps, ``(k, k)``."""
    sigma = (1.0 / scale - 1.0) / 2.0
    size = 2 * round(sigma * 4) + 1
    ax = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    kernel = g[:, None] * g[None, :]
    return kernel / kernel.sum()


class AntiAliasResize(nn.Module):
    """Downscale by ``scale`` (1/n) as the reference's ``AntiAliasInterpolation2d``: a Gaussian
    blur (:func:`gaussian_kernel`) over zero padding, then every n-th pixel; identity for
    ``scale == 1``. The kernel is a non-persistent buffer (rebuilt, not stored)."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.scale = float(scale)
        self.channels = channels
        self.step = inverse_scale(self.scale)
        if self.step == 1:
            self.register_buffer("kernel", torch.zeros(0), persistent=False)
            return
        kernel = gaussian_kernel(self.scale)
        self.register_buffer(
            "kernel", kernel.expand(channels, 1, *kernel.shape).clone(), persistent=False
        )
        self.pad = kernel.shape[-1] // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.step == 1:
            return x
        x = F.pad(x, (self.pad,) * 4)
        x = F.conv2d(x, self.kernel.to(x.dtype), groups=self.channels)
        return x[:, :, :: self.step, :: self.step]
