"""face-vid2vid's appearance encoder, 3-D dense motion and generators (the re-implementation's
``modules/dense_motion.py`` and ``modules/generator.py``).

The generator encodes the source image ``(B, 3, S, S)`` in [0, 1] into a 3-D feature volume
``(B, C, D, S/4, S/4)`` (``second`` then a view as ``feature_channel x reshape_depth``, then 3-D
residual blocks). :class:`DenseMotionNetwork` turns the source and driving keypoints into a
backward deformation of that volume: one candidate per keypoint (the volume's grid moved by
``kp_s - kp_d``, or by the jacobians' local affine when they are estimated) plus the identity
for the background, mixed by softmax masks that a 3-D hourglass predicts from the compressed
volume warped by every candidate and Gaussian heatmap differences (variance 0.01); it also
predicts a 2-D occlusion map. The warped volume is flattened back to 2-D, multiplied by the
occlusion map and decoded:

* ``original`` (:class:`OcclusionAwareGenerator`): 2-D residual blocks, upsampling blocks, a
  7x7 conv and a sigmoid;
* ``spade`` (:class:`OcclusionAwareSPADEGenerator`): :class:`SPADEDecoder`, SPADE residual blocks
  conditioned on the warped features themselves (the reference fixes its widths at 256 -> 512,
  six middle blocks, 256, 64; here ``2 x input``, ``out_channels`` and ``hidden`` follow the
  configuration so that ``tiny`` can be small).

The two differ also in the first convolution (7x7 vs 3x3). Outputs: ``prediction``, ``mask``
``(B, K+1, D, h, w)``, ``occlusion_map`` ``(B, 1, h, w)`` and ``deformation`` ``(B, D, h, w, 3)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from twinflow.meshhead.fv2v.layers import (
    DownBlock2d,
    Hourglass,
    ResBlock2d,
    ResBlock3d,
    SameBlock2d,
    SPADEResnetBlock,
    UpBlock2d,
    coordinate_grid_3d,
    gaussian_heatmaps,
)

KP_VARIANCE = 0.01  # Gaussian heatmap variance of the dense motion network


class DenseMotionNetwork(nn.Module):
    """Keypoints -> backward deformation ``(B, D, h, w, 3)``, masks and occlusion of a volume."""

    def __init__(
        self,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_kp: int,
        feature_channel: int,
        reshape_depth: int,
        compress: int,
        estimate_occlusion_map: bool = False,
    ):
        super().__init__()
        self.hourglass = Hourglass(
            block_expansion, (num_kp + 1) * (compress + 1), num_blocks, max_features
        )
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress, affine=True)
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(
                self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3
            )
        else:
            self.occlusion = None
        self.num_kp = num_kp

    def sparse_motions(self, feature: torch.Tensor, kp_driving: dict, kp_source: dict):
        """``(B, K+1, D, h, w, 3)``: the identity, then per keypoint where each driving-frame
        voxel comes from in the source."""
        b, _, d, h, w = feature.shape
        identity = coordinate_grid_3d(d, h, w, kp_source["value"]).view(1, 1, d, h, w, 3)
        grid = identity - kp_driving["value"].view(b, self.num_kp, 1, 1, 1, 3)
        if kp_driving.get("jacobian") is not None:
            jac = torch.matmul(kp_source["jacobian"], torch.inverse(kp_driving["jacobian"]))
            jac = jac[:, :, None, None, None].expand(-1, -1, d, h, w, -1, -1)
            grid = torch.matmul(jac, grid.unsqueeze(-1)).squeeze(-1)
        to_source = grid + kp_source["value"].view(b, self.num_kp, 1, 1, 1, 3)
        return torch.cat([identity.expand(b, 1, d, h, w, 3), to_source], dim=1)

    def forward(self, feature: torch.Tensor, kp_driving: dict, kp_source: dict) -> dict:
        b, _, d, h, w = feature.shape
        feature = F.relu(self.norm(self.compress(feature)))
        motions = self.sparse_motions(feature, kp_driving, kp_source)
        k1 = self.num_kp + 1
        repeated = feature.unsqueeze(1).expand(-1, k1, -1, -1, -1, -1).reshape(b * k1, -1, d, h, w)
        deformed = F.grid_sample(
            repeated, motions.reshape(b * k1, d, h, w, 3), align_corners=False
        ).view(b, k1, -1, d, h, w)
        heat = gaussian_heatmaps(kp_driving["value"], (d, h, w), KP_VARIANCE)
        heat = heat - gaussian_heatmaps(kp_source["value"], (d, h, w), KP_VARIANCE)
        heat = torch.cat([heat.new_zeros(b, 1, d, h, w), heat], dim=1).unsqueeze(2)
        prediction = self.hourglass(torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w))
        mask = F.softmax(self.mask(prediction), dim=1)
        deformation = (motions.permute(0, 1, 5, 2, 3, 4) * mask.unsqueeze(2)).sum(dim=1)
        out = {"mask": mask, "deformation": deformation.permute(0, 2, 3, 4, 1)}
        if self.occlusion is not None:
            flat = prediction.reshape(b, -1, h, w)
            out["occlusion_map"] = torch.sigmoid(self.occlusion(flat))
        return out


class SPADEDecoder(nn.Module):
    """``fc`` (3x3, ``c -> 2c``), six SPADE blocks at ``2c``, nearest x2, a block to ``c``,
    nearest x2, a block to ``out_channels``, LeakyReLU(0.2), 3x3 conv to RGB, sigmoid. The label
    map of every SPADE is the decoder's input. Reference: ``c = 256``, ``out_channels = 64``,
    ``hidden = 128``."""

    def __init__(self, in_channels: int = 256, out_channels: int = 64, hidden: int = 128):
        super().__init__()
        ic, oc = in_channels, out_channels
        self.fc = nn.Conv2d(ic, 2 * ic, 3, padding=1)
        for i in range(6):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(2 * ic, 2 * ic, ic, hidden))
        self.up_0 = SPADEResnetBlock(2 * ic, ic, ic, hidden)
        self.up_1 = SPADEResnetBlock(ic, oc, ic, hidden)
        self.conv_img = nn.Conv2d(oc, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.fc(feature)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, feature)
        x = self.up_1(self.up(self.up_0(self.up(x), feature)), feature)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 2e-1)))


class _OcclusionAwareBase(nn.Module):
    """Encoder, dense motion and the warped-feature path shared by both generators."""

    first_kernel = 7

    def __init__(
        self,
        image_channel: int,
        feature_channel: int,
        num_kp: int,
        block_expansion: int,
        max_features: int,
        num_down_blocks: int,
        reshape_channel: int,
        reshape_depth: int,
        num_resblocks: int,
        estimate_occlusion_map: bool = False,
        dense_motion_params: dict | None = None,
        estimate_jacobian: bool = False,
    ):
        super().__init__()
        if dense_motion_params is None:
            raise ValueError("face-vid2vid's generator needs dense_motion_params")
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp,
            feature_channel=feature_channel,
            estimate_occlusion_map=estimate_occlusion_map,
            **dense_motion_params,
        )
        k = self.first_kernel
        self.first = SameBlock2d(image_channel, block_expansion, kernel_size=k, padding=k // 2)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                min(max_features, block_expansion * 2**i),
                min(max_features, block_expansion * 2 ** (i + 1)),
            )
            for i in range(num_down_blocks)
        )
        enc_out = min(max_features, block_expansion * 2**num_down_blocks)
        self.second = nn.Conv2d(enc_out, max_features, kernel_size=1)
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        self.num_resblocks = num_resblocks
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel, 3, 1))
        self.out_features = block_expansion * 2**num_down_blocks
        self.third = SameBlock2d(max_features, self.out_features, 3, 1, lrelu=True)
        self.fourth = nn.Conv2d(self.out_features, self.out_features, kernel_size=1)
        self.estimate_occlusion_map = estimate_occlusion_map
        self.image_channel = image_channel

    def encode(self, source_image: torch.Tensor) -> torch.Tensor:
        """The source's feature volume ``(B, C, D, S/4, S/4)``."""
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        b, _, h, w = out.shape
        return self.resblocks_3d(out.view(b, self.reshape_channel, self.reshape_depth, h, w))

    @staticmethod
    def deform_input(inp: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        _, d_old, h_old, w_old, _ = deformation.shape
        _, _, d, h, w = inp.shape
        if (d_old, h_old, w_old) != (d, h, w):
            deformation = deformation.permute(0, 4, 1, 2, 3)
            deformation = F.interpolate(deformation, size=(d, h, w), mode="trilinear")
            deformation = deformation.permute(0, 2, 3, 4, 1)
        return F.grid_sample(inp, deformation, align_corners=False)

    def warped_features(self, feature_3d, kp_driving, kp_source) -> tuple[torch.Tensor, dict]:
        motion = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        out = self.deform_input(feature_3d, motion["deformation"])
        b, c, d, h, w = out.shape
        out = self.fourth(self.third(out.view(b, c * d, h, w)))
        occlusion = motion.get("occlusion_map")
        if occlusion is not None:
            if occlusion.shape[2:] != out.shape[2:]:
                occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear")
            out = out * occlusion
        return out, motion

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, source_image, kp_driving: dict, kp_source: dict) -> dict:
        """``prediction (B, 3, S, S)`` of the source moved from ``kp_source`` to ``kp_driving``."""
        feats, motion = self.warped_features(self.encode(source_image), kp_driving, kp_source)
        out = {"mask": motion["mask"], "deformation": motion["deformation"]}
        if "occlusion_map" in motion:
            out["occlusion_map"] = motion["occlusion_map"]
        out["prediction"] = self.decode(feats)
        return out


