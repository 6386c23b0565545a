"""Animation via disentanglement (AVD): shape from the source's regions, pose from the driving's.

Two MLP encoders read the K regions' parameters (shift and affine, 6K numbers): the identity
encoder those of the source frame, the pose encoder those of the driving frame. A decoder maps
both codes back to 6K region parameters. Trained (:mod:`twinflow.animate.train_avd`) with the
main model frozen: source and driving are two frames of one video, the pose input is the driving
regions scaled by a random factor per axis (another "body shape"), and the target is the unscaled
driving regions, so the network must take the shape from the identity input and only the pose
from the pose input.
"""

from __future__ import annotations

import torch
from torch import nn

from twinflow.animate.geometry import axis_sign, inv2x2
from twinflow.animate.presets import AnimateConfig


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear-BatchNorm-ReLU layers through ``sizes``; the last layer is linear only."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(sizes[i + 1]), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def regions_to_vector(regions: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(B, K*6)``: per region x, y, then the affine row-major."""
    b, k = regions["shift"].shape[:2]
    return torch.cat([regions["shift"], regions["affine"].reshape(b, k, 4)], dim=-1).reshape(b, -1)


def vector_to_regions(vec: torch.Tensor, num_regions: int) -> dict[str, torch.Tensor]:
    vec = vec.reshape(vec.shape[0], num_regions, 6)
    affine = vec[..., 2:].reshape(vec.shape[0], num_regions, 2, 2)
    return {"shift": vec[..., :2], "affine": affine, "covar": affine @ affine.transpose(-1, -2)}


class AVDNetwork(nn.Module):
    """``(identity regions, pose regions)`` -> regions with the identity's shape in the pose."""

    def __init__(self, cfg: AnimateConfig):
        super().__init__()
        k = cfg.num_regions
        size = 6 * k
        hidden = list(cfg.avd_hidden)
        self.num_regions = k
        self.revert_axis_swap = cfg.revert_axis_swap
        self.id_encoder = mlp([size, *hidden, cfg.avd_id_bottleneck])
        self.pose_encoder = mlp([size, *hidden, cfg.avd_pose_bottleneck])
        self.decoder = mlp([cfg.avd_id_bottleneck + cfg.avd_pose_bottleneck, *hidden[::-1], size])

    def forward(self, identity: dict[str, torch.Tensor], pose: dict[str, torch.Tensor]):
        if self.revert_axis_swap:
            sign = axis_sign(identity["affine"] @ inv2x2(pose["affine"]))
            identity = {"shift": identity["shift"], "affine": identity["affine"] * sign}
        codes = torch.cat(
            [
                self.pose_encoder(regions_to_vector(pose)),
                self.id_encoder(regions_to_vector(identity)),
            ],
            dim=1,
        )
        return vector_to_regions(self.decoder(codes), self.num_regions)


def random_scale(regions: dict[str, torch.Tensor], amount: float, generator=None):
    """Regions scaled about the frame centre by a random factor in [1-amount, 1+amount] per axis
    and sample (the AVD training's stand-in for a differently shaped subject)."""
    b = regions["shift"].shape[0]
    factors = 1 - amount + 2 * amount * torch.rand(b, 2, generator=generator)
    scale = torch.diag_embed(factors.to(regions["shift"]))[:, None]  # B 1 2 2
    shift = (scale @ regions["shift"].unsqueeze(-1)).squeeze(-1)
    affine = scale @ regions["affine"]
    return {"shift": shift, "affine": affine, "covar": affine @ affine.transpose(-1, -2)}
