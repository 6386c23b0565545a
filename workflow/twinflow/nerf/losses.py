"""Losses of the nerf pipeline: the uncertainty-weighted colour loss of the head stage, the
mouth-patch loss of the lips stage and regularisers.

ER-NeRF's uncertainty-aware loss (:func:`uncertainty_weighted_mse`, its ``unc_loss``, on by
default there): a small network predicts a per-point uncertainty ``u`` from the spatial features
(no gradient into them), rendered per ray like colour. With ``s`` the training progress in
[0, 1], ``N`` rays in the batch and ``w = N x softmax(u)`` over them::

    loss_ray = mse_ray x (a + (1 - a) x clamp((1 - s) + s x w, 0, 10))        (a = 0.2)
             + s x face x (|pred - gt| / (2 b^2) + log(b)^2 / 2)              (b = 1 + u)
             + 1e-3 x s x (1 - face) x u

so rays whose error stays high (the mouth, the eyes, hair edges) get up to 10x the weight as
training goes on. The second term (with the colour error held constant) makes ``u`` grow with a
face ray's error, the third keeps it at 0 off the face. ER-NeRF also smooths ``u`` and the two
attentions in space (every 16th step, ``s x 1e-5`` x their squared change when the sample points
move by up to 1e-3); that needs a second pass over the samples, and twinflow leaves it out
(its effect is not measured).

ER-NeRF fine-tunes the lips with ``MSE + 0.01 x LPIPS`` (AlexNet) on the mouth box.
``perceptual: lpips`` (``paper``) is that term (:mod:`twinflow.nerf.lpips`) when its weights are
supplied in ``models/`` (registry ``alexnet`` and ``lpips-alex``); without them the lips stage
says so in its log and checkpoint and uses the named fallback, ``structural`` (``tiny``'s), a
multi-scale structural loss on the patch:

    sum over scales s in (1, 1/2, 1/4):  (1 - SSIM_s(pred, gt)) + L1(grad pred_s, grad gt_s)

SSIM (Gaussian window, sigma 1.5, size 7 on patches) compares local means, contrasts and
correlations, so it rewards the teeth/lip edges and the dark mouth opening that a per-pixel MSE
averages away; the gradient term sharpens edges. ``perceptual: vgg`` replaces it by an LPIPS-like
distance of VGG-19 features (unit-normalised channels, mean squared difference per layer) with a
user-supplied ``vgg19`` checkpoint from ``models/registry.yaml`` (resolved through
:func:`twinflow.models.resolve`; a clear error when it is not supplied).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gauss(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim(pred: torch.Tensor, gt: torch.Tensor, size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of ``(B, 3, H, W)`` images in [0, 1] (valid windows only)."""
    size = min(size, pred.shape[-1], pred.shape[-2])
    w = _gauss(size, sigma, pred.device, pred.dtype)
    c1, c2 = 0.01**2, 0.03**2
    mu_x = F.conv2d(pred, w, groups=3)
    mu_y = F.conv2d(gt, w, groups=3)
    sxx = F.conv2d(pred * pred, w, groups=3) - mu_x**2
    syy = F.conv2d(gt * gt, w, groups=3) - mu_y**2
    sxy = F.conv2d(pred * gt, w, groups=3) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return (num / den).mean()


