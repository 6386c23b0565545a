"""face-vid2vid's patch discriminator (the re-implementation's ``modules/discriminator.py``,
FOMM's Pix2Pix-like discriminator).

Each scale has ``num_blocks`` blocks: 4x4 conv without padding (spectral norm when ``sn``),
instance norm with affine parameters (not in the first block), LeakyReLU(0.2), 2x2 average
pooling (not in the last block); then a 1x1 conv to one channel. ``MultiScaleDiscriminator``
keeps one per scale under ``discs.<scale with '.' -> '-'>`` and reads the image pyramid's
``prediction_<scale>`` entries; it returns ``feature_maps_<scale>`` (the blocks' outputs) and
``prediction_map_<scale>``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DownBlock2d(nn.Module):
    def __init__(self, in_features, out_features, norm=False, kernel_size=4, pool=False, sn=False):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size)
        if sn:
            self.conv = nn.utils.spectral_norm(self.conv)
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        out = F.leaky_relu(out, 0.2)
        return F.avg_pool2d(out, (2, 2)) if self.pool else out


class Discriminator(nn.Module):
    def __init__(
        self, num_channels=3, block_expansion=64, num_blocks=4, max_features=512, sn=False,
        **_unused,
    ):  # fmt: skip
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                num_channels if i == 0 else min(max_features, block_expansion * 2**i),
                min(max_features, block_expansion * 2 ** (i + 1)),
                norm=i != 0,
                kernel_size=4,
                pool=i != num_blocks - 1,
                sn=sn,
            )
            for i in range(num_blocks)
        )
        self.conv = nn.Conv2d(min(max_features, block_expansion * 2**num_blocks), 1, 1)
        if sn:
            self.conv = nn.utils.spectral_norm(self.conv)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        maps = []
        for block in self.down_blocks:
            x = block(x)
            maps.append(x)
        return maps, self.conv(x)


def scale_key(scale: float) -> str:
    """The reference's text for a scale as its YAML gives it (``1``, ``0.5``, ...)."""
    return str(int(scale)) if float(scale).is_integer() else str(float(scale))


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, scales=(), **kwargs):
        super().__init__()
        self.scales = list(scales)
        self.discs = nn.ModuleDict(
            {scale_key(s).replace(".", "-"): Discriminator(**kwargs) for s in self.scales}
        )

    def forward(self, pyramid: dict[str, torch.Tensor]) -> dict[str, object]:
        out: dict[str, object] = {}
        for name, disc in self.discs.items():
            scale = name.replace("-", ".")
            maps, prediction = disc(pyramid["prediction_" + scale])
            out["feature_maps_" + scale] = maps
            out["prediction_map_" + scale] = prediction
        return out
