"""Input encodings of the nerf pipeline: tri-plane grids, frequencies, spherical harmonics.

ER-NeRF encodes a point of the head space by three 2-D feature planes (xy, yz, xz), each a
multi-resolution grid, and concatenates the three bilinearly interpolated feature vectors. Its
grids are torch-ngp's CUDA ``GridEncoder``. Here every encoder is pure PyTorch:

* :class:`DenseGrid2D` (``encoder: dense``, the default of the ``tiny`` preset): one dense
  ``C x R x R`` parameter tensor per level, read with ``F.grid_sample`` (bilinear). Fast on a CPU
  and exact (no hash collisions); memory grows with ``R^2``, which is small for 2-D planes. Not
  ER-NeRF's layout: a twinflow-only option.
* :class:`GridEncoder2D` (``encoder: hash`` or ``tiled``, the ``paper`` preset): ER-NeRF's grid
  encoder itself (same per-level resolutions, table offsets, hashing or tiling and
  interpolation), so its trained tables load unchanged (``python -m twinflow.convert ernerf``).
  About 6x slower per point than the dense grid on a CPU; meant for GPUs.

Coordinates are normalised to ``[-1, 1]``. The dense grid clamps points outside; ER-NeRF's
grids read 0 there, as the reference does.

Frequencies: :func:`frequency_encoding` (twinflow's torso, ``[x, sin(2^k pi x), cos(2^k pi x)]``)
and :func:`frequency_encoding_ernerf` (ER-NeRF's ``FreqEncoder``: no pi, sin and cos blocks per
frequency). :func:`sh_encoding`: degree-4 real spherical harmonics, as ER-NeRF's ``SHEncoder``.
"""

from __future__ import annotations

import math

import numpy as np
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


