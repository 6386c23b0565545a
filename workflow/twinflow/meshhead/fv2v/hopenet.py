"""Hopenet (Ruiz et al., 2018; natanielruiz/deep-head-pose): the head-pose network whose angles
supervise face-vid2vid's estimator (``hopenet_robust_alpha1.pkl``, loss weight ``w_headpose``).

A ResNet-50 (torchvision's ``Bottleneck``, layers 3, 4, 6, 3, names ``conv1``, ``bn1``,
``layer1.0.conv1`` ... as torchvision's) with three 66-bin heads ``fc_yaw``, ``fc_pitch``,
``fc_roll`` (and the unused ``fc_finetune`` that its checkpoints hold), average-pooled over 7x7:
its input is 224 px, ImageNet-normalised. Weights are user-supplied
(``models/registry.yaml: hopenet``); twinflow never downloads them.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from twinflow.meshhead.fv2v.keypoints import N_BINS
from twinflow.train.vgg import IMAGENET_MEAN, IMAGENET_STD


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck (expansion 4, stride on the 3x3 conv, no conv biases)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + identity)


class Hopenet(nn.Module):
    """Images ``(B, 3, 224, 224)``, ImageNet-normalised -> yaw, pitch, roll logits ``(B, 66)``."""

    def __init__(self, layers=(3, 4, 6, 3), num_bins: int = N_BINS):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AvgPool2d(7)
        self.fc_yaw = nn.Linear(2048, num_bins)
        self.fc_pitch = nn.Linear(2048, num_bins)
        self.fc_roll = nn.Linear(2048, num_bins)
        self.fc_finetune = nn.Linear(2048 + 3, 3)  # unused; present in its checkpoints

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * 4),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x).flatten(1)
        return self.fc_yaw(x), self.fc_pitch(x), self.fc_roll(x)


def hopenet_input(images: torch.Tensor) -> torch.Tensor:
    """Frames in [0, 1] -> Hopenet's input: resized to 224 (bilinear, as torchvision's tensor
    ``Resize`` of the reference's time, without antialiasing) and ImageNet-normalised."""
    x = F.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def load_hopenet(registry: str | Path = "models/registry.yaml") -> Hopenet:
    """The registry's ``hopenet`` weights (checksum-verified), frozen, in eval mode."""
    from twinflow.models import resolve

    path = resolve("hopenet", registry)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    net = Hopenet()
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)
