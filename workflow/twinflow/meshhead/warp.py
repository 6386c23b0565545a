"""face-vid2vid-style one-shot head warp (written from Wang et al., CVPR 2021; FOMM's dense motion).

Given a source image and two sets of keypoints (the source's and the driving frame's face-mesh
points, re-posed with a head pose and projected into the twin's head crop, ``[-1, 1]``):

1. **Dense motion** (at ``motion_scale`` of the frame): candidate backward flows from the
   keypoints (the identity for the background, the head's 2-D similarity, and the similarity
   plus the keypoints' residual motion spread by Gaussian weights); the source deformed by each,
   and Gaussian heatmap differences ``G(kd_k) - G(ks_k)``, go through a small U-Net that
   predicts softmax weights over the candidates (the dense flow is their weighted sum, plus a
   small learned residual flow) and an occlusion map. (FOMM and face-vid2vid use one candidate
   per keypoint; with 50+ face-mesh points these three cost far less.)
2. **Generator**: an encoder (two stride-2 levels), features warped by the dense flow and
   multiplied by the occlusion map (at 1/4 and, as a skip, 1/2 size), residual blocks, a decoder
   with upsampling, and a last layer that also sees the source warped at full size and adds a
   correction to it (initialised to zero: training starts from "warp the source").

Training losses (:class:`ImageLoss`): multi-scale L1 (full, 1/2, 1/4), ``ssim_weight x (1 - SSIM)``
(11 px Gaussian window, sigma 1.5), L1 inside the driving mouth box times ``mouth_weight``, and
optionally a VGG-19 perceptual loss with user-supplied weights (``models/registry.yaml: vgg19``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from twinflow.meshhead.presets import WarpConfig


def unit_grid(h: int, w: int, device=None) -> torch.Tensor:
    """``(h, w, 2)`` pixel-centre coordinates in ``[-1, 1]`` (x, y), as ``grid_sample`` with
    ``align_corners=False`` reads them."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def heatmaps(kp: torch.Tensor, h: int, w: int, sigma: float) -> torch.Tensor:
    """Gaussian ``(B, K, h, w)`` around keypoints ``kp (B, K, 2)`` (``sigma`` in [-1,1] units / 2)."""
    grid = unit_grid(h, w, kp.device)
    d2 = ((grid[None, None] - kp[:, :, None, None]) ** 2).sum(-1)
    return torch.exp(-0.5 * d2 / (2 * sigma) ** 2)


