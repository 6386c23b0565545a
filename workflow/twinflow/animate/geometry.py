"""Coordinates, regions and random warps, with the reference's (MRAA's) conventions.

Coordinates are ``(x, y)`` in ``[-1, 1]`` (``x`` along the width); the grid of an ``h x w`` map
puts -1 and 1 at the centres of its first and last pixels (the reference's
``make_coordinate_grid``), while images are read with ``grid_sample``'s default
``align_corners=False``, where -1 and 1 are the outer pixel edges. The two differ by half a pixel
at the borders; the reference trains and animates with exactly this pair, so twinflow keeps it
(its published weights depend on it). The presets' ``align_corners`` field chooses: False (the
reference's) in every reference preset; ``tiny`` uses True, where the grid's corners are the
pixel centres and the identity motion reads every pixel where it is (see
:mod:`twinflow.animate.presets`). A region is a dict with ``shift`` ``(B, K, 2)``, ``affine``
``(B, K, 2, 2)`` and ``covar`` ``(B, K, 2, 2)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from twinflow.animate.svd2x2 import svd_sym2x2

MIN_DET = 1e-20  # |determinant| floor of inv2x2 (the reference's torch.inverse has none)


def coordinate_grid(
    h: int, w: int, *, device=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Pixel-centre coordinates ``(h, w, 2)``: ``[..., 0]`` is x in [-1, 1], ``[..., 1]`` is y
    (computed as the reference does: ``2 * i / (n - 1) - 1``)."""
    xs = 2 * (torch.arange(w, device=device, dtype=dtype) / (w - 1)) - 1
    ys = 2 * (torch.arange(h, device=device, dtype=dtype) / (h - 1)) - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def sample(
    image: torch.Tensor,
    grid: torch.Tensor,
    padding_mode: str = "zeros",
    align_corners: bool = False,
) -> torch.Tensor:
    """``image`` (B, C, H, W) read at ``grid`` (B, h, w, 2) coordinates (bilinear;
    ``align_corners=False`` is the reference's: see the module docstring)."""
    return F.grid_sample(
        image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners
    )


def resize_bilinear(
    x: torch.Tensor, size: tuple[int, int], align_corners: bool = False
) -> torch.Tensor:
    """``x`` (B, C, H, W) resized to ``size`` (bilinear; ``align_corners=False`` is the
    reference's ``F.interpolate(..., mode="bilinear")``)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


def inv2x2(m: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(..., 2, 2)`` matrices in closed form (the determinant kept at least
    ``MIN_DET`` away from zero so that a degenerate region gives large, not infinite, values)."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    det = torch.where(det >= 0, det.clamp(min=MIN_DET), det.clamp(max=-MIN_DET))
    inv = torch.stack([d, -b, -c, a], dim=-1).reshape(m.shape)
    return inv / det[..., None, None]


def heatmap_to_regions(heatmap: torch.Tensor) -> dict[str, torch.Tensor]:
    """Region parameters from normalised heatmaps ``(B, K, H, W)`` (each sums to 1).

    ``shift`` is the heatmap's mean position, ``covar`` its covariance, and ``affine`` the square
    root ``U sqrt(S)`` of the covariance from its SVD (the paper's PCA-based affine), with the
    column signs of the reference's ``torch.svd`` (:mod:`twinflow.animate.svd2x2`).
    """
    _, _, h, w = heatmap.shape
    grid = coordinate_grid(h, w, device=heatmap.device, dtype=heatmap.dtype)
    weights = heatmap.unsqueeze(-1)  # B K H W 1
    shift = (weights * grid).sum(dim=(2, 3))  # B K 2
    centred = grid - shift[:, :, None, None, :]  # B K H W 2
    # In the reference's order of operations (outer products, weighted, summed): small
    # eigenvalues of thin regions come from cancellation, which another order changes.
    outer = centred.unsqueeze(-1) * centred.unsqueeze(-2)  # B K H W 2 2
    covar = (outer * weights.unsqueeze(-1)).sum(dim=(2, 3))
    u, s = svd_sym2x2(covar)
    affine = u * s.sqrt()[..., None, :]
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
        inv = inv2x2(covar)
        mahal = torch.einsum("bkhwi,bkij,bkhwj->bkhw", diff, inv, diff)
    return torch.exp(-0.5 * mahal)


def axis_sign(relative: torch.Tensor) -> torch.Tensor:
    """``(..., 1, 1)`` sign that undoes a PCA axis flip, from a relative affine
    ``A_source @ inv(A_driving)`` (the paper's "revert axis swap")."""
    sign = torch.sign(relative[..., 0:1, 0:1])
    return torch.where(sign == 0, torch.ones_like(sign), sign)


class RandomTransform:
    """The reference's random affine + thin-plate-spline warp for the equivariance loss.

    ``T(p) = A p + t + (s(p), s(p))`` with ``s(p) = sum_j w_j d_j^2 log(d_j + 1e-6)``, where
    ``d_j = |p - c_j|_1`` is the L1 distance to the control point ``c_j`` of a
    ``points x points`` grid and ``w_j`` one scalar per control point (so the spline moves x and
    y by the same amount: the reference's ``Transform``, kept as it is). ``A - I`` and ``t`` have
    standard deviation ``sigma_affine``, the ``w_j`` ``sigma_tps``. :meth:`transform_frame`
    resamples a frame so that the new frame at ``p`` shows the old frame at ``T(p)`` (reflection
    padding).
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
        self.weights = (torch.randn(batch, 1, points * points, generator=generator) * sigma_tps).to(
            device
        )  # B 1 P
        self.batch = batch

    def _distances(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diff = p[:, :, None, :] - self.control[None, None].to(p.dtype)  # B N P 2
        return diff, diff.abs().sum(-1)  # B N P

    def warp_coordinates(self, p: torch.Tensor) -> torch.Tensor:
        """``T(p)`` for points ``(B, N, 2)``."""
        theta = self.theta.to(p.dtype)
        out = torch.einsum("bij,bnj->bni", theta[:, :, :2], p) + theta[:, None, :, 2]
        _, dist = self._distances(p)
        spline = (dist**2 * torch.log(dist + 1e-6) * self.weights.to(p.dtype)).sum(-1)  # B N
        return out + spline[..., None]

    def jacobian(self, p: torch.Tensor) -> torch.Tensor:
        """``dT/dp`` at points ``(B, N, 2)``: ``(B, N, 2, 2)``, rows = output coordinate (what
        the reference gets by autograd; the derivative of ``|.|`` at 0 is taken as 0, as
        autograd does)."""
        diff, dist = self._distances(p)
        dspline = 2 * dist * torch.log(dist + 1e-6) + dist**2 / (dist + 1e-6)  # B N P
        grad = torch.einsum("bnp,bnpj->bnj", dspline * self.weights.to(p.dtype), torch.sign(diff))
        theta = self.theta.to(p.dtype)
        return theta[:, None, :, :2] + grad[:, :, None, :]

    def transform_frame(self, frame: torch.Tensor, align_corners: bool = False) -> torch.Tensor:
        b, _, h, w = frame.shape
        grid = coordinate_grid(h, w, device=frame.device, dtype=frame.dtype)
        warped = self.warp_coordinates(grid.reshape(1, -1, 2).expand(b, -1, -1))
        return sample(frame, warped.reshape(b, h, w, 2), "reflection", align_corners)