class OcclusionAwareGenerator(_OcclusionAwareBase):
    """The ``original`` generator: 2-D residual blocks and upsampling blocks."""

    first_kernel = 7

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        be = self.first.conv.out_channels
        n = len(self.down_blocks)
        self.resblocks_2d = nn.Sequential()
        for i in range(self.num_resblocks):
            self.resblocks_2d.add_module(f"2dr{i}", ResBlock2d(self.out_features, 3, 1))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(max(be, be * 2 ** (n - i)), max(be, be * 2 ** (n - i - 1))) for i in range(n)
        )
        self.final = nn.Conv2d(be, self.image_channel, kernel_size=7, padding=3)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        out = self.resblocks_2d(features)
        for block in self.up_blocks:
            out = block(out)
        return torch.sigmoid(self.final(out))


class OcclusionAwareSPADEGenerator(_OcclusionAwareBase):
    """The ``spade`` generator: :class:`SPADEDecoder` on the warped features."""

    first_kernel = 3

    def __init__(self, *args, spade_out_channels: int = 64, spade_hidden: int = 128, **kwargs):
        super().__init__(*args, **kwargs)
        if len(self.down_blocks) != 2:
            raise ValueError("the SPADE decoder upsamples twice: num_down_blocks must be 2")
        self.decoder = SPADEDecoder(self.out_features, spade_out_channels, spade_hidden)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder(features)


GENERATORS = {"original": OcclusionAwareGenerator, "spade": OcclusionAwareSPADEGenerator}
