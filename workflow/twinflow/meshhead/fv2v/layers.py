"""Building blocks of face-vid2vid (the re-implementation's ``modules/util.py``), in plain torch.

Names of the submodules are the reference's, so that its state dicts load unchanged. Norms are
plain ``BatchNorm2d`` / ``BatchNorm3d`` (the reference's synchronised batch norm is the same
maths on one device, with the same parameter and buffer names, eps 1e-5, momentum 0.1).
Interpolation and sampling keep the defaults of torch 1.7, which the reference was written for:
``grid_sample`` bilinear with zero padding and ``align_corners=False``, ``interpolate`` nearest.
Coordinate grids run from -1 to 1 through the first and last sample (``x / (n - 1)``), while the
sampling that uses them reads ``align_corners=False``: that mismatch is the reference's and is kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


def coordinate_grid_2d(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """``(h, w, 2)`` grid of ``(x, y)`` in [-1, 1] (first and last sample at -1 and 1)."""
    x = 2 * (torch.arange(w, dtype=like.dtype, device=like.device) / (w - 1)) - 1
    y = 2 * (torch.arange(h, dtype=like.dtype, device=like.device) / (h - 1)) - 1
    return torch.stack([x.view(1, w).expand(h, w), y.view(h, 1).expand(h, w)], dim=-1)


def coordinate_grid_3d(d: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """``(d, h, w, 3)`` grid of ``(x, y, z)`` in [-1, 1] (as :func:`coordinate_grid_2d`)."""
    x = 2 * (torch.arange(w, dtype=like.dtype, device=like.device) / (w - 1)) - 1
    y = 2 * (torch.arange(h, dtype=like.dtype, device=like.device) / (h - 1)) - 1
    z = 2 * (torch.arange(d, dtype=like.dtype, device=like.device) / (d - 1)) - 1
    return torch.stack(
        [
            x.view(1, 1, w).expand(d, h, w),
            y.view(1, h, 1).expand(d, h, w),
            z.view(d, 1, 1).expand(d, h, w),
        ],
        dim=-1,
    )


def gaussian_heatmaps(
    kp: torch.Tensor, size: tuple[int, int, int], variance: float
) -> torch.Tensor:
    """Unnormalised Gaussians ``(B, K, d, h, w)`` around 3-D keypoints ``kp (B, K, 3)``."""
    grid = coordinate_grid_3d(*size, kp)
    diff = grid[None, None] - kp[:, :, None, None, None, :]
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


class ResBottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 bottleneck at a quarter of the width, post-norm, with a
    1x1 strided projection of the input when ``stride != 1``."""

    def __init__(self, in_features: int, stride: int):
        super().__init__()
        mid = in_features // 4
        self.conv1 = nn.Conv2d(in_features, mid, kernel_size=1)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(mid, in_features, kernel_size=1)
        self.norm1 = nn.BatchNorm2d(mid, affine=True)
        self.norm2 = nn.BatchNorm2d(mid, affine=True)
        self.norm3 = nn.BatchNorm2d(in_features, affine=True)
        self.stride = stride
        if stride != 1:
            self.skip = nn.Conv2d(in_features, in_features, kernel_size=1, stride=stride)
            self.norm4 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.stride != 1:
            x = self.norm4(self.skip(x))
        return F.relu(out + x)


class _PreNormResBlock(nn.Module):
    """norm -> relu -> conv -> norm -> relu -> conv, plus the input (2-D or 3-D)."""

    conv_type: type[nn.Module] = nn.Conv2d
    norm_type: type[nn.Module] = nn.BatchNorm2d

    def __init__(self, in_features: int, kernel_size: int, padding: int):
        super().__init__()
        self.conv1 = self.conv_type(in_features, in_features, kernel_size, padding=padding)
        self.conv2 = self.conv_type(in_features, in_features, kernel_size, padding=padding)
        self.norm1 = self.norm_type(in_features, affine=True)
        self.norm2 = self.norm_type(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class ResBlock2d(_PreNormResBlock):
    conv_type, norm_type = nn.Conv2d, nn.BatchNorm2d


class ResBlock3d(_PreNormResBlock):
    conv_type, norm_type = nn.Conv3d, nn.BatchNorm3d


class UpBlock2d(nn.Module):
    """Nearest x2 upsampling -> conv -> BN -> ReLU."""

    def __init__(self, in_features: int, out_features: int, kernel_size=3, padding=1):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2))))


class UpBlock3d(nn.Module):
    """Nearest upsampling of height and width (not depth) -> conv -> BN -> ReLU."""

    def __init__(self, in_features: int, out_features: int, kernel_size=3, padding=1):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm3d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=(1, 2, 2)))))