def warp(img: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample ``img (B, C, H, W)`` at ``grid (B, h, w, 2)``; a grid of another size is resized as
    a displacement from the identity (so that the identity stays exact at the borders)."""
    if grid.shape[1:3] != img.shape[2:]:
        h, w = grid.shape[1:3]
        disp = (grid - unit_grid(h, w, grid.device)).permute(0, 3, 1, 2)
        disp = F.interpolate(disp, size=img.shape[2:], mode="bilinear", align_corners=False)
        grid = disp.permute(0, 2, 3, 1) + unit_grid(*img.shape[2:], grid.device)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)


def conv(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2), nn.GroupNorm(min(8, cout), cout), nn.SiLU()
    )


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
            nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
        )  # fmt: skip

    def forward(self, x):
        return x + self.net(x)


class UNet(nn.Module):
    """Small hourglass: ``depth`` stride-2 levels, channels doubling from ``c`` up to ``8c``."""

    def __init__(self, cin: int, c: int, depth: int):
        super().__init__()
        chans = [min(c * 2**i, 8 * c) for i in range(depth + 1)]
        self.inp = conv(cin, chans[0])
        self.down = nn.ModuleList(conv(chans[i], chans[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(conv(chans[i + 1] + chans[i], chans[i]) for i in range(depth))
        self.out_channels = chans[0] + cin

    def forward(self, x):
        skips = [self.inp(x)]
        for layer in self.down:
            skips.append(layer(F.avg_pool2d(skips[-1], 2)))
        y = skips.pop()
        for layer in reversed(self.up):
            s = skips.pop()
            y = layer(torch.cat([F.interpolate(y, size=s.shape[2:], mode="nearest"), s], 1))
        return torch.cat([y, x], 1)


def similarity_2d(src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares 2-D similarity ``dst ~ A src + b`` per batch item: ``(B, K, 2)`` -> ``A (B, 2, 2)``,
    ``b (B, 2)`` (Umeyama without reflection)."""
    ms, md = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    xs, xd = src - ms, dst - md
    a = (xs * xd).sum((1, 2))  # sum of dot products
    c = (xs[..., 0] * xd[..., 1] - xs[..., 1] * xd[..., 0]).sum(1)  # sum of cross products
    var = (xs**2).sum((1, 2)).clamp_min(1e-8)
    sc, ss = a / var, c / var  # s cos, s sin
    mat = torch.stack([torch.stack([sc, -ss], -1), torch.stack([ss, sc], -1)], -2)
    return mat, md[:, 0] - (mat @ ms[:, 0, :, None])[..., 0]


class DenseMotion(nn.Module):
    """Keypoints -> dense backward flow ``(B, h, w, 2)`` and occlusion ``(B, 1, h, w)``.

    Three candidate flows: the identity (background), the head's 2-D similarity (fitted from
    driving to source keypoints), and the similarity plus each keypoint's residual spread with
    Gaussian weights (Shepard interpolation). A U-Net over the source deformed by each
    candidate and the keypoint heatmap differences picks per pixel among them (softmax), adds
    a small residual flow, and predicts the occlusion map.
    """

    def __init__(self, n_kp: int, cfg: WarpConfig):
        super().__init__()
        self.cfg = cfg
        self.n_kp = n_kp
        cin = 3 * 3 + n_kp
        self.unet = UNet(cin, cfg.motion_channels, cfg.motion_depth)
        self.masks = nn.Conv2d(self.unet.out_channels, 3, 7, padding=3)
        self.residual = nn.Conv2d(self.unet.out_channels, 2, 7, padding=3)
        self.occlusion = nn.Conv2d(self.unet.out_channels, 1, 7, padding=3)
        for layer in (self.masks, self.residual, self.occlusion):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        # start with "the keypoint-interpolated flow everywhere, no occlusion"
        with torch.no_grad():
            self.masks.bias[2] = 2.0
            self.occlusion.bias.fill_(3.0)

    def candidates(self, kp_s: torch.Tensor, kp_d: torch.Tensor, size: int) -> torch.Tensor:
        """``(B, 3, h, w, 2)``: identity, similarity, similarity + interpolated residuals."""
        grid = unit_grid(size, size, kp_s.device)
        b = kp_s.shape[0]
        mat, off = similarity_2d(kp_d, kp_s)
        sim = torch.einsum("bij,hwj->bhwi", mat, grid) + off[:, None, None]
        resid = kp_s - (torch.einsum("bij,bkj->bki", mat, kp_d) + off[:, None])
        w = heatmaps(kp_d, size, size, self.cfg.kp_sigma)  # (B, K, h, w)
        spread = torch.einsum("bkhw,bki->bhwi", w, resid) / (w.sum(1)[..., None] + 0.1)
        return torch.stack([grid.expand(b, size, size, 2), sim, sim + spread], dim=1)

    def forward(self, src: torch.Tensor, kp_s: torch.Tensor, kp_d: torch.Tensor):
        size = max(8, int(round(src.shape[-1] * self.cfg.motion_scale)))
        b = kp_s.shape[0]
        small = F.interpolate(
            src, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        flows = self.candidates(kp_s, kp_d, size)
        deformed = F.grid_sample(
            small.repeat_interleave(3, 0),
            flows.reshape(b * 3, size, size, 2),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        ).reshape(b, 9, size, size)
        sigma = self.cfg.kp_sigma
        heat = heatmaps(kp_d, size, size, sigma) - heatmaps(kp_s, size, size, sigma)
        feat = self.unet(torch.cat([deformed, heat], 1))
        masks = torch.softmax(self.masks(feat), dim=1)
        flow = (masks[..., None] * flows).sum(1) + 0.1 * self.residual(feat).permute(0, 2, 3, 1)
        occlusion = torch.sigmoid(self.occlusion(feat))
        return flow, occlusion, masks


class WarpGenerator(nn.Module):
    """Source image ``(B, 3, S, S)`` in [0, 1] + keypoints -> driven image ``(B, 3, S, S)``."""

    def __init__(self, n_kp: int, cfg: WarpConfig):
        super().__init__()
        self.cfg = cfg
        c0 = cfg.channels
        c1 = min(2 * c0, cfg.max_channels)
        c2 = min(4 * c0, cfg.max_channels)
        self.motion = DenseMotion(n_kp, cfg)
        self.enc0 = conv(3, c0, 7)
        self.enc1 = conv(c0, c1)
        self.enc2 = conv(c1, c2)
        self.res = nn.Sequential(*(ResBlock(c2) for _ in range(cfg.n_res)))
        self.dec1 = conv(c2 + c1, c1)
        self.dec0 = conv(c1, c0)
        self.final = nn.Conv2d(c0 + 3, 3, 7, padding=3)
        nn.init.zeros_(self.final.weight)  # start as "the source, warped by the dense flow"
        nn.init.zeros_(self.final.bias)

    def forward(self, src: torch.Tensor, kp_s: torch.Tensor, kp_d: torch.Tensor) -> dict:
        flow, occ, masks = self.motion(src, kp_s, kp_d)
        f0 = self.enc0(src)
        f1 = self.enc1(F.avg_pool2d(f0, 2))
        f2 = self.enc2(F.avg_pool2d(f1, 2))

        def warped(feat):
            o = F.interpolate(occ, size=feat.shape[2:], mode="bilinear", align_corners=False)
            return warp(feat, flow) * o

        y = self.res(warped(f2))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        y = self.dec1(torch.cat([y, warped(f1)], 1))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        y = self.dec0(y)
        src_warped = warp(src, flow)
        pred = src_warped + self.final(torch.cat([y, src_warped], 1))
        if not self.training:
            pred = pred.clamp(0, 1)
        return {"pred": pred, "flow": flow, "occlusion": occ, "masks": masks, "warped": src_warped}


# --- losses ---------------------------------------------------------------------------------


def _gauss(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM of images in [0, 1] (11 px Gaussian window, sigma 1.5, as Wang et al.)."""
    c = a.shape[1]
    w = _gauss().to(a.device).repeat(c, 1, 1, 1)

    def blur(x):
        return F.conv2d(x, w, padding=5, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )


VGG19_LAYERS = [
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512,
]  # fmt: skip
VGG19_TAPS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (torchvision indices)


class VGG19(nn.Module):
    """VGG-19 feature layers with torchvision's module indices (``features.<i>.weight``), frozen."""

    def __init__(self, state_dict: dict):
        super().__init__()
        layers, cin = [], 3
        for v in VGG19_LAYERS:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
                cin = v
        self.features = nn.Sequential(*layers)
        own = {k: v for k, v in state_dict.items() if k.startswith("features.")}
        missing = self.features.state_dict().keys() - {k[len("features.") :] for k in own}
        if missing:
            raise ValueError(
                f"not a VGG-19 state dict (missing e.g. features.{sorted(missing)[0]})"
            )
        self.load_state_dict(
            {k: v for k, v in own.items() if k[len("features.") :] in self.features.state_dict()}
        )
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406])[None, :, None, None])
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225])[None, :, None, None])
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        x = (x - self.mean) / self.std
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG19_TAPS:
                taps.append(x)
        return taps


