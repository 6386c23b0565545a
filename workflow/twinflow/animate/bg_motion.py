"""Background motion predictor: one affine transform of the whole frame (camera motion)."""

from __future__ import annotations

import torch
from torch import nn

from twinflow.animate.blocks import Encoder
from twinflow.animate.presets import AnimateConfig


class BackgroundMotion(nn.Module):
    """``(source, driving)`` -> ``(B, 3, 3)`` matrix mapping driving coordinates to source
    coordinates (homogeneous). ``bg_type="none"`` always returns the identity; ``"affine"``
    regresses a 2x3 transform from the encoded frame pair, initialised to the identity."""

    def __init__(self, cfg: AnimateConfig):
        super().__init__()
        self.kind = cfg.bg_type
        if self.kind == "affine":
            self.encoder = Encoder(
                cfg.bg_block_expansion, 2 * cfg.num_channels, cfg.bg_num_blocks, cfg.bg_max_features
            )
            self.fc = nn.Linear(self.encoder.out_channels, 6)
            nn.init.zeros_(self.fc.weight)
            with torch.no_grad():
                self.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        b = source.shape[0]
        out = torch.eye(3, device=source.device, dtype=source.dtype).repeat(b, 1, 1)
        if self.kind == "affine":
            feats = self.encoder(torch.cat([source, driving], dim=1))[-1].mean(dim=(2, 3))
            out = torch.cat([self.fc(feats).reshape(b, 2, 3), out[:, 2:]], dim=1)
        return out
