"""face-vid2vid's canonical keypoint detector and head-pose / expression estimator
(the re-implementation's ``modules/keypoint_detector.py``).

* :class:`KPDetector`: image ``(B, 3, S, S)`` in [0, 1] -> ``{"value": (B, K, 3)}`` canonical
  3-D keypoints in [-1, 1] (soft-argmax of a 3-D heatmap, temperature ``temperature``), plus
  ``"jacobian": (B, K, 3, 3)`` when ``estimate_jacobian``.
* :class:`HEEstimator`: image -> ``yaw, pitch, roll`` logits ``(B, 66)`` over 3-degree bins
  (:func:`twinflow.meshhead.fv2v.pose.degrees`), translation ``t (B, 3)`` and expression deltas
  ``exp (B, 3K)``.

The estimator is a ResNet-style stack whose widths the reference fixes at 256, 512, 1024 and
2048 (``widths``; smaller in ``tiny``). As in the reference, the ``yaw`` output comes from the
layer named ``fc_roll`` and ``roll`` from ``fc_yaw``: the names are the checkpoint's, the
mapping is its behaviour.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from twinflow.meshhead.fv2v.layers import (
    AntiAliasInterpolation2d,
    KPHourglass,
    ResBottleneck,
    coordinate_grid_3d,
)

N_BINS = 66  # head-pose bins of 3 degrees from -99 (Hopenet's)


class KPDetector(nn.Module):
    """Canonical 3-D keypoints of a source image (identity-specific, pose- and expression-free)."""

    def __init__(
        self,
        block_expansion: int,
        feature_channel: int,
        num_kp: int,
        image_channel: int,
        max_features: int,
        reshape_channel: int,
        reshape_depth: int,
        num_blocks: int,
        temperature: float,
        estimate_jacobian: bool = False,
        scale_factor: float = 1,
        single_jacobian_map: bool = False,
    ):
        super().__init__()
        self.predictor = KPHourglass(
            block_expansion, image_channel, reshape_channel, reshape_depth, num_blocks,
            max_features,
        )  # fmt: skip
        self.kp = nn.Conv3d(self.predictor.out_filters, num_kp, kernel_size=3, padding=1)
        if estimate_jacobian:
            self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
            self.jacobian = nn.Conv3d(
                self.predictor.out_filters, 9 * self.num_jacobian_maps, kernel_size=3, padding=1
            )
            self.jacobian.weight.data.zero_()
            eye = torch.tensor([1, 0, 0, 0, 1, 0, 0, 0, 1] * self.num_jacobian_maps)
            self.jacobian.bias.data.copy_(eye.float())
        else:
            self.jacobian = None
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(image_channel, scale_factor)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.scale_factor != 1:
            x = self.down(x)
        feature_map = self.predictor(x)
        prediction = self.kp(feature_map)
        shape = prediction.shape  # (B, K, d, h, w)
        heatmap = F.softmax(prediction.view(shape[0], shape[1], -1) / self.temperature, dim=2)
        heatmap = heatmap.view(*shape)
        grid = coordinate_grid_3d(*shape[2:], heatmap)
        out = {"value": (heatmap.unsqueeze(-1) * grid[None, None]).sum(dim=(2, 3, 4))}
        if self.jacobian is not None:
            maps = self.jacobian(feature_map).reshape(
                shape[0], self.num_jacobian_maps, 9, *shape[2:]
            )
            jac = (heatmap.unsqueeze(2) * maps).view(shape[0], shape[1], 9, -1).sum(-1)
            out["jacobian"] = jac.view(shape[0], shape[1], 3, 3)
        return out


class HEEstimator(nn.Module):
    """Head pose (yaw, pitch, roll bins; translation) and expression deltas of an image."""

    def __init__(
        self,
        block_expansion: int,
        feature_channel: int,
        num_kp: int,
        image_channel: int,
        max_features: int,
        num_bins: int = N_BINS,
        estimate_jacobian: bool = True,
        widths: tuple[int, int, int, int] = (256, 512, 1024, 2048),
    ):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.conv1 = nn.Conv2d(image_channel, block_expansion, kernel_size=7, padding=3, stride=2)
        self.norm1 = nn.BatchNorm2d(block_expansion, affine=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(block_expansion, w0, kernel_size=1)
        self.norm2 = nn.BatchNorm2d(w0, affine=True)
        self.block1 = _bottlenecks("b1_", w0, 3)
        self.conv3 = nn.Conv2d(w0, w1, kernel_size=1)
        self.norm3 = nn.BatchNorm2d(w1, affine=True)
        self.block2 = ResBottleneck(w1, stride=2)
        self.block3 = _bottlenecks("b3_", w1, 3)
        self.conv4 = nn.Conv2d(w1, w2, kernel_size=1)
        self.norm4 = nn.BatchNorm2d(w2, affine=True)
        self.block4 = ResBottleneck(w2, stride=2)
        self.block5 = _bottlenecks("b5_", w2, 5)
        self.conv5 = nn.Conv2d(w2, w3, kernel_size=1)
        self.norm5 = nn.BatchNorm2d(w3, affine=True)
        self.block6 = ResBottleneck(w3, stride=2)
        self.block7 = _bottlenecks("b7_", w3, 2)
        self.fc_roll = nn.Linear(w3, num_bins)
        self.fc_pitch = nn.Linear(w3, num_bins)
        self.fc_yaw = nn.Linear(w3, num_bins)
        self.fc_t = nn.Linear(w3, 3)
        self.fc_exp = nn.Linear(w3, 3 * num_kp)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.maxpool(F.relu(self.norm1(self.conv1(x))))
        out = self.block1(F.relu(self.norm2(self.conv2(out))))
        out = self.block3(self.block2(F.relu(self.norm3(self.conv3(out)))))
        out = self.block5(self.block4(F.relu(self.norm4(self.conv4(out)))))
        out = self.block7(self.block6(F.relu(self.norm5(self.conv5(out)))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return {
            "yaw": self.fc_roll(out),  # sic: the reference's wiring
            "pitch": self.fc_pitch(out),
            "roll": self.fc_yaw(out),
            "t": self.fc_t(out),
            "exp": self.fc_exp(out),
        }


def _bottlenecks(prefix: str, features: int, n: int) -> nn.Sequential:
    seq = nn.Sequential()
    for i in range(n):
        seq.add_module(f"{prefix}{i}", ResBottleneck(features, stride=1))
    return seq