class GridEncoder2D(nn.Module):
    """ER-NeRF's ``GridEncoder`` (torch-ngp's CUDA extension) for 2-D inputs, in pure PyTorch.

    ``(N, 2)`` in [-1, 1] -> ``(N, levels*channels)`` (level-major), with the reference's layout
    so that its trained tables load unchanged (``gridencoder/grid.py`` and ``gridencoder.cu`` of
    ER-NeRF at 0cf72d8, ``align_corners=False``):

    * per-level scale ``s = 2^(log2(finest / base) / (levels - 1))``; level ``l`` holds
      ``min(2^log2_table, (ceil(base s^l) + 1)^2)`` vertices, rounded up to a multiple of 8, at
      ``offsets[l]`` of one ``(sum, channels)`` table (``offsets`` is a saved buffer, int32);
    * a point ``u = (x + 1) / 2`` in [0, 1] is read at level ``l`` with
      ``scale = 2^(l log2 s) base - 1`` (float32, as the kernel), ``pos = u scale + 0.5``,
      bilinear weights between the 4 vertices around ``pos``; the grid is
      ``R = ceil(scale) + 1`` cells wide, a vertex ``(i, j)`` is ``i + j (R + 1)`` while that
      fits the level's table, otherwise ``gridtype`` decides: ``hash`` -> instant-ngp's spatial
      hash ``i xor (j * 2654435761)`` (uint32), ``tiled`` -> the plain index; both modulo the
      level's table size;
    * a point outside [0, 1] in any coordinate reads 0 at every level (the kernel's
      out-of-bounds rule).

    ER-NeRF builds its head planes as ``hash`` (12 levels x 1, base 64, finest 512, 2^14) and
    its torso grid as ``tiled`` (16 levels x 2, base 16, finest 2048, 2^16). Initial values are
    uniform in +-1e-4 as in the reference. Differences from the CUDA kernel are float rounding
    only (its ``exp2f`` and fused multiply-adds vs PyTorch's float32 operations); bilinear
    interpolation is continuous, so a position rounded across a cell edge changes nothing.
    """

    PRIME = 2654435761

    def __init__(
        self,
        levels: int,
        channels: int,
        base: int,
        finest: int,
        log2_table: int,
        gridtype: str = "hash",
        init_std: float = 1e-4,
    ):
        super().__init__()
        if gridtype not in ("hash", "tiled"):
            raise ValueError(f"unknown grid type '{gridtype}' (hash or tiled)")
        self.gridtype, self.channels, self.out_dim = gridtype, channels, levels * channels
        per_level = float(np.exp2(np.log2(finest / base) / (levels - 1))) if levels > 1 else 1.0
        self.per_level_scale = per_level
        table = 2**log2_table
        offsets = [0]
        for i in range(levels):
            res = int(np.ceil(base * per_level**i))
            size = min(table, (res + 1) ** 2)
            offsets.append(offsets[-1] + int(np.ceil(size / 8) * 8))
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.int32))
        # the kernel's per-level constants, in its float32 arithmetic
        s = np.float32(np.log2(per_level))
        scales = [np.float32(np.exp2(np.float32(i) * s)) * np.float32(base) - np.float32(1) for i in range(levels)]  # fmt: skip
        self.scales = [float(x) for x in scales]
        self.widths = [int(np.ceil(x)) + 1 for x in scales]  # R: cells per side
        self.sizes = [offsets[i + 1] - offsets[i] for i in range(levels)]
        self.embeddings = nn.Parameter((torch.rand(offsets[-1], channels) * 2 - 1) * init_std)

    def vertex_index(self, level: int, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Row of vertex ``(i, j)`` (int64 tensors) of ``level`` in the level's table."""
        size, stride = self.sizes[level], self.widths[level] + 1
        if stride > size:  # the kernel stops after x: y never enters the plain index
            plain, fits = i, False
        else:
            plain, fits = i + j * stride, stride * stride <= size
        if self.gridtype == "hash" and not fits:
            return (i ^ ((j * self.PRIME) & 0xFFFFFFFF)) % size
        return plain % size

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        u = (xy + 1) / 2
        inside = ((u >= 0) & (u <= 1)).all(-1, keepdim=True)
        emb = self.embeddings
        outs = []
        for level, scale in enumerate(self.scales):
            pos = u * scale + 0.5
            cell = pos.floor()
            frac = pos - cell
            cell = cell.long()
            base = int(self.offsets[level])
            feat = 0
            for di in (0, 1):
                wi = frac[:, 0] if di else 1 - frac[:, 0]
                for dj in (0, 1):
                    wj = frac[:, 1] if dj else 1 - frac[:, 1]
                    idx = self.vertex_index(level, cell[:, 0] + di, cell[:, 1] + dj)
                    feat = feat + (wi * wj)[:, None] * emb[base + idx.clamp(min=0)]
            outs.append(feat)
        return torch.cat(outs, -1) * inside


def make_grid2d(kind: str, levels: int, channels: int, base: int, finest: int, log2_table: int):
    """``dense`` (:class:`DenseGrid2D`) or ER-NeRF's ``hash`` / ``tiled`` (:class:`GridEncoder2D`)."""
    if kind == "dense":
        return DenseGrid2D(levels, channels, base, finest)
    if kind in ("hash", "tiled"):
        return GridEncoder2D(levels, channels, base, finest, log2_table, kind)
    raise ValueError(f"unknown grid encoder '{kind}' (dense, hash or tiled)")


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


def frequency_encoding_ernerf(x: torch.Tensor, degree: int) -> torch.Tensor:
    """ER-NeRF's ``FreqEncoder`` (its CUDA ``freqencoder``): ``(N, D) -> (N, D (1 + 2 degree))``
    laid out ``[x, sin(x), cos(x), sin(2x), cos(2x), ..., sin(2^(degree-1) x), cos(...)]``, each
    block ``D`` wide, without pi; the cosine is ``sin(2^k x + pi/2)`` in float32 as the kernel
    computes it (the kernel's fast ``__sinf`` intrinsic is the only difference)."""
    outs = [x]
    half_pi = float(np.float32(np.pi) / 2)
    for k in range(degree):
        xk = x * float(2**k)
        outs += [torch.sin(xk), torch.sin(xk + half_pi)]
    return torch.cat(outs, -1)


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
