"""face-vid2vid's training losses (the re-implementation's ``GeneratorFullModel`` and
``DiscriminatorFullModel`` in ``modules/model.py``), weights from :class:`WarpConfig` ``w_*``.

Generator side, on a source/driving pair of the same video (self-reenactment):

* ``perceptual``: over an image pyramid (``scales``, anti-aliased), VGG-19 features after
  relu1_1 .. relu5_1 of the prediction vs the driving frame, L1 times ``w_perceptual[i]``.
  VGG-19 weights come from the user (``models/registry.yaml: vgg19``). The named fallback
  ``perceptual="l1"`` compares the pyramid's pixels instead, times ``mean(w_perceptual)``.
* ``gen_gan``: hinge (``-mean D(pred)``) or least squares; ``feature_matching``: L1 between the
  discriminator's block outputs on the real and the generated pyramids.
* ``equivariance_value``: the driving frame warped by a random affine + thin-plate-spline
  transform (:class:`Transform`) must give keypoints that map back onto the driving keypoints
  (x, y only); ``equivariance_jacobian`` likewise for the jacobians.
* ``keypoint``: keypoints of a frame at least ``sqrt(0.1)`` apart (squared distance below 0.1 is
  penalised) and their mean depth at 0.33.
* ``headpose``: L1 between the estimator's angles and a target's: Hopenet's
  (``headpose="hopenet"``, user-supplied weights) or the twin's tracked head pose
  (``"tracked"``: the named fallback, angles from :func:`twinflow.meshhead.driving.euler_degrees`).
* ``expression``: L1 norm of the driving frame's expression deltas.
* ``mouth`` (twinflow's, ``mouth_weight``): L1 inside the driving frame's mouth box.

Discriminator side: hinge ``-mean(min(D(real) - 1, 0)) - mean(min(-D(fake) - 1, 0))`` or least
squares, times ``w_discriminator_gan``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import grad

from twinflow.meshhead.fv2v.discriminator import scale_key
from twinflow.meshhead.fv2v.hopenet import hopenet_input
from twinflow.meshhead.fv2v.layers import AntiAliasInterpolation2d, coordinate_grid_2d
from twinflow.meshhead.fv2v.pose import degrees, keypoint_transformation
from twinflow.meshhead.presets import WarpConfig


class ImagePyramide(nn.Module):
    """``{"prediction_<scale>": image at scale}`` (anti-aliased downsampling)."""

    def __init__(self, scales, num_channels: int = 3):
        super().__init__()
        self.downs = nn.ModuleDict(
            {
                scale_key(s).replace(".", "-"): AntiAliasInterpolation2d(num_channels, s)
                for s in scales
            }
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "prediction_" + name.replace("-", "."): down(x) for name, down in self.downs.items()
        }


class Transform:
    """Random affine (``sigma_affine``) + thin-plate-spline (``sigma_tps`` on a
    ``points_tps``-square grid of control points) warp of ``bs`` frames, for equivariance.
    Draws ``theta`` then the control parameters with ``torch.normal``, as the reference."""

    def __init__(self, bs: int, sigma_affine: float, sigma_tps: float, points_tps: int):
        noise = torch.normal(mean=0, std=sigma_affine * torch.ones([bs, 2, 3]))
        self.theta = noise + torch.eye(2, 3).view(1, 2, 3)
        self.bs = bs
        self.control_points = coordinate_grid_2d(points_tps, points_tps, noise).unsqueeze(0)
        self.control_params = torch.normal(
            mean=0, std=sigma_tps * torch.ones([bs, 1, points_tps**2])
        )

    def transform_frame(self, frame: torch.Tensor) -> torch.Tensor:
        h, w = frame.shape[2:]
        grid = coordinate_grid_2d(h, w, frame).unsqueeze(0).view(1, h * w, 2)
        grid = self.warp_coordinates(grid).view(self.bs, h, w, 2)
        return F.grid_sample(frame, grid, padding_mode="reflection", align_corners=False)

    def warp_coordinates(self, coordinates: torch.Tensor) -> torch.Tensor:
        """``(B or 1, N, 2)`` -> ``(B, N, 2)``."""
        theta = self.theta.to(coordinates).unsqueeze(1)
        out = torch.matmul(theta[:, :, :, :2], coordinates.unsqueeze(-1)) + theta[:, :, :, 2:]
        out = out.squeeze(-1)
        cp = self.control_points.to(coordinates)
        params = self.control_params.to(coordinates)
        dist = (coordinates.view(coordinates.shape[0], -1, 1, 2) - cp.view(1, 1, -1, 2)).abs()
        dist = dist.sum(-1)
        result = (dist**2 * torch.log(dist + 1e-6) * params).sum(dim=2)
        return out + result.view(self.bs, coordinates.shape[1], 1)

    def jacobian(self, coordinates: torch.Tensor) -> torch.Tensor:
        new = self.warp_coordinates(coordinates)
        gx = grad(new[..., 0].sum(), coordinates, create_graph=True)[0]
        gy = grad(new[..., 1].sum(), coordinates, create_graph=True)[0]
        return torch.cat([gx.unsqueeze(-2), gy.unsqueeze(-2)], dim=-2)


def keypoint_prior(kp: torch.Tensor) -> torch.Tensor:
    """Sum over keypoint pairs of ``mean_b relu(0.1 - |k_i - k_j + 1e-6|^2)`` plus
    ``mean_b |mean_k z - 0.33|`` (``kp (B, K, 3)``; pairs include i == j, as the reference)."""
    diff = kp[:, :, None, :] - kp[:, None, :, :] + 1e-6  # pairwise_distance's eps
    dist = (diff**2).sum(-1)
    value = F.relu(0.1 - dist).mean(0).sum()
    return value + (kp[:, :, -1].mean(-1) - 0.33).abs().mean()


class GeneratorLoss(nn.Module):
    """The generator, keypoint detector and estimator's losses on a batch ``{"source",
    "driving"}`` (frames ``(B, 3, S, S)`` in [0, 1]; optional ``"pose"`` ``(B, 3)`` yaw, pitch,
    roll target degrees for ``headpose="tracked"``, ``"mouth_box"`` ``(B, 4)``)."""

    def __init__(self, cfg: WarpConfig, vgg: nn.Module | None = None, hopenet=None):
        super().__init__()
        self.cfg = cfg
        self.pyramid = ImagePyramide(cfg.scales)
        self.vgg = vgg
        self.hopenet = hopenet
        if cfg.perceptual == "vgg19" and any(cfg.w_perceptual) and vgg is None:
            raise ValueError("perceptual='vgg19' needs the VGG-19 network")
        if cfg.headpose == "hopenet" and cfg.w_headpose and hopenet is None:
            raise ValueError("headpose='hopenet' needs the Hopenet network")

    def forward(self, batch: dict, model, discriminator) -> tuple[dict, dict]:
        cfg = self.cfg
        generated = model.reenact(batch["source"], batch["driving"])
        kp_driving, he_driving = generated["kp_driving"], generated["he_driving"]
        losses = {}
        real = self.pyramid(batch["driving"])
        fake = self.pyramid(generated["prediction"])
        if any(cfg.w_perceptual):
            total = 0
            for s in cfg.scales:
                key = "prediction_" + scale_key(s)
                if cfg.perceptual == "vgg19":
                    xs, ys = self.vgg(fake[key]), self.vgg(real[key])
                    for weight, a, b in zip(cfg.w_perceptual, xs, ys, strict=True):
                        total = total + weight * torch.abs(a - b.detach()).mean()
                else:
                    weight = sum(cfg.w_perceptual) / len(cfg.w_perceptual)
                    total = total + weight * torch.abs(fake[key] - real[key]).mean()
            losses["perceptual"] = total
        if cfg.w_generator_gan:
            d_fake = discriminator(fake)
            d_real = discriminator(real)
            total = 0
            for s in discriminator.scales:
                pred = d_fake["prediction_map_" + scale_key(s)]
                value = -pred.mean() if cfg.gan_mode == "hinge" else ((1 - pred) ** 2).mean()
                total = total + cfg.w_generator_gan * value
            losses["gen_gan"] = total
            if any(cfg.w_feature_matching):
                total = 0
                for s in discriminator.scales:
                    key = "feature_maps_" + scale_key(s)
                    for i, (a, b) in enumerate(zip(d_real[key], d_fake[key], strict=True)):
                        if cfg.w_feature_matching[i]:
                            total = total + cfg.w_feature_matching[i] * (a - b).abs().mean()
                losses["feature_matching"] = total
        if cfg.w_equivariance_value or cfg.w_equivariance_jacobian:
            transform = Transform(
                batch["driving"].shape[0], cfg.sigma_affine, cfg.sigma_tps, cfg.points_tps
            )
            frame = transform.transform_frame(batch["driving"])
            kp_t = keypoint_transformation(generated["kp_canonical"], model.he_estimator(frame))
            if cfg.w_equivariance_value:
                back = transform.warp_coordinates(kp_t["value"][:, :, :2])
                value = (kp_driving["value"][:, :, :2] - back).abs().mean()
                losses["equivariance_value"] = cfg.w_equivariance_value * value
            if cfg.w_equivariance_jacobian:
                jac = torch.matmul(
                    transform.jacobian(kp_t["value"][:, :, :2]), kp_t["jacobian"][:, :, :2, :2]
                )
                value = torch.matmul(torch.inverse(kp_driving["jacobian"][:, :, :2, :2]), jac)
                eye = torch.eye(2, device=value.device, dtype=value.dtype).view(1, 1, 2, 2)
                losses["equivariance_jacobian"] = (
                    cfg.w_equivariance_jacobian * (eye - value).abs().mean()
                )
        if cfg.w_keypoint:
            losses["keypoint"] = cfg.w_keypoint * keypoint_prior(kp_driving["value"])
        if cfg.w_headpose and cfg.headpose != "none":
            pred = [degrees(he_driving[k]) for k in ("yaw", "pitch", "roll")]
            if cfg.headpose == "hopenet":
                target = [degrees(p) for p in self.hopenet(hopenet_input(batch["driving"]))]
            else:
                target = list(batch["pose"].unbind(1))
            value = sum((p - t).abs().mean() for p, t in zip(pred, target, strict=True))
            losses["headpose"] = cfg.w_headpose * value
        if cfg.w_expression:
            losses["expression"] = (
                cfg.w_expression * torch.norm(he_driving["exp"], p=1, dim=-1).mean()
            )
        if cfg.mouth_weight and batch.get("mouth_box") is not None:
            losses["mouth"] = cfg.mouth_weight * box_l1(
                generated["prediction"], batch["driving"], batch["mouth_box"]
            )
        return losses, generated


def discriminator_loss(cfg: WarpConfig, discriminator, pyramid: ImagePyramide, real, fake):
    """``{"disc_gan": ...}`` on real frames and (detached) predictions."""
    d_fake = discriminator(pyramid(fake.detach()))
    d_real = discriminator(pyramid(real))
    total = 0
    for s in discriminator.scales:
        key = "prediction_map_" + scale_key(s)
        r, f = d_real[key], d_fake[key]
        if cfg.gan_mode == "hinge":
            value = -torch.clamp(r - 1, max=0).mean() - torch.clamp(-f - 1, max=0).mean()
        else:
            value = ((1 - r) ** 2 + f**2).mean()
        total = total + cfg.w_discriminator_gan * value
    return {"disc_gan": total}


def box_l1(pred: torch.Tensor, target: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Mean L1 inside boxes ``(B, 4)`` = x0, y0, x1, y1 in [-1, 1] (pixel centres)."""
    h, w = pred.shape[2:]
    ys = (torch.arange(h, device=pred.device) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, device=pred.device) + 0.5) / w * 2 - 1
    b = box[:, :, None, None]
    inside = (xs[None, None] >= b[:, 0]) & (xs[None, None] <= b[:, 2])
    inside = inside & (ys[None, :, None] >= b[:, 1]) & (ys[None, :, None] <= b[:, 3])
    mask = inside[:, None].to(pred.dtype)
    err = ((pred - target).abs() * mask).sum((1, 2, 3)) / (3 * mask.sum((1, 2, 3)) + 1)
    return err.mean()
