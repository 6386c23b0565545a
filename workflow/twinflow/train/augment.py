"""Augmentation of training pairs as the ``augmentation.py`` of the first-order-motion family
does it (MRAA for :mod:`twinflow.animate`, face-vid2vid for :mod:`twinflow.meshhead`).

One pair (source, driving: two frames of one video) at a time, in the reference's order:

1. flip (``RandomFlip``): with probability 0.5 (``time_flip``) the frames swap places; only
   otherwise, with probability 0.5 (``hflip``), both are mirrored;
2. resize and crop (mgif's ``resize_param`` + ``crop_param``; ``resize_ratio``): both frames
   scaled by one random factor (nearest neighbour as the reference's default, after a Gaussian
   blur when shrinking, as scikit-image's anti-aliasing), then edge-padded (centred) and cropped
   at one random place back to the frame size;
3. colour jitter (``ColorJitter``): random factors, brightness and contrast and saturation in
   ``[max(0, 1 - s), 1 + s]``, hue in ``[-s, s]`` (a fraction of the colour circle), applied to
   both frames in a random order. The reference goes through 8-bit PIL images between the steps
   (PIL's definitions: saturation blends with the ITU-R 601 grey image, contrast with that image's
   mean); twinflow stays in floats, clipped to [0, 1] after each step as 8-bit images are.

Random numbers come from numpy's global generator (saved and restored by the training loop on
resume).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

LUMA = (0.299, 0.587, 0.114)


def grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of ``(..., 3, H, W)`` images, ``(..., 1, H, W)``."""
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(dim=-3, keepdim=True)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` RGB in [0, 1] -> HSV, all three in [0, 1]."""
    r, g, b = x.unbind(-3)
    top, _ = x.max(dim=-3)
    low, _ = x.min(dim=-3)
    span = top - low
    safe = torch.where(span == 0, torch.ones_like(span), span)
    hue = torch.where(
        top == r,
        ((g - b) / safe) % 6,
        torch.where(top == g, (b - r) / safe + 2, (r - g) / safe + 4),
    )
    hue = torch.where(span == 0, torch.zeros_like(hue), hue / 6)
    sat = torch.where(top == 0, torch.zeros_like(top), span / torch.where(top == 0, 1.0, top))
    return torch.stack([hue, sat, top], dim=-3)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    h, s, v = x.unbind(-3)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=-3)
    ramp = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return v.unsqueeze(-3) - (v * s).unsqueeze(-3) * ramp


def adjust(x: torch.Tensor, kind: str, factor: float) -> torch.Tensor:
    """One colour adjustment of ``(..., 3, H, W)`` images in [0, 1], clipped."""
    if kind == "brightness":
        out = x * factor
    elif kind == "saturation":
        g = grey(x)
        out = g + factor * (x - g)
    elif kind == "contrast":
        m = grey(x).mean(dim=(-3, -2, -1), keepdim=True)
        out = m + factor * (x - m)
    elif kind == "hue":
        hsv = rgb_to_hsv(x)
        hsv = torch.stack(
            [(hsv[..., 0, :, :] + factor) % 1.0, hsv[..., 1, :, :], hsv[..., 2, :, :]], -3
        )
        out = hsv_to_rgb(hsv)
    else:
        raise ValueError(f"unknown colour adjustment {kind!r}")
    return out.clamp(0, 1)


def flip_and_jitter_fields(augmentation_params: dict[str, Any]) -> dict[str, Any]:
    """The preset fields ``time_flip``, ``hflip``, ``brightness``, ``contrast``, ``saturation``,
    ``hue`` of a reference YAML's ``dataset_params.augmentation_params`` (its ``flip_param`` and
    ``jitter_param``; what is absent is off)."""
    flip = augmentation_params.get("flip_param") or {}
    jitter = augmentation_params.get("jitter_param") or {}
    return {
        "time_flip": bool(flip.get("time_flip", False)),
        "hflip": bool(flip.get("horizontal_flip", False)),
        **{k: float(jitter.get(k, 0.0)) for k in ("brightness", "contrast", "saturation", "hue")},
    }


def resize_crop(
    frames: list[np.ndarray], ratio: tuple[float, float], size: int
) -> list[np.ndarray]:
    """Step 2 of the module docstring for uint8 ``(H, W, 3)`` frames of side ``size``."""
    factor = np.random.uniform(ratio[0], ratio[1])
    side = max(1, int(size * factor))
    out = []
    for f in frames:
        if factor < 1:
            f = cv2.GaussianBlur(f, (0, 0), sigmaX=max((1 / factor - 1) / 2, 1e-3))
        out.append(cv2.resize(f, (side, side), interpolation=cv2.INTER_NEAREST))
    if side < size:
        before = (size - side) // 2
        pad = ((before, size - side - before), (before, size - side - before), (0, 0))
        out = [np.pad(f, pad, mode="edge") for f in out]
        side = size
    x = 0 if side == size else np.random.randint(0, side - size + 1)
    y = 0 if side == size else np.random.randint(0, side - size + 1)
    return [f[y : y + size, x : x + size] for f in out]


class PairAugmentation:
    """``(source, driving)`` uint8 ``(H, W, 3)`` -> float ``(3, H, W)`` tensors in [0, 1], with
    ``cfg``'s augmentations (see the module docstring).

    ``cfg``: a preset with the fields ``time_flip``, ``hflip`` (bools), ``brightness``,
    ``contrast``, ``saturation``, ``hue`` (jitter strengths, 0 = off) and optionally
    ``resize_ratio`` (``(low, high)`` or empty), e.g. an
    :class:`~twinflow.animate.presets.AnimateConfig` or a
    :class:`~twinflow.meshhead.presets.WarpConfig`.
    """

    def __init__(self, cfg):
        self.time_flip = bool(cfg.time_flip)
        self.hflip = bool(cfg.hflip)
        self.resize_ratio = tuple(getattr(cfg, "resize_ratio", ()) or ())
        self.jitter = {
            "brightness": cfg.brightness,
            "saturation": cfg.saturation,
            "hue": cfg.hue,
            "contrast": cfg.contrast,
        }
        self.jitter = {k: v for k, v in self.jitter.items() if v > 0}

    @property
    def active(self) -> bool:
        """Whether any augmentation is on (when none is, no random number is drawn)."""
        return self.time_flip or self.hflip or bool(self.resize_ratio) or bool(self.jitter)

    def factors(self) -> list[tuple[str, float]]:
        """The random colour adjustments of one pair, in the order they apply."""
        drawn = []
        for kind, amount in self.jitter.items():
            if kind == "hue":
                drawn.append((kind, np.random.uniform(-amount, amount)))
            else:
                drawn.append((kind, np.random.uniform(max(0.0, 1 - amount), 1 + amount)))
        order = np.random.permutation(len(drawn))
        return [drawn[i] for i in order]

    def __call__(
        self, source: np.ndarray, driving: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        source, driving, _, _ = self.draw(source, driving)
        return source, driving

    def draw(
        self, source: np.ndarray, driving: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, bool, bool]:
        """The augmented pair and which flip was drawn: ``(source, driving, swapped,
        mirrored)``, for labels that must follow the frames (a driving frame's head pose, boxes
        on it)."""
        swapped = mirrored = False
        if self.time_flip and np.random.rand() < 0.5:
            source, driving, swapped = driving, source, True
        elif self.hflip and np.random.rand() < 0.5:
            source, driving, mirrored = source[:, ::-1], driving[:, ::-1], True
        if self.resize_ratio:
            source, driving = resize_crop([source, driving], self.resize_ratio, source.shape[0])
        pair = torch.from_numpy(np.stack([source, driving])).permute(0, 3, 1, 2).float().div_(255.0)
        for kind, factor in self.factors():
            pair = adjust(pair, kind, factor)
        return pair[0], pair[1], swapped, mirrored
