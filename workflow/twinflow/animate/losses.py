"""Training losses.

Reconstruction (``recon_loss``):

* ``"pyramid"`` (default; needs no pretrained network): on an anti-aliased image pyramid
  (``pyramid_scales``, the paper's 1, 1/2, 1/4, 1/8 for 256 px) the sum over scales of
  ``l1_weight * mean|G - D|`` plus ``grad_weight * (mean|dx G - dx D| + mean|dy G - dy D|)``, where
  dx, dy are forward pixel differences. The L1 term matches colours, the gradient term edges and
  texture, which plain L1 blurs; together they stand in for the paper's VGG-19 perceptual loss.
* ``"vgg19"`` (the paper's): on the same pyramid, ``sum_l perceptual_weights[l] * mean|V_l(G) -
  V_l(D)|`` over VGG-19's relu1_1 ... relu5_1 features; needs user-supplied weights
  (:mod:`twinflow.train.vgg`).

Equivariance (the paper's, on the region parameters): a random affine+TPS warp ``T`` of the
driving frame ``D`` gives ``D_T(p) = D(T(p))``; its regions must map back onto ``D``'s:
``equivariance_shift * mean|mu_D - T(mu_T)|`` and
``equivariance_affine * mean|I - inv(A_D) J_T(mu_T) A_T|`` (axis flips reverted).
"""

from __future__ import annotations

import torch
from torch import nn

from twinflow.animate.blocks import AntiAliasResize
from twinflow.animate.geometry import RandomTransform, axis_sign, inv2x2
from twinflow.animate.presets import AnimateConfig


class ImagePyramid(nn.Module):
    """An image at each of ``scales`` (anti-aliased)."""

    def __init__(self, scales, channels: int = 3):
        super().__init__()
        self.levels = nn.ModuleList(AntiAliasResize(channels, s) for s in scales)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [level(x) for level in self.levels]


def gradient_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    dxp, dxt = pred[..., :, 1:] - pred[..., :, :-1], target[..., :, 1:] - target[..., :, :-1]
    dyp, dyt = pred[..., 1:, :] - pred[..., :-1, :], target[..., 1:, :] - target[..., :-1, :]
    return (dxp - dxt).abs().mean() + (dyp - dyt).abs().mean()


class ReconstructionLoss(nn.Module):
    """``(prediction, target)`` -> dict of weighted loss terms (see the module docstring)."""

    def __init__(self, cfg: AnimateConfig, vgg: nn.Module | None = None):
        super().__init__()
        self.pyramid = ImagePyramid(cfg.pyramid_scales, cfg.num_channels)
        self.kind = cfg.recon_loss
        self.cfg = cfg
        if self.kind == "vgg19" and vgg is None:
            raise ValueError("recon_loss='vgg19' needs the VGG-19 network")
        self.vgg = vgg

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        out: dict[str, torch.Tensor] = {}
        for p, t in zip(self.pyramid(pred), self.pyramid(target), strict=True):
            if self.kind == "pyramid":
                terms = {
                    "l1": cfg.l1_weight * (p - t).abs().mean(),
                    "grad": cfg.grad_weight * gradient_l1(p, t),
                }
            else:
                fp, ft = self.vgg(p), self.vgg(t)
                total = sum(
                    w * (a - b.detach()).abs().mean()
                    for w, a, b in zip(cfg.perceptual_weights, fp, ft, strict=False)
                )
                terms = {"perceptual": total}
            for k, v in terms.items():
                out[k] = out.get(k, 0) + v
        return out


def equivariance_losses(
    region_predictor: nn.Module,
    driving: torch.Tensor,
    driving_regions: dict[str, torch.Tensor],
    cfg: AnimateConfig,
    transform: RandomTransform | None = None,
) -> dict[str, torch.Tensor]:
    """Weighted ``equivariance_shift`` and ``equivariance_affine`` terms (see module docstring)."""
    if transform is None:
        transform = RandomTransform(
            driving.shape[0], cfg.sigma_affine, cfg.sigma_tps, cfg.points_tps, device=driving.device
        )
    warped = region_predictor(transform.transform_frame(driving, cfg.align_corners))
    out = {}
    if cfg.equivariance_shift:
        back = transform.warp_coordinates(warped["shift"])
        out["eq_shift"] = cfg.equivariance_shift * (driving_regions["shift"] - back).abs().mean()
    if cfg.equivariance_affine:
        mapped = transform.jacobian(warped["shift"]) @ warped["affine"]
        value = inv2x2(driving_regions["affine"]) @ mapped
        if cfg.revert_axis_swap:
            value = value * axis_sign(value)
        eye = torch.eye(2, device=value.device, dtype=value.dtype)
        out["eq_affine"] = cfg.equivariance_affine * (eye - value).abs().mean()
    return out
