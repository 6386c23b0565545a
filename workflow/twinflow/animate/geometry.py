"""Coordinates, regions and random warps.

Conventions: coordinates are ``(x, y)`` in ``[-1, 1]`` (``x`` along the width), the grid's corners
are pixel centres (``grid_sample(..., align_corners=True)``). A region is a dict with ``shift``
``(B, K, 2)``, ``affine`` ``(B, K, 2, 2)`` and ``covar`` ``(B, K, 2, 2)`` (``affine @ affine.T``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-7


def coordinate_grid(
    h: int, w: int, *, device=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Pixel-centre coordinates ``(h, w, 2)``: ``[..., 0]`` is x in [-1, 1], ``[..., 1]`` is y."""
    ys = torch.linspace(-1.0, 1.0, h, device=device, dtype=dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def sample(image: torch.Tensor, grid: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """``image`` (B, C, H, W) read at ``grid`` (B, h, w, 2) coordinates (bilinear)."""
    return F.grid_sample(
        image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True
    )


def inv2x2(m: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(..., 2, 2)`` matrices in closed form (determinant kept away from zero)."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    det = torch.where(det >= 0, det.clamp(min=EPS), det.clamp(max=-EPS))
    inv = torch.stack([d, -b, -c, a], dim=-1).reshape(m.shape)
    return inv / det[..., None, None]


def covariance_sqrt(covar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SVD of symmetric positive 2x2 matrices in closed form: ``covar = U diag(S) U^T``.

    Returns ``(U sqrt(S), U, S)``, singular values in decreasing order. ``U``'s first column is
    the major axis ``(cos t, sin t)`` with ``t = atan2(2b, a - c) / 2`` in (-pi/2, pi/2], so the
    axes' signs are fixed by a rule rather than by a solver (what :func:`torch.linalg.svd` returns
    up to column signs). Closed form keeps gradients finite and runs on any device.
    """
    a, b, c = covar[..., 0, 0], covar[..., 0, 1], covar[..., 1, 1]
    mean = 0.5 * (a + c)
    half_diff = 0.5 * (a - c)
    radius = torch.sqrt(half_diff**2 + b**2 + EPS**2)
    s1 = (mean + radius).clamp(min=EPS)
    s2 = (mean - radius).clamp(min=EPS)
    theta = 0.5 * torch.atan2(2 * b, 2 * half_diff + EPS**2)
    cos, sin = torch.cos(theta), torch.sin(theta)
    u = torch.stack([cos, -sin, sin, cos], dim=-1).reshape(covar.shape)
    s = torch.stack([s1, s2], dim=-1)
    return u * s.sqrt()[..., None, :], u, s


def heatmap_to_regions(heatmap: torch.Tensor) -> dict[str, torch.Tensor]:
    """Region parameters from normalised heatmaps ``(B, K, H, W)`` (each sums to 1).

    ``shift`` is the heatmap's mean position, ``covar`` its covariance, and ``affine`` the square
    root ``U sqrt(S)`` of the covariance from its SVD (the paper's PCA-based affine).
    """
    _, _, h, w = heatmap.shape
    grid = coordinate_grid(h, w, device=heatmap.device, dtype=heatmap.dtype)
    weights = heatmap.unsqueeze(-1)  # B K H W 1
    shift = (weights * grid).sum(dim=(2, 3))  # B K 2
    centred = grid - shift[:, :, None, None, :]  # B K H W 2
    covar = torch.einsum("bkhw,bkhwi,bkhwj->bkij", heatmap, centred, centred)
    affine, _, _ = covariance_sqrt(covar)
    return {"shift": shift, "covar": covar, "affine": affine}


def region_gaussians(
    shift: torch.Tensor, covar: torch.Tensor | float, h: int, w: int
) -> torch.Tensor:
    """Unnormalised Gaussians ``(B, K, h, w)`` centred at ``shift`` with covariance ``covar``
    (a ``(B, K, 2, 2)`` tensor, or one variance for every region)."""
    grid = coordinate_grid(h, w, device=shift.device, dtype=shift.dtype)
    diff = grid - shift[:, :, None, None, :]  # B K H W 2
    if isinstance(covar, float | int):
        mahal = (diff**2).sum(-1) / float(covar)
    else:
        inv = inv2x2(covar + EPS * torch.eye(2, device=shift.device, dtype=shift.dtype))
        mahal = torch.einsum("bkhwi,bkij,bkhwj->bkhw", diff, inv, diff)
    return torch.exp(-0.5 * mahal)


def axis_sign(relative: torch.Tensor) -> torch.Tensor:
    """``(..., 1, 1)`` sign that undoes a PCA axis flip, from a relative affine
    ``A_source @ inv(A_driving)`` (the paper's "revert axis swap")."""
    sign = torch.sign(relative[..., 0:1, 0:1])
    return torch.where(sign == 0, torch.ones_like(sign), sign)


class RandomTransform:
    """A random affine plus thin-plate-spline warp for the equivariance loss.

    ``T(p) = A p + t + sum_j w_j U(|p - c_j|)`` with ``U(r) = r^2 log r`` on a ``points x points``
    grid of control points ``c_j``; ``A - I`` and ``t`` have standard deviation ``sigma_affine``,
    the weights ``w_j`` (2-vectors) ``sigma_tps``. :meth:`transform_frame` resamples a frame so
    that the new frame at ``p`` shows the old frame at ``T(p)``.
    """

    def __init__(
        self,
        batch: int,
        sigma_affine: float,
        sigma_tps: float,
        points: int,
        *,
        device=None,
        generator: torch.Generator | None = None,
    ):
        noise = torch.randn(batch, 2, 3, generator=generator) * sigma_affine
        self.theta = (noise + torch.eye(2, 3)).to(device)
        self.control = coordinate_grid(points, points).reshape(-1, 2).to(device)  # P 2
        self.weights = (torch.randn(batch, points * points, 2, generator=generator) * sigma_tps).to(
            device
        )
        self.batch = batch

    @staticmethod
    def _kernel_terms(p: torch.Tensor, control: torch.Tensor):
        diff = p[:, :, None, :] - control[None, None]  # B N P 2
        sq = (diff**2).sum(-1)
        log = torch.log(sq + 1e-9)
        return diff, sq, log

    def warp_coordinates(self, p: torch.Tensor) -> torch.Tensor:
        """``T(p)`` for points ``(B, N, 2)``."""
        out = torch.einsum("bij,bnj->bni", self.theta[:, :, :2], p) + self.theta[:, None, :, 2]
        _, sq, log = self._kernel_terms(p, self.control)
        u = 0.5 * sq * log  # r^2 log r
        return out + torch.einsum("bnp,bpi->bni", u, self.weights)

    def jacobian(self, p: torch.Tensor) -> torch.Tensor:
        """``dT/dp`` at points ``(B, N, 2)``: ``(B, N, 2, 2)``, rows = output coordinate."""
        diff, sq, log = self._kernel_terms(p, self.control)
        grad_u = diff * (log + sq / (sq + 1e-9))[..., None]  # B N P 2 = dU/dp
        tps = torch.einsum("bpi,bnpj->bnij", self.weights, grad_u)
        return self.theta[:, None, :, :2] + tps

    def transform_frame(self, frame: torch.Tensor) -> torch.Tensor:
        b, _, h, w = frame.shape
        grid = coordinate_grid(h, w, device=frame.device, dtype=frame.dtype)
        warped = self.warp_coordinates(grid.reshape(1, -1, 2).expand(b, -1, -1))
        return sample(frame, warped.reshape(b, h, w, 2), padding_mode="reflection")
