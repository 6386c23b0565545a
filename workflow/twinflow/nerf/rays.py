"""Rays, samples and volume rendering (pure PyTorch).

Conventions: cameras are OpenGL camera-to-world matrices (x right, y up, looking down -z) in the
*normalised head space*, where the head box is ``[-1, 1]^3`` (the dataset stage maps the
perception stage's metric head frame into it). A pixel ``(u, v)`` (column, row; pixel centres at
``+0.5``) of an image with intrinsics ``fx, fy, cx, cy`` looks along
``R @ ((u - cx) / fx, -(v - cy) / fy, -1)``.

Volume rendering is the usual quadrature (Max 1995; NeRF): with densities ``sigma_i`` at samples
``t_i``, each sample stands for the interval between the midpoints to its neighbours (the first
starts at the ray's entry into the box, the last ends at its exit), of length ``delta_i``;
``alpha_i = 1 - exp(-sigma_i delta_i)``, ``w_i = alpha_i prod_{j<i} (1 - alpha_j)``,
``rgb = sum w_i c_i``, ``acc = sum w_i`` (the opacity), ``depth = sum w_i t_i``; the composite over
a background is ``rgb + (1 - acc) * bg``. It is exact for piecewise-constant fields.
"""

from __future__ import annotations

import torch


def pixel_rays(
    c2w: torch.Tensor, intrinsics: torch.Tensor, uv: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through pixels ``uv (N, 2)`` (column, row, continuous) of cameras ``c2w (N, 4, 4)``
    (or ``(4, 4)``) with ``intrinsics (4,)`` = fx, fy, cx, cy -> origins, unit directions ``(N, 3)``."""
    fx, fy, cx, cy = intrinsics.unbind(-1)
    d_cam = torch.stack(
        [(uv[:, 0] - cx) / fx, -(uv[:, 1] - cy) / fy, -torch.ones_like(uv[:, 0])], -1
    )
    if c2w.dim() == 2:
        c2w = c2w.expand(len(uv), 4, 4)
    d = torch.einsum("nij,nj->ni", c2w[:, :3, :3], d_cam)
    d = d / d.norm(dim=-1, keepdim=True)
    return c2w[:, :3, 3].clone(), d


def ray_box(
    origins: torch.Tensor, dirs: torch.Tensor, bound: float = 1.0, min_near: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through the box ``[-bound, bound]^3`` (slab method) and a
    mask of the rays that hit it."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0 = (-bound - origins) * inv
    t1 = (bound - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp(min=min_near)
    far = torch.maximum(t0, t1).amin(-1)
    hit = far > near + 1e-6
    far = torch.where(hit, far, near + 1e-6)
    return near, far, hit


def stratified_samples(
    near: torch.Tensor, far: torch.Tensor, n: int, perturb: bool
) -> torch.Tensor:
    """``n`` sample distances per ray between ``near`` and ``far`` ``(R,)`` -> ``(R, n)``: one per
    equal bin, at a random place in it (``perturb``) or at its centre."""
    u = torch.arange(n, device=near.device, dtype=near.dtype)
    u = u + (torch.rand(len(near), n, device=near.device) if perturb else 0.5)
    return near[:, None] + (far - near)[:, None] * (u / n)


def composite(
    sigma: torch.Tensor, rgb: torch.Tensor, t: torch.Tensor, near: torch.Tensor, far: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Volume rendering of ``sigma (R, S)``, ``rgb (R, S, 3)`` at sorted distances ``t (R, S)``
    inside ``near..far (R,)`` -> ``rgb (R, 3)``, ``acc (R,)``, ``depth (R,)``, ``weights (R, S)``."""
    deltas = torch.diff(bin_edges(t, near, far), dim=-1).clamp(min=0)
    alpha = 1.0 - torch.exp(-sigma * deltas)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10], -1), -1)
    weights = alpha * trans[:, :-1]
    return {
        "rgb": (weights[..., None] * rgb).sum(1),
        "acc": weights.sum(1),
        "depth": (weights * t).sum(1),
        "weights": weights,
    }


def bin_edges(t: torch.Tensor, near: torch.Tensor, far: torch.Tensor) -> torch.Tensor:
    """Edges ``(R, S+1)`` of the intervals around sorted samples ``t (R, S)`` within near..far."""
    mid = (t[:, 1:] + t[:, :-1]) / 2
    return torch.cat([near[:, None], mid, far[:, None]], -1)
