"""VGG-19 feature extractor in plain torch, for the paper's perceptual loss.

No weights ship with twinflow. A user who has torchvision's ImageNet VGG-19 state dict (keys
``features.0.weight`` ... ``classifier.6.bias``) registers it as ``vgg19`` in
``models/registry.yaml`` and sets ``recon_loss: vgg19``; :func:`load_vgg19` verifies the file
through :func:`twinflow.models.resolve` and loads the ``features.*`` keys (the classifier is not
needed). The layer layout is torchvision's, so the indices of the state dict match.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# torchvision's VGG-19 "E" configuration: conv widths, "M" = 2x2 max pooling.
CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M"]
CONFIG += [512, 512, 512, 512, "M"]
# Outputs taken after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (indices in ``features``).
TAPS = (1, 6, 11, 20, 29)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """Images in [0, 1] ``(B, 3, H, W)`` -> the 5 tapped feature maps (ImageNet normalisation
    inside). Parameters are frozen."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers[: TAPS[-1] + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def load_torchvision(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchvision ``vgg19().state_dict()`` (classifier keys are ignored)."""
        wanted = {k: v for k, v in state.items() if k.startswith("features.")}
        own = {k for k in self.state_dict() if k.startswith("features.")}
        missing = own - set(wanted)
        if missing:
            raise ValueError(f"VGG-19 state dict lacks {sorted(missing)[:4]}...")
        self.load_state_dict({k: wanted[k] for k in own} | {"mean": self.mean, "std": self.std})

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                outs.append(x)
        return outs


def load_vgg19(
    path: str | Path | None = None, registry: str | Path = "models/registry.yaml"
) -> VGG19Features:
    """The state dict at ``path``, else the ``vgg19`` entry of ``registry`` (checksum-verified;
    a missing file is a :class:`~twinflow.errors.ModelFileError` saying where to put it)."""
    if path is None:
        from twinflow.models import resolve

        path = resolve("vgg19", registry)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = VGG19Features()
    net.load_torchvision(state)
    return net.eval()
