"""Animate a source frame with a stream of driving frames (used by the render stage and tests)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from twinflow.animate.model import MRAA, to_tensor, to_uint8
from twinflow.animate.modes import MODES, animation_regions
from twinflow.errors import InputError
from twinflow.media.image import crop_box, fit_to_size, load_image
from twinflow.media.video import iter_frames


def square(rgb: np.ndarray, size: int) -> np.ndarray:
    """The centred square of ``rgb`` resized to ``size``."""
    return fit_to_size(rgb, crop_box(rgb.shape[1], rgb.shape[0], None), size)


def load_source(path: str | Path, size: int) -> np.ndarray:
    """The source frame at ``size x size``: an image file, or a video's first frame."""
    path = Path(path)
    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
        rgb = load_image(path)
    else:
        first = next(iter(iter_frames(path)), None)
        if first is None:
            raise InputError("video has no frames", path=path)
        rgb = first
    return square(rgb, size)


def batched(frames: Iterable[np.ndarray], n: int) -> Iterator[list[np.ndarray]]:
    chunk: list[np.ndarray] = []
    for f in frames:
        chunk.append(f)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@torch.no_grad()
def animate_tensors(
    model: MRAA,
    source: torch.Tensor,
    driving: Iterable[torch.Tensor],
    mode: str = "avd",
    avd=None,
) -> Iterator[torch.Tensor]:
    """The animation itself, as the reference's demo (``make_animation``) does it: ``source``
    ``(1, 3, H, W)`` in [0, 1] moved by each batch of driving frames ``(B, 3, H, W)``; yields the
    generated batches. The first driving frame is the reference pose of ``relative`` mode."""
    if mode not in MODES:
        raise InputError(f"unknown animate mode '{mode}' (choose from {', '.join(MODES)})")
    src_regions = model.region_predictor(source)
    initial = None
    for drv in driving:
        regions = model.region_predictor(drv)
        if initial is None:
            initial = {k: v[:1] for k, v in regions.items()}
        new = animation_regions(mode, src_regions, regions, initial, avd=avd)
        yield model.animate(source, src_regions, new)


def animate_frames(
    model: MRAA,
    source: np.ndarray,
    driving: Iterable[np.ndarray],
    mode: str = "avd",
    avd=None,
    *,
    batch: int = 16,
    out_size: int | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[np.ndarray]:
    """Yield one uint8 RGB frame per driving frame: ``source`` (uint8 at the model size) moved
    as the driving frames move, in ``mode`` (:mod:`twinflow.animate.modes`); upscaled to
    ``out_size`` when given."""
    size = model.cfg.size
    chunks = (
        to_tensor(np.stack([square(f, size) for f in chunk]), device)
        for chunk in batched(driving, batch)
    )
    for out in animate_tensors(model, to_tensor(source, device), chunks, mode, avd):
        for rgb in to_uint8(out):
            if out_size and out_size != size:
                rgb = cv2.resize(rgb, (out_size, out_size), interpolation=cv2.INTER_CUBIC)
            yield rgb
