"""Input encodings of the nerf pipeline: tri-plane grids, frequencies, spherical harmonics.

ER-NeRF encodes a point of the head space by three 2-D feature planes (xy, yz, xz), each a
multi-resolution grid, and concatenates the three bilinearly interpolated feature vectors. The
paper uses tiny-cuda-nn hash grids. Here every encoder is pure PyTorch:

* :class:`DenseGrid2D` (``encoder: dense``, the default of the ``tiny`` preset): one dense
  ``C x R x R`` parameter tensor per level, read with ``F.grid_sample`` (bilinear). Fast on a CPU
  and exact (no hash collisions); memory grows with ``R^2``, which is small for 2-D planes.
* :class:`HashGrid2D` (``encoder: hash``, the ``paper`` preset): instant-ngp's multi-resolution
  hash encoding in 2-D (levels whose grid fits the table are indexed densely, finer ones through
  the spatial hash), as ER-NeRF configures it (12 levels, 1 feature each, base resolution 64,
  2^14 entries per level). About 6x slower per point than the dense grid on a CPU; meant for GPUs.

Coordinates are normalised to ``[-1, 1]`` (the head box); points outside are clamped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def level_resolutions(levels: int, base: int, finest: int) -> list[int]:
    """Geometric series of ``levels`` grid resolutions from ``base`` to ``finest``."""
    if levels == 1:
        return [base]
    growth = math.exp((math.log(finest) - math.log(base)) / (levels - 1))
    return [int(round(base * growth**i)) for i in range(levels)]


class DenseGrid2D(nn.Module):
    """Multi-resolution dense 2-D feature grid: ``(N, 2)`` in [-1, 1] -> ``(N, levels*channels)``."""

    def __init__(self, levels: int, channels: int, base: int, finest: int, init_std: float = 1e-4):
        super().__init__()
        self.resolutions = level_resolutions(levels, base, finest)
        self.grids = nn.ParameterList(
            nn.Parameter(torch.randn(1, channels, r, r) * init_std) for r in self.resolutions
        )
        self.out_dim = levels * channels

    def forward_t(self, xy: torch.Tensor) -> torch.Tensor:
        """Features in channel-first layout ``(levels*channels, N)`` (no transpose copy)."""
        g = xy.clamp(-1, 1).view(1, -1, 1, 2)
        feats = [
            F.grid_sample(grid, g, mode="bilinear", padding_mode="border", align_corners=True)
            for grid in self.grids
        ]
        return torch.cat(feats, 1).view(self.out_dim, -1)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.forward_t(xy).t()


class HashGrid2D(nn.Module):
    """instant-ngp multi-resolution hash encoding in 2-D, in pure PyTorch.

    ``(N, 2)`` in [-1, 1] -> ``(N, levels*channels)``. Level ``l`` has resolution ``R_l``; when
    ``(R_l+1)^2`` fits the table its vertices are indexed densely, else by
    ``(x * 1) xor (y * 2654435761) mod T``.
    """

    PRIME = 2654435761

    def __init__(
        self, levels: int, channels: int, base: int, finest: int, log2_table: int, init_std=1e-4
    ):
        super().__init__()
        self.resolutions = level_resolutions(levels, base, finest)
        self.table = 2**log2_table
        sizes = [min(self.table, (r + 1) ** 2) for r in self.resolutions]
        self.offsets = [0]
        for s in sizes:
            self.offsets.append(self.offsets[-1] + s)
        self.embeddings = nn.Parameter((torch.rand(self.offsets[-1], channels) * 2 - 1) * init_std)
        self.channels = channels
        self.out_dim = levels * channels

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        x = (xy.clamp(-1, 1) + 1) / 2  # [0, 1]
        outs = []
        for level, res in enumerate(self.resolutions):
            pos = x * res
            p0 = pos.floor().long().clamp(0, res - 1)
            frac = pos - p0
            size = self.offsets[level + 1] - self.offsets[level]
            dense = (res + 1) ** 2 <= self.table
            feat = 0
            for dx in (0, 1):
                for dy in (0, 1):
                    cx, cy = p0[:, 0] + dx, p0[:, 1] + dy
                    idx = cx + cy * (res + 1) if dense else (cx ^ (cy * self.PRIME)) % size
                    w = (frac[:, 0] if dx else 1 - frac[:, 0]) * (
                        frac[:, 1] if dy else 1 - frac[:, 1]
                    )
                    feat = feat + w[:, None] * self.embeddings[self.offsets[level] + idx]
            outs.append(feat)
        return torch.cat(outs, -1)


def make_grid2d(kind: str, levels: int, channels: int, base: int, finest: int, log2_table: int):
    if kind == "dense":
        return DenseGrid2D(levels, channels, base, finest)
    if kind == "hash":
        return HashGrid2D(levels, channels, base, finest, log2_table)
    raise ValueError(f"unknown grid encoder '{kind}' (dense or hash)")


class TriPlaneEncoder(nn.Module):
    """Three 2-D grids on the xy, yz and xz planes: ``(N, 3)`` -> ``(N, 3 * grid.out_dim)``."""

    def __init__(
        self, kind: str, levels: int, channels: int, base: int, finest: int, log2_table: int
    ):
        super().__init__()
        self.planes = nn.ModuleList(
            make_grid2d(kind, levels, channels, base, finest, log2_table) for _ in range(3)
        )
        self.out_dim = 3 * self.planes[0].out_dim

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        xy, yz, xz = xyz[:, [0, 1]], xyz[:, [1, 2]], xyz[:, [0, 2]]
        planes = zip(self.planes, (xy, yz, xz), strict=True)
        if isinstance(self.planes[0], DenseGrid2D):
            # channel-first features of the three planes, one transpose at the end
            return torch.cat([p.forward_t(c) for p, c in planes], 0).t().contiguous()
        return torch.cat([p(c) for p, c in planes], -1)


def frequency_encoding(x: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """NeRF positional encoding ``[x, sin(2^k pi x), cos(2^k pi x)]``; ``(N, D) -> (N, D(1+2F))``."""
    if n_freqs == 0:
        return x
    freqs = (2.0 ** torch.arange(n_freqs, device=x.device, dtype=x.dtype)) * math.pi
    xf = (x[..., None] * freqs).flatten(-2)
    return torch.cat([x, torch.sin(xf), torch.cos(xf)], -1)


def sh_encoding(d: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics up to degree 3 (16 values) of unit directions ``(N, 3)``."""
    x, y, z = d.unbind(-1)
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    return torch.stack(
        [
            torch.full_like(x, 0.28209479177387814),
            -0.48860251190291987 * y,
            0.48860251190291987 * z,
            -0.48860251190291987 * x,
            1.0925484305920792 * xy,
            -1.0925484305920792 * yz,
            0.94617469575755997 * zz - 0.31539156525251999,
            -1.0925484305920792 * xz,
            0.54627421529603959 * (xx - yy),
            0.59004358992664352 * y * (-3.0 * xx + yy),
            2.8906114426405538 * xy * z,
            0.45704579946446572 * y * (1.0 - 5.0 * zz),
            0.3731763325901154 * z * (5.0 * zz - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * zz),
            1.4453057213202769 * z * (xx - yy),
            0.59004358992664352 * x * (-xx + 3.0 * yy),
        ],
        -1,
    )