def gradient_l1(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return (dx(pred) - dx(gt)).abs().mean() + (dy(pred) - dy(gt)).abs().mean()


def structural_patch_loss(pred: torch.Tensor, gt: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Multi-scale ``(1 - SSIM) + gradient L1`` of patches ``(B, 3, P, P)`` in [0, 1]."""
    loss = pred.new_zeros(())
    for s in range(scales):
        if s:
            pred, gt = F.avg_pool2d(pred, 2), F.avg_pool2d(gt, 2)
        if min(pred.shape[-2:]) < 4:
            break
        loss = loss + (1 - ssim(pred, gt)) + gradient_l1(pred, gt)
    return loss


class VGGPatchLoss(torch.nn.Module):
    """LPIPS-like distance of VGG-19 features (user-supplied weights; see module docstring)."""

    def __init__(self, registry: str = "models/registry.yaml"):
        super().__init__()
        from twinflow.train.vgg import load_vgg19

        self.vgg = load_vgg19(registry=registry)

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        loss = pred.new_zeros(())
        for a, b in zip(self.vgg(pred), self.vgg(gt), strict=True):
            a = a / (a.norm(dim=1, keepdim=True) + 1e-8)
            b = b / (b.norm(dim=1, keepdim=True) + 1e-8)
            loss = loss + ((a - b) ** 2).sum(1).mean()
        return loss


class LPIPSPatchLoss(torch.nn.Module):
    """ER-NeRF's lips term: LPIPS(alex) of the patches (:func:`twinflow.nerf.lpips.patch_lpips`)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.lpips = model

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        from twinflow.nerf.lpips import patch_lpips

        return patch_lpips(self.lpips, pred, gt)


def patch_loss_for(kind: str, registry: str = "models/registry.yaml"):
    """``(loss, used)``: the lips-stage patch loss ``(pred, gt) -> scalar`` for ``perceptual``
    = ``kind`` and what it is (``lpips`` without its weights: the ``structural`` fallback,
    ``used`` says why)."""
    if kind == "structural":
        return structural_patch_loss, "structural"
    if kind == "vgg":
        return VGGPatchLoss(registry), "vgg"
    if kind == "lpips":
        from twinflow.nerf.lpips import supplied

        model, why = supplied(registry)
        if model is None:
            return structural_patch_loss, f"structural (fallback: LPIPS not supplied: {why})"
        return LPIPSPatchLoss(model), "lpips"
    raise ValueError(f"unknown patch loss '{kind}' (structural, vgg or lpips)")


def make_patch_loss(kind: str, registry: str = "models/registry.yaml"):
    """The lips-stage patch loss ``(pred, gt) -> scalar`` for ``perceptual`` = ``kind``."""
    return patch_loss_for(kind, registry)[0]


def uncertainty_weighted_mse(
    pred: torch.Tensor,
    gt: torch.Tensor,
    uncertainty: torch.Tensor,
    face: torch.Tensor,
    progress: float,
    floor: float = 0.2,
) -> torch.Tensor:
    """ER-NeRF's uncertainty-aware colour loss (module docstring) of ``R`` rays: colours
    ``pred, gt (R, 3)``, rendered ``uncertainty (R,)`` >= 0, ``face (R,)`` bool, training
    ``progress`` in [0, 1]; ``floor`` is the weight every ray keeps (ER-NeRF: 0.2)."""
    s = float(min(max(progress, 0.0), 1.0))
    diff = pred - gt
    mse = (diff**2).mean(-1)
    weight = len(uncertainty) * torch.softmax(uncertainty.detach(), 0)
    scale = floor + (1 - floor) * ((1 - s) + s * weight).clamp(0, 10)
    beta = 1 + uncertainty
    err = torch.linalg.vector_norm(diff.detach(), dim=-1)
    fit = err / (2 * beta**2) + torch.log(beta) ** 2 / 2
    face = face.to(pred.dtype)
    return (mse * scale + s * (face * fit + 1e-3 * (1 - face) * uncertainty)).mean()


def ambient_loss(
    amb_aud: torch.Tensor,
    amb_eye: torch.Tensor,
    face: torch.Tensor,
    lambda_aud: float,
    lambda_eye: float,
) -> torch.Tensor:
    """ER-NeRF's region losses on the rendered attentions of ``R`` rays, ``amb_aud, amb_eye (R,)``
    (the audio attention's norm, the eye attention in [0, 1]) with ``face (R,)`` bool:

    ``lambda_aud x mean(amb_aud x (1 - face)) + lambda_eye x mean(amb_eye x stop_grad(amb_aud)
    x face)``

    The first keeps the audio from acting outside the face (hair, background edges); the second
    moves the blink's region away from where the audio acts on the face, so the mouth and the
    eyes are driven by separate signals. ER-NeRF weighs both by its ``lambda_amb``, ramped up
    with the training progress; twinflow applies the weights from the start (the measured
    ``tiny`` weights, :mod:`twinflow.nerf.presets`, are for that)."""
    face = face.to(amb_aud.dtype)
    loss = lambda_aud * (amb_aud * (1 - face)).mean()
    if lambda_eye > 0:
        loss = loss + lambda_eye * (amb_eye * amb_aud.detach() * face).mean()
    return loss


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """Mean entropy (bits) of opacities: pushes them to 0 or 1 (ER-NeRF's weights_sum loss)."""
    p = p.clamp(1e-5, 1 - 1e-5)
    return (-p * torch.log2(p) - (1 - p) * torch.log2(1 - p)).mean()
