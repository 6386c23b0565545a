"""Background motion predictor: one transform of the whole frame (camera motion)."""

from __future__ import annotations

import torch
from torch import nn

from twinflow.animate.blocks import Encoder
from twinflow.animate.presets import AnimateConfig

# Outputs of the last layer per kind, and their initial values (the identity transform).
OUTPUTS = {
    "shift": (0.0, 0.0),
    "affine": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    "perspective": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0),
}


class BackgroundMotion(nn.Module):
    """``(source, driving)`` -> ``(B, 3, 3)`` matrix mapping driving coordinates to source
    coordinates (homogeneous), as the reference's ``BGMotionPredictor``: ``bg_type="zero"``
    always returns the identity; ``"shift"`` predicts the translation, ``"affine"`` the top two
    rows, ``"perspective"`` those and the first two entries of the last row (the last stays 1).
    The prediction comes from the encoded frame pair, averaged over space, and starts at the
    identity (zero weights)."""

    def __init__(self, cfg: AnimateConfig):
        super().__init__()
        self.kind = "zero" if cfg.bg_type == "none" else cfg.bg_type
        if self.kind != "zero":
            self.encoder = Encoder(
                cfg.bg_block_expansion, 2 * cfg.num_channels, cfg.bg_num_blocks, cfg.bg_max_features
            )
            init = OUTPUTS[self.kind]
            self.fc = nn.Linear(self.encoder.out_channels, len(init))
            nn.init.zeros_(self.fc.weight)
            with torch.no_grad():
                self.fc.bias.copy_(torch.tensor(init))

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        b = source.shape[0]
        eye = torch.eye(3, device=source.device, dtype=source.dtype).expand(b, 3, 3)
        if self.kind == "zero":
            return eye.clone()
        feats = self.encoder(torch.cat([source, driving], dim=1))[-1].mean(dim=(2, 3))
        pred = self.fc(feats)
        if self.kind == "shift":
            top = torch.cat([eye[:, :2, :2], pred[:, :, None]], dim=2)
            return torch.cat([top, eye[:, 2:]], dim=1)
        top = pred[:, :6].reshape(b, 2, 3)
        last = (
            eye[:, 2:]
            if self.kind == "affine"
            else torch.cat([pred[:, None, 6:], eye[:, 2:, 2:]], 2)
        )
        return torch.cat([top, last], dim=1)
