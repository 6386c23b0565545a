"""Still images: loading a photo and fitting frames to the working size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from twinflow.errors import InputError


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB ``(H, W, 3) uint8``; :class:`InputError` if unreadable."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("cannot be read as an image", path=path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def save_image(path: str | Path, rgb: np.ndarray) -> None:
    from twinflow.atomic import atomic_path

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")


def crop_box(width: int, height: int, crop: tuple[int, ...] | None) -> tuple[int, int, int, int]:
    """Resolve a sheet crop to a box ``(x, y, w, h)`` inside a ``width x height`` frame.

    ``crop`` is ``None`` (the largest centred square), ``(x, y)`` (a reference corner as in the
    seeds' ``ref_coord``: the largest square with that top-left corner) or ``(x, y, w, h)``.
    Raises :class:`ValueError` when the box does not fit the frame.
    """
    if crop is None:
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side
    if len(crop) == 2:
        x, y = crop
        side = min(width - x, height - y)
        box = (x, y, side, side)
    else:
        box = tuple(int(v) for v in crop)
    x, y, w, h = box
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(f"crop {box} (x, y, w, h) does not fit a {width}x{height} frame")
    return box


def fit_to_size(rgb: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Crop ``box`` from ``rgb`` and resize it to ``size x size`` (area filter when shrinking)."""
    x, y, w, h = box
    crop = rgb[y : y + h, x : x + w]
    interp = cv2.INTER_AREA if max(w, h) > size else cv2.INTER_CUBIC
    if (w, h) != (size, size):
        # A non-square box is padded to a square first so faces are not stretched.
        if w != h:
            side = max(w, h)
            pad = np.zeros((side, side, 3), np.uint8)
            pad[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = crop
            crop = pad
        crop = cv2.resize(crop, (size, size), interpolation=interp)
    return np.ascontiguousarray(crop)