class ImageLoss(nn.Module):
    """Multi-scale L1 + SSIM + mouth-box L1 (+ optional VGG-19 perceptual)."""

    def __init__(self, cfg: WarpConfig, vgg: VGG19 | None = None):
        super().__init__()
        self.cfg = cfg
        self.vgg = vgg

    def forward(
        self, pred, target, mouth_box: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        losses = {}
        l1 = 0.0
        p, t = pred, target
        for i in range(3):
            if i:
                p, t = F.avg_pool2d(p, 2), F.avg_pool2d(t, 2)
            l1 = l1 + (p - t).abs().mean()
        losses["l1"] = l1
        if self.cfg.ssim_weight:
            losses["ssim"] = self.cfg.ssim_weight * (1 - ssim_map(pred, target).mean())
        if self.cfg.mouth_weight and mouth_box is not None:
            mask = box_mask(mouth_box, pred.shape[-2], pred.shape[-1])
            err = ((pred - target).abs() * mask).sum((1, 2, 3)) / (3 * mask.sum((1, 2, 3)) + 1)
            losses["mouth"] = self.cfg.mouth_weight * err.mean()
        if self.vgg is not None and self.cfg.perceptual_weight:
            fp, ft = self.vgg(pred), self.vgg(target)
            losses["vgg"] = self.cfg.perceptual_weight * sum(
                (a - b).abs().mean() for a, b in zip(fp, ft, strict=True)
            )
        losses["total"] = sum(losses.values())
        return losses


def box_mask(box: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(B, 1, h, w)`` 0/1 mask of boxes ``(B, 4)`` = x0, y0, x1, y1 in [-1, 1]."""
    grid = unit_grid(h, w, box.device)
    x, y = grid[..., 0][None], grid[..., 1][None]
    b = box[:, :, None, None]
    inside = (x >= b[:, 0]) & (x <= b[:, 2]) & (y >= b[:, 1]) & (y <= b[:, 3])
    return inside[:, None].float()


def mouth_boxes(kp: torch.Tensor, mouth: list[int], margin: float = 0.08) -> torch.Tensor:
    """Boxes ``(B, 4)`` around the lip keypoints ``kp[:, mouth]`` with a margin ([-1, 1] units)."""
    m = kp[:, mouth]
    lo, hi = m.min(1).values - margin, m.max(1).values + margin
    return torch.cat([lo, hi], 1)