class DownBlock2d(nn.Module):
    """conv -> BN -> ReLU -> 2x2 average pooling."""

    def __init__(self, in_features: int, out_features: int, kernel_size=3, padding=1):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class DownBlock3d(nn.Module):
    """conv -> BN -> ReLU -> average pooling of height and width (1x2x2)."""

    def __init__(self, in_features: int, out_features: int, kernel_size=3, padding=1):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm3d(out_features, affine=True)
        self.pool = nn.AvgPool3d(kernel_size=(1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class SameBlock2d(nn.Module):
    """conv -> BN -> ReLU (or LeakyReLU, slope 0.01), resolution kept."""

    def __init__(self, in_features, out_features, kernel_size=3, padding=1, lrelu=False):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.ac = nn.LeakyReLU() if lrelu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ac(self.norm(self.conv(x)))


def widths(block_expansion: int, max_features: int, levels: int) -> list[int]:
    """``min(max_features, block_expansion * 2**i)`` for ``i = 0..levels``."""
    return [min(max_features, block_expansion * 2**i) for i in range(levels + 1)]


class Encoder(nn.Module):
    """3-D hourglass encoder: ``num_blocks`` :class:`DownBlock3d`; returns every level."""

    def __init__(self, block_expansion, in_features, num_blocks=3, max_features=256):
        super().__init__()
        w = widths(block_expansion, max_features, num_blocks)
        self.down_blocks = nn.ModuleList(
            DownBlock3d(in_features if i == 0 else w[i], w[i + 1]) for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """3-D hourglass decoder with skip concatenation; ends with conv -> BN -> ReLU at
    ``out_filters = block_expansion + in_features`` channels."""

    def __init__(self, block_expansion, in_features, num_blocks=3, max_features=256):
        super().__init__()
        w = widths(block_expansion, max_features, num_blocks)
        self.up_blocks = nn.ModuleList(
            UpBlock3d((1 if i == num_blocks - 1 else 2) * w[i + 1], w[i])
            for i in reversed(range(num_blocks))
        )
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters, affine=True)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        levels = list(levels)
        out = levels.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), levels.pop()], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass(nn.Module):
    """3-D U-Net over ``(B, in_features, d, h, w)`` (height and width halved per level)."""

    def __init__(self, block_expansion, in_features, num_blocks=3, max_features=256):
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class KPHourglass(nn.Module):
    """2-D encoder -> 1x1 conv to ``reshape_features`` channels, viewed as a volume of depth
    ``reshape_depth`` -> 3-D decoder without skips (height and width doubled per level)."""

    def __init__(
        self, block_expansion, in_features, reshape_features, reshape_depth, num_blocks=3,
        max_features=256,
    ):  # fmt: skip
        super().__init__()
        w = widths(block_expansion, max_features, num_blocks)
        self.down_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.down_blocks.add_module(
                f"down{i}", DownBlock2d(in_features if i == 0 else w[i], w[i + 1])
            )
        self.conv = nn.Conv2d(w[num_blocks], reshape_features, kernel_size=1)
        self.up_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.up_blocks.add_module(f"up{i}", UpBlock3d(w[num_blocks - i], w[num_blocks - i - 1]))
        self.reshape_depth = reshape_depth
        self.out_filters = w[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(self.down_blocks(x))
        b, c, h, w = out.shape
        out = out.view(b, c // self.reshape_depth, self.reshape_depth, h, w)
        return self.up_blocks(out)


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur (sigma ``(1/scale - 1) / 2``, zero padding) then every ``1/scale``-th
    pixel. The kernel is a buffer named ``weight`` (it is in the reference's state dicts)."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.ka = kernel_size // 2
        self.kb = self.ka - 1 if kernel_size % 2 == 0 else self.ka
        ax = torch.arange(kernel_size, dtype=torch.float32)
        mean = (kernel_size - 1) / 2
        g = torch.exp(-((ax - mean) ** 2) / (2 * sigma**2)) if sigma > 0 else torch.ones(1)
        kernel = g[:, None] * g[None, :]
        kernel = kernel / torch.sum(kernel)
        self.register_buffer("weight", kernel.view(1, 1, *kernel.shape).repeat(channels, 1, 1, 1))
        self.groups = channels
        self.scale = scale
        self.int_inv_scale = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, weight=self.weight, groups=self.groups)
        return out[:, :, :: self.int_inv_scale, :: self.int_inv_scale]


class SPADE(nn.Module):
    """Instance norm (no affine) modulated by ``gamma, beta`` predicted from a label map
    (resized, nearest, to the input's size) through a shared ``hidden``-channel conv."""

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = 128):
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, 3, padding=1)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """SPADE -> LeakyReLU(0.2) -> conv, twice, plus the input (through SPADE -> 1x1 conv when
    the width changes). Convolutions carry spectral normalisation (``weight_orig``,
    ``weight_u``, ``weight_v``; one power iteration per training forward, none in eval)."""

    def __init__(self, fin: int, fout: int, label_nc: int, hidden: int = 128):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmiddle, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(fmiddle, fout, 3, padding=1))
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
        self.norm_0 = SPADE(fin, label_nc, hidden)
        self.norm_1 = SPADE(fmiddle, label_nc, hidden)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc, hidden)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 2e-1))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 2e-1))
        return x_s + dx
